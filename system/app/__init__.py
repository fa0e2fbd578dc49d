"""The layer services are written in: an ``App`` of ``Router``s and ``Device``s over one
``BusClient``, with commands, telemetry, periodic tasks, coalescing, state machines,
persisted values, retry, config reload, health and availability, failures contained."""

from system.app._app import App
from system.app._device import (
    CoalescingGroup,
    Command,
    CommandRejected,
    Device,
    DeviceMachine,
)
from system.app._events import (
    CommandDone,
    CommandSent,
    ConfigReloaded,
    DeviceAvailability,
    DeviceError,
    DeviceHealthChanged,
    DeviceStateChanged,
    RoomTemperature,
    ServiceChanged,
)
from system.app._periodic import run_periodic
from system.app._retry import Backoff, retry, retrying
from system.app._router import Router
from system.app._state import InvalidTransition, StateMachine

__all__ = [
    "App",
    "Backoff",
    "CoalescingGroup",
    "Command",
    "CommandDone",
    "CommandRejected",
    "CommandSent",
    "ConfigReloaded",
    "Device",
    "DeviceAvailability",
    "DeviceError",
    "DeviceHealthChanged",
    "DeviceMachine",
    "DeviceStateChanged",
    "InvalidTransition",
    "RoomTemperature",
    "Router",
    "ServiceChanged",
    "StateMachine",
    "retry",
    "retrying",
    "run_periodic",
]
