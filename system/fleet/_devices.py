"""Sensors and heaters: the fleet's devices, each a service of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

from system.app import Router
from system.app._events import RoomTemperature
from system.fleet._common import HeaterState, Reading, SetHeater, make_app, service_rng
from system.fleet._config import FleetConfig
from system.fleet._physics import Room
from system.observer import Observer


async def run_sensor(
    name: str,
    index: int,
    room: Room,
    config: FleetConfig,
    broker_url: str,
    seed: int,
    observer: Observer,
    data_dir: Path,
) -> None:
    """A thermometer in ``room``: a reading with seeded noise every ``telemetry_interval``."""
    noise = service_rng(seed, name, "noise")
    pad = "x" * config.payload_bytes
    app = make_app(name, broker_url, seed, observer, telemetry_policy=config.telemetry_policy)
    device = app.include(Router(prefix=room.name)).device(f"sensor-{index}")

    @device.telemetry("temperature", interval=config.telemetry_interval, qos=config.qos)
    def temperature() -> Reading:
        return Reading(
            room=room.name,
            sensor=name,
            celsius=round(room.temperature() + noise.gauss(0, 0.1), 3),
            pad=pad,
        )

    await app.run()


async def run_heater(
    name: str,
    room: Room,
    config: FleetConfig,
    broker_url: str,
    seed: int,
    observer: Observer,
    data_dir: Path,
) -> None:
    """The heater of ``room``: ``set`` {on} (or ``on`` / ``off``) commands, its state as telemetry (persisted, so
    a restarted heater comes back in the state it was commanded to), and the room's true
    temperature reported to the observer."""
    app = make_app(name, broker_url, seed, observer, data_dir)
    device = app.include(Router(prefix=room.name)).device("heater")
    power = device.state_machine(
        "power",
        "off",
        {
            ("off", "on"): "on",
            ("on", "off"): "off",
            ("on", "on"): "on",
            ("off", "off"): "off",
        },
    )
    low, high = config.band

    @device.command("set")
    async def set_power(cmd: SetHeater) -> HeaterState:
        await power.fire("on" if cmd.on else "off")
        room.set_heater(cmd.on)
        return HeaterState(room=room.name, on=cmd.on)

    @device.command("on")
    async def switch_on() -> HeaterState:
        return await set_power(SetHeater(on=True))

    @device.command("off")
    async def switch_off() -> HeaterState:
        return await set_power(SetHeater(on=False))

    @device.telemetry("state", interval=config.telemetry_interval)
    def state() -> HeaterState:
        return HeaterState(room=room.name, on=power.state == "on")

    @device.every(config.telemetry_interval, immediate=True)
    def report_temperature() -> None:
        at = asyncio.get_running_loop().time()
        observer(
            RoomTemperature(
                client=name,
                at=at,
                room=room.name,
                temperature=round(room.temperature(), 4),
                low=low,
                high=high,
                heater=room.heater,
            )
        )

    async with app:
        room.set_heater(power.state == "on")  # the relay follows the restored state
        await asyncio.Event().wait()
