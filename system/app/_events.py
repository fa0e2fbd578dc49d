"""Observer events of the app layer, the supervisor and the fleet.

Same contract as ``system.observer``: frozen, JSON-serialisable through ``to_dict()``, the
``"event"`` key is the class's ``name``, ``client`` the reporting client (or supervisor),
``at`` the event loop's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from system.observer import Event


@dataclass(frozen=True, slots=True)
class DeviceStateChanged(Event):
    """A device's state machine moved (a heater ``off`` -> ``on``); ``trigger`` is what moved it."""

    name: ClassVar[str] = "device_state"
    device: str
    machine: str
    old: str
    new: str
    trigger: str


@dataclass(frozen=True, slots=True)
class DeviceStateRestored(Event):
    """A starting device's state machine took its persisted state (``initial`` when nothing
    was stored): with ``DeviceStateChanged`` it lets a harness judge that a restarted device
    comes back in the state it last acknowledged."""

    name: ClassVar[str] = "device_state_restored"
    device: str
    machine: str
    state: str
    stored: bool


@dataclass(frozen=True, slots=True)
class DeviceHealthChanged(Event):
    """A device's health moved between ``ok``, ``degraded`` and ``failing``."""

    name: ClassVar[str] = "device_health"
    device: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceAvailability(Event):
    """A device went ``online`` or ``offline``."""

    name: ClassVar[str] = "device_availability"
    device: str
    status: str


@dataclass(frozen=True, slots=True)
class DeviceError(Event):
    """A device's handler, telemetry or task raised; it was contained and counted."""

    name: ClassVar[str] = "device_error"
    device: str
    where: str
    error: str
    message: str
    errors: int


@dataclass(frozen=True, slots=True)
class CommandSent(Event):
    """A command request left for ``topic``; ``request`` pairs it with its ``CommandDone``,
    which must follow within ``timeout`` loop seconds (it ends as ``timeout`` then)."""

    name: ClassVar[str] = "command_sent"
    topic: str
    command: str
    request: int
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class CommandDone(Event):
    """The round trip of a command ended: ``outcome`` is ``ok``, ``error`` (the device
    answered with an error) or ``timeout``; ``latency`` in loop seconds."""

    name: ClassVar[str] = "command_done"
    topic: str
    command: str
    request: int
    outcome: str
    latency: float
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigReloaded(Event):
    """The app's configuration was replaced without a restart; ``version`` counts reloads."""

    name: ClassVar[str] = "config_reloaded"
    version: int


@dataclass(frozen=True, slots=True)
class ServiceChanged(Event):
    """A supervised service moved: ``starting``, ``running``, ``crashed``, ``backoff``,
    ``stopping``, ``stopped``. ``attempt`` counts starts; ``delay`` is the backoff before the
    next start (``crashed``); ``error`` what it died of. On ``crashed``, ``initial``,
    ``maximum`` and ``stable_after`` are the supervisor's restart policy, so a reader of the
    history can judge the delay: at most ``min(maximum, initial * 2**(k-1))`` for the k-th
    crash in a row (a run that lasted ``stable_after`` seconds starts the count again)."""

    name: ClassVar[str] = "service"
    service: str
    old: str
    new: str
    attempt: int
    delay: float | None = None
    error: str | None = None
    initial: float | None = None
    maximum: float | None = None
    stable_after: float | None = None


@dataclass(frozen=True, slots=True)
class RoomTemperature(Event):
    """The true (noise-free) temperature of a fleet room, with its band and heater state."""

    name: ClassVar[str] = "room_temperature"
    room: str
    temperature: float
    low: float
    high: float
    heater: bool
