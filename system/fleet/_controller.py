"""The controller: closes the loop, keeping each room's temperature inside the band."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from system.bus import RequestFailed, RequestTimeout
from system.fleet._common import PREFIX, make_app
from system.fleet._config import FleetConfig
from system.observer import Observer


class _RoomView:
    def __init__(self) -> None:
        self.readings: dict[str, tuple[float, float]] = {}  # sensor -> (celsius, at)
        self.heater: bool | None = None  # last known state, None = unknown

    def average(self, now: float, max_age: float) -> float | None:
        fresh = [c for c, at in self.readings.values() if now - at <= max_age]
        return sum(fresh) / len(fresh) if fresh else None


def decide(
    average: float | None, heater: bool | None, band: tuple[float, float]
) -> bool | None:
    """The heater state a room needs, or None to leave it. Hysteresis: switch on in the
    lower quarter of the band, off in the upper quarter, so the heater does not chatter."""
    if average is None:
        return None
    low, high = band
    margin = (high - low) / 4
    if average < low + margin:
        return True
    if average > high - margin:
        return False
    return None


async def run_controller(
    rooms: list[str],
    config: FleetConfig,
    broker_url: str,
    seed: int,
    observer: Observer,
    data_dir: Path,
) -> None:
    name = "controller"
    app = make_app(name, broker_url, seed, observer)
    views = {room: _RoomView() for room in rooms}
    device = app.device("controller")

    @app.on("+/+/telemetry/temperature")
    def on_reading(data: dict[str, Any]) -> None:
        view = views.get(data.get("room", ""))
        if view is not None:
            view.readings[data["sensor"]] = (
                float(data["celsius"]),
                asyncio.get_running_loop().time(),
            )

    @app.on("+/heater/telemetry/state")
    def on_heater(data: dict[str, Any]) -> None:
        view = views.get(data.get("room", ""))
        if view is not None:
            view.heater = bool(data["on"])

    async def command(room: str, on: bool) -> None:
        try:
            reply = await app.send_command(
                f"{PREFIX}/{room}/heater",
                "set",
                {"on": on},
                timeout=config.command_timeout,
            )
        except (RequestTimeout, RequestFailed):
            views[room].heater = None  # unknown: try again next round
            return
        views[room].heater = bool(reply["on"])

    @device.every(config.control_interval)
    async def control() -> None:
        now = asyncio.get_running_loop().time()
        max_age = 3 * config.telemetry_interval
        wanted = {
            room: decide(view.average(now, max_age), view.heater, config.band)
            for room, view in views.items()
        }
        await asyncio.gather(
            *(
                command(room, on)
                for room, on in wanted.items()
                if on is not None and views[room].heater != on
            )
        )

    @device.telemetry("rooms", interval=config.control_interval)
    def summary() -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        return {
            room: {
                "average": v.average(now, 3 * config.telemetry_interval),
                "heater": v.heater,
            }
            for room, v in views.items()
        }

    await app.run()
