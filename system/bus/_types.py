"""Values the bus hands to users: received messages, subscriptions, health, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from system.envelope import Envelope


class BusClosed(RuntimeError):
    """The client is stopping or stopped; make a new one to talk to the bus again."""


class RequestTimeout(TimeoutError):
    """No reply arrived in time."""


class RequestFailed(RuntimeError):
    """The responder's handler raised; the message says what it raised."""


@dataclass(frozen=True, slots=True)
class Message:
    """One received message, as handlers see it."""

    topic: str
    envelope: Envelope
    qos: int
    retain: bool

    @property
    def data(self) -> Any:
        return self.envelope.data


Handler = Callable[[Message], Awaitable[Any] | Any]
"""A subscription handler: a plain or async function of one ``Message``."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A handler registered on a topic filter; ``(pattern, name)`` identifies it for replacement."""

    pattern: str
    name: str
    qos: int


class LastError(BaseModel):
    where: str
    error: str
    message: str
    at: float


class Health(BaseModel):
    """The client's status, sent on its health topic every heartbeat and returned by ``health()``."""

    client_id: str
    status: Literal["ok", "degraded", "down"]
    state: str
    connected: bool
    uptime: float
    reconnects: int
    published: int
    delivered: int
    dropped: int
    errors: int
    outbound_depth: int
    inbound_depth: int
    last_error: LastError | None = None
