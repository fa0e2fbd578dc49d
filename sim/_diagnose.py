"""Known causes of a stuck run in libraries squall runs unmodified: whose bug it is, and why.

`known_cause(task)` looks at the busiest task of a livelock and, when it recognises the
pattern, says whose bug it is, so a user does not hunt for it in squall or in their code.
"""

from __future__ import annotations

import asyncio
from typing import Any


def known_cause(task: asyncio.Task[Any]) -> str | None:
    coro = task.get_coro()
    if getattr(coro, "__qualname__", "") != "ProtocolHandler._reader_loop":
        return None
    frame = getattr(coro, "cr_frame", None)
    handler = frame.f_locals.get("self") if frame is not None else None
    stream = getattr(getattr(handler, "reader", None), "_reader", None)
    exc = getattr(stream, "_exception", None)
    if not isinstance(exc, TimeoutError):
        return None
    return (
        f"this is amqtt's bug, not squall's nor yours: the connection timed out ({exc}; in a simulated world, bytes "
        "held by a partition longer than the TCP user timeout), every read of the dead stream raises that TimeoutError "
        "at once, amqtt's read_or_raise does not treat it as the end of the stream, and _reader_loop takes it for its "
        "own keep-alive timeout (asyncio.TimeoutError is TimeoutError since Python 3.11) and reads again, forever: on "
        "a real socket the same loop spins at 100% CPU. squall's broker and system.bus's client survive it; with "
        "amqtt's own client or stock broker, keep partitions shorter than the user timeout (World(user_timeout=...))"
    )
