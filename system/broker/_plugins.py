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
    """Allow-lists of topic patterns per username (``"anonymous"`` for none, ``"*"`` for everyone else),
    and deny-lists likewise.

    A subscription is granted, and a PUBLISH routed, only when one of the user's ``acl`` patterns
    covers the filter or topic (no ``acl`` at all: everything) and none of its ``deny`` patterns
    does; a denied subscription gets SUBACK 0x80. A denied pattern is not delivered either, so a
    wider subscription (``#``) does not reach around it.
    """

    @dataclass
    class Config:
        acl: dict[str, list[str]] | None = None
        deny: dict[str, list[str]] = field(default_factory=dict)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if topic is None:
            return True
        user = (session.username if session else None) or "anonymous"
        deny = self.config.deny.get(user, self.config.deny.get("*", []))
        if any(covers(p, topic) for p in deny):
            return False
        acl = self.config.acl
        if action == Action.RECEIVE or acl is None:
            return True
        return any(covers(p, topic) for p in acl.get(user, acl.get("*", [])))
