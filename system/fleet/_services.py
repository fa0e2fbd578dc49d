"""``fleet_services``: the reference fleet as a list of services a supervisor or a harness runs."""

from __future__ import annotations

import functools
from pathlib import Path

from system.fleet._common import service_rng
from system.fleet._config import FleetConfig
from system.fleet._controller import run_controller
from system.fleet._devices import run_heater, run_sensor
from system.fleet._physics import Room
from system.fleet._recorder import run_recorder
from system.observer import Observer
from system.supervisor import ServiceSpec


def room_names(config: FleetConfig) -> list[str]:
    return [f"r{i}" for i in range(1, config.rooms + 1)]


def fleet_rooms(config: FleetConfig, rng_seed: int) -> dict[str, Room]:
    """The rooms' physics, each starting at a seeded temperature around the band."""
    low, high = config.band
    return {
        name: Room(
            name,
            initial=round(
                service_rng(rng_seed, name, "room").uniform(low - 2, high), 2
            ),
            outside=config.outside,
        )
        for name in room_names(config)
    }


def fleet_services(
    config: FleetConfig,
    broker_url: str,
    rng_seed: int,
    *,
    rooms: dict[str, Room] | None = None,
) -> list[ServiceSpec]:
    """Sensors ``sensor-r<i>-<j>``, heaters ``heater-r<i>``, the ``controller`` (depends on
    the heaters) and the ``recorder``. Each name is also the service's MQTT client id.
    Rooms' physics (``rooms``, default ``fleet_rooms(config, rng_seed)``) is shared by a
    room's sensors and heater; each service's randomness comes from ``rng_seed`` and its name."""
    rooms = rooms if rooms is not None else fleet_rooms(config, rng_seed)
    if config.queue_capacity is not None:
        cap = config.queue_capacity
        broker_url += f"{'&' if '?' in broker_url else '?'}outbound_capacity={cap}&inbound_capacity={cap}"
    specs: list[ServiceSpec] = []

    def spec(
        name: str, kind: str, depends_on: tuple[str, ...], fn: functools.partial[object]
    ) -> None:
        async def run(observer: Observer, data_dir: Path) -> None:
            await fn(observer, data_dir)

        run.__qualname__ = run.__name__ = f"run_{name.replace('-', '_')}"
        specs.append(ServiceSpec(name=name, kind=kind, depends_on=depends_on, run=run))

    for room in rooms.values():
        for j in range(1, config.sensors_per_room + 1):
            name = f"sensor-{room.name}-{j}"
            spec(
                name,
                "sensor",
                (),
                functools.partial(
                    run_sensor, name, j, room, config, broker_url, rng_seed
                ),
            )
    heaters = tuple(f"heater-{room}" for room in rooms)
    for room in rooms.values():
        name = f"heater-{room.name}"
        spec(
            name,
            "heater",
            (),
            functools.partial(run_heater, name, room, config, broker_url, rng_seed),
        )
    spec(
        "controller",
        "controller",
        heaters,
        functools.partial(run_controller, list(rooms), config, broker_url, rng_seed),
    )
    spec(
        "recorder",
        "recorder",
        (),
        functools.partial(
            run_recorder,
            max(1.0, config.telemetry_interval),
            broker_url,
            rng_seed,
            record_seconds=config.record_seconds,
            telemetry_policy=config.telemetry_policy,
        ),
    )
    return specs
