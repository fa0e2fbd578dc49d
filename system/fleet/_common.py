"""What every fleet service shares: the topic layout and how a service builds its app."""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import BaseModel

from system.app import App
from system.bus import BusClient, BusSettings, OverflowPolicy
from system.observer import Observer
from system.store import Store

PREFIX = "fleet"
"""Every fleet topic starts here: ``fleet/<room>/<sensor>/telemetry/temperature``,
``fleet/<room>/heater/cmd/set``, ``fleet/<room>/heater/telemetry/state``,
``fleet/controller/telemetry/rooms``, ``fleet/recorder/telemetry/stats``."""


class Reading(BaseModel):
    room: str
    sensor: str
    celsius: float
    pad: str = ""


class HeaterState(BaseModel):
    room: str
    on: bool


class SetHeater(BaseModel):
    on: bool


def service_rng(seed: int, name: str, purpose: str) -> random.Random:
    # String seeds hash with SHA-512, so this is stable across processes and PYTHONHASHSEED.
    return random.Random(f"{seed}:{name}:{purpose}")


def make_app(
    name: str,
    broker_url: str,
    seed: int,
    observer: Observer,
    data_dir: Path | None = None,
    *,
    telemetry_policy: str = "block",
) -> App:
    """``telemetry_policy``: the overflow policy of the fleet's telemetry topics in this
    service's queues (``block``, ``drop`` or ``latest``)."""
    bus = BusClient(
        BusSettings.from_url(broker_url, client_id=name),
        policies={f"{PREFIX}/+/+/telemetry/#": OverflowPolicy(telemetry_policy)},  # type: ignore[arg-type]
        observer=observer,
        rng=service_rng(seed, name, "bus"),
    )
    store = Store(data_dir / f"{name}.db") if data_dir is not None else None
    return App(bus, prefix=PREFIX, store=store, observer=observer)
