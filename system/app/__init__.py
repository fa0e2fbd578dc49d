"""The layer services are written in: an ``App`` of ``Router``s and ``Device``s over one
``BusClient``, with commands, telemetry, periodic tasks, coalescing, state machines,
persisted values, retry, config reload, health and availability, failures contained::

    app = App(BusClient("mqtt://localhost:1883"), prefix="building", store=Store("state.db"))
    floor = app.include(Router(prefix="floor1"))
    thermostat = floor.device("thermostat")          # building/floor1/thermostat
    target = thermostat.persist("target", 21.0)      # restored on restart

    @thermostat.command("set")                       # request on .../thermostat/cmd/set
    def set_target(cmd: SetPoint) -> SetPoint:       # validated; a bad payload gets an error reply
        target.value = cmd.celsius
        return cmd

    @thermostat.telemetry("temperature", interval=5) # .../thermostat/telemetry/temperature
    async def temperature() -> Reading:
        return Reading(celsius=await retry(read_sensor))

    await app.run()                                  # until cancelled

Events for the observer (``DeviceStateChanged``, ``CommandDone``, ...) are in ``_events``
and exported here; each is a ``system.observer.Event`` with ``to_dict()``.
"""

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
    DeviceStateRestored,
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
    "DeviceStateRestored",
    "InvalidTransition",
    "RoomTemperature",
    "Router",
    "ServiceChanged",
    "StateMachine",
    "retry",
    "retrying",
    "run_periodic",
]
