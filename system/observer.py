"""The observer hook: what the bus does, reported as small immutable events.

An observer is any callable taking one ``Event``. The bus calls it synchronously, on the
event loop, for every event; an observer that raises is logged and otherwise ignored, so
it can never break the bus. The event classes and their fields are a stable contract (the
harness records them): ``to_dict()`` gives a JSON-serialisable dict whose ``"event"`` key
is the class's ``name``.

``at`` is the event loop's clock (``loop.time()``), so it is virtual time in a simulation.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter

__all__ = [
    "Connected",
    "Connecting",
    "Delivered",
    "Disconnected",
    "Dropped",
    "Event",
    "Failed",
    "HandedOver",
    "LoggingObserver",
    "Observer",
    "Published",
    "Reconnected",
    "StateChanged",
]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class Event:
    """Common fields: ``client`` is the reporting client's id, ``at`` the loop time."""

    name: ClassVar[str] = "event"
    client: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        # Fields are scalars, so a shallow copy is the whole story; dataclasses.asdict's deep
        # copy was a tenth of a 100-sensor simulation's time (every event is recorded).
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        return {"event": self.name, **{n: getattr(self, n) for n in names}}


@dataclass(frozen=True, slots=True)
class Published(Event):
    """A message was handed to the broker (for QoS 1: the broker acknowledged it).
    ``queued`` is the loop time the application handed it to the bus: end-to-end latency
    counts from there."""

    name: ClassVar[str] = "publish"
    topic: str
    qos: int
    retain: bool
    id: str
    source: str
    seq: int
    kind: str
    size: int
    queued: float = 0.0


@dataclass(frozen=True, slots=True)
class HandedOver(Event):
    """The application handed a message to the bus (before any wait for room): the start of
    its end-to-end account. ``band`` is ``control`` or ``data``; ``policy`` the overflow
    policy that governs it there (``block``, ``drop``, ``latest``, ``coalesce``)."""

    name: ClassVar[str] = "handover"
    topic: str
    qos: int
    id: str
    band: str
    policy: str


@dataclass(frozen=True, slots=True)
class Delivered(Event):
    """A message arrived, passed dedup and was dispatched to its handlers."""

    name: ClassVar[str] = "deliver"
    topic: str
    qos: int
    retain: bool
    id: str
    source: str
    seq: int
    kind: str
    handlers: int


@dataclass(frozen=True, slots=True)
class Connecting(Event):
    """An attempt to reach the broker begins, after the backoff delay (``attempt`` from 1
    since the last loss). ``initial`` and ``maximum`` are the backoff the client was configured
    with: the delay before attempt n promises at most ``min(maximum, initial * 2**(n-1))``."""

    name: ClassVar[str] = "connecting"
    attempt: int
    initial: float
    maximum: float


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """A connection to the broker is up (``attempt`` counts tries since the last loss, from 1)."""

    name: ClassVar[str] = "connect"
    url: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Disconnected(Event):
    """The connection went away; ``reason`` is a short human string."""

    name: ClassVar[str] = "disconnect"
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected(Event):
    """Connected again after a loss: ``attempts`` tries, ``downtime`` loop-seconds away."""

    name: ClassVar[str] = "reconnect"
    attempts: int
    downtime: float


@dataclass(frozen=True, slots=True)
class Dropped(Event):
    """A message was discarded.

    ``direction`` is ``"out"`` or ``"in"``; ``reason`` one of ``overflow`` (``drop`` policy,
    queue full), ``superseded`` (``latest`` policy evicted it), ``coalesced`` (merged into
    another), ``duplicate`` (dedup), ``invalid`` (not an envelope), ``shutdown`` (left
    when the client stopped), ``error`` (the broker refused it).

    For a queue's overflow (``overflow``, ``superseded``, ``coalesced``): ``band`` is the
    queue's band (``control`` or ``data``), ``policy`` the policy that discarded it, and
    ``replaced_by`` the envelope id that took its place (``superseded``, ``coalesced``).
    """

    name: ClassVar[str] = "drop"
    direction: str
    topic: str
    reason: str
    id: str | None = None
    band: str | None = None
    policy: str | None = None
    replaced_by: str | None = None


@dataclass(frozen=True, slots=True)
class Failed(Event):
    """Something went wrong and was contained: ``where`` is ``handler``, ``connect``,
    ``keepalive``, ``publish``, ``subscribe`` or ``decode``."""

    name: ClassVar[str] = "error"
    where: str
    error: str
    message: str
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """The client's state machine moved: ``new``, ``connecting``, ``connected``,
    ``reconnecting``, ``stopping``, ``stopped``."""

    name: ClassVar[str] = "state"
    old: str
    new: str


@runtime_checkable
class Observer(Protocol):
    """Receives every event. Must be quick and must not block: it runs on the event loop."""

    def __call__(self, event: Event) -> None: ...


_LEVELS = {"error": logging.WARNING, "disconnect": logging.WARNING, "drop": logging.DEBUG}


class LoggingObserver:
    """Production default: logs each event and counts it as Prometheus metrics.

    Metrics (all counters, labelled by ``client``): ``squall_bus_events_total{event}``,
    ``squall_bus_dropped_total{direction,reason}``, ``squall_bus_errors_total{where}``.
    Pass ``registry`` to expose them (e.g. ``prometheus_client.REGISTRY``); by default they
    live in a private registry. A registry takes these metric names once, so share one
    ``LoggingObserver`` between all the clients that report to it.
    """

    def __init__(self, registry: CollectorRegistry | None = None, logger: logging.Logger | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.logger = logger or logging.getLogger("system.bus")
        self.events = Counter("squall_bus_events", "Bus events by type", ["client", "event"], registry=self.registry)
        self.dropped = Counter(
            "squall_bus_dropped", "Messages discarded", ["client", "direction", "reason"], registry=self.registry
        )
        self.errors = Counter("squall_bus_errors", "Contained failures", ["client", "where"], registry=self.registry)

    def __call__(self, event: Event) -> None:
        self.events.labels(event.client, event.name).inc()
        if isinstance(event, Dropped):
            self.dropped.labels(event.client, event.direction, event.reason).inc()
        elif isinstance(event, Failed):
            self.errors.labels(event.client, event.where).inc()
        level = _LEVELS.get(event.name, logging.DEBUG if event.name in ("publish", "deliver") else logging.INFO)
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s %s", event.name, event.to_dict())
