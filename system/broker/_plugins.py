"""amqtt plugins the embedded broker configures: in-memory passwords and a topic ACL.

Both are plain amqtt plugins (loaded by class path from the broker config), so they work the
same on the stock and the squall flavor.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session


class PasswordAuth(BaseAuthPlugin):
    """username -> password, compared in constant time. No username: no opinion (``None``)."""

    @dataclass
    class Config:
        users: dict[str, str] = field(default_factory=dict)

    async def authenticate(self, *, session: Session) -> bool | None:
        if not session.username:
            return None
        expected = self.config.users.get(session.username)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), (session.password or "").encode())


def covers(pattern: str, wanted: str) -> bool:
    """True if every topic ``wanted`` (a topic name or filter) can match is matched by ``pattern``."""
    p_levels, w_levels = pattern.split("/"), wanted.split("/")
    for i, p in enumerate(p_levels):
        if p == "#":
            return True
        if i >= len(w_levels):
            return False
        w = w_levels[i]
        if w == "#" or (p != "+" and p != w) or (p == "+" and w == "#"):
            return False
    return len(p_levels) == len(w_levels)


class TopicAcl(BaseTopicPlugin):
    """Allow-lists of topic patterns per username (``"anonymous"`` for none, ``"*"`` for everyone else).

    A subscription is granted, and a PUBLISH routed, only when one of the user's patterns
    covers the filter or topic; a denied subscription gets SUBACK 0x80.
    """

    @dataclass
    class Config:
        acl: dict[str, list[str]] = field(default_factory=dict)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if action == Action.RECEIVE or topic is None:
            return True
        user = (session.username if session else None) or "anonymous"
        acl = self.config.acl
        patterns = acl.get(user, acl.get("*", []))
        return any(covers(p, topic) for p in patterns)
