"""Running the reference fleet in the simulated world, one host per service (as the harness does)."""

from __future__ import annotations

from typing import Any

from _app_support import BROKER_URL, Recorder, world_with_broker

from sim import World
from system.fleet import FleetConfig, fleet_services


def fleet_world(
    config: FleetConfig, seed: int = 1
) -> tuple[World, Recorder, dict[str, Any]]:
    world = world_with_broker(seed)
    events = Recorder()
    specs = {s.name: s for s in fleet_services(config, BROKER_URL, rng_seed=seed)}
    for spec in specs.values():
        host = world.host(spec.name)
        host.spawn(spec.run, events, host.disk)
    return world, events, specs
