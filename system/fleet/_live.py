"""``squall system up``: the embedded broker and the whole fleet, for real, with a live summary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from system.app._events import CommandDone, RoomTemperature, ServiceChanged
from system.fleet._config import FleetConfig
from system.fleet._services import fleet_services
from system.observer import Event, Published


class UpError(ValueError):
    """The fleet cannot start (e.g. the port is taken); the message names the fix."""


class FleetSummary:
    """An observer that keeps what the live table shows: each room's temperature and heater,
    command outcomes, services' states, messages published."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomTemperature] = {}
        self.services: dict[str, str] = {}
        self.restarts: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()
        self.published: Counter[str] = Counter()
        self.out_of_band = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, RoomTemperature):
            self.rooms[event.room] = event
            if not event.low <= event.temperature <= event.high:
                self.out_of_band += 1
        elif isinstance(event, ServiceChanged):
            self.services[event.service] = event.new
            if event.new == "crashed":
                self.restarts[event.service] += 1
        elif isinstance(event, CommandDone):
            self.commands[event.outcome] += 1
        elif isinstance(event, Published):
            self.published[event.kind] += 1

    def table(self, address: str) -> Any:
        from rich.table import Table

        table = Table(
            title=f"squall fleet on {address}  (Ctrl-C stops it)", expand=False
        )
        for col in ("room", "temperature °C", "band", "heater"):
            table.add_column(col)
        for room, ev in sorted(self.rooms.items()):
            in_band = ev.low <= ev.temperature <= ev.high
            table.add_row(
                room,
                f"[{'green' if in_band else 'red'}]{ev.temperature:.2f}",
                f"{ev.low:g}-{ev.high:g}",
                "on" if ev.heater else "off",
            )
        running = sum(1 for s in self.services.values() if s == "running")
        table.caption = (
            f"services {running}/{len(self.services)} running, {sum(self.restarts.values())} restarts | "
            f"commands ok {self.commands['ok']} timeout {self.commands['timeout']} error {self.commands['error']} | "
            f"telemetry published {self.published['telemetry']}"
        )
        return table


def run_up(
    port: int,
    config: FleetConfig,
    seed: int = 1,
    data_dir: Path | None = None,
    out: TextIO | None = None,
) -> int:
    """Run broker and fleet on 127.0.0.1:``port`` until SIGINT/SIGTERM; 0 on a clean stop."""
    from rich.console import Console
    from rich.live import Live

    from system.broker import EmbeddedBroker
    from system.supervisor import Supervisor

    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    logging.getLogger("system").setLevel(logging.CRITICAL)
    console = Console(file=out or sys.stdout)
    summary = FleetSummary()

    async def main(root: Path) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        broker = EmbeddedBroker(host="127.0.0.1", port=port)
        try:
            await broker.start()
        except Exception as exc:  # noqa: BLE001 - amqtt wraps bind errors in its own
            raise UpError(
                f"cannot listen on 127.0.0.1:{port} ({exc}); pick another with --port"
            ) from None
        address = f"mqtt://127.0.0.1:{broker.port}"
        console.print(
            f"squall system up: broker on {address}, fleet data in {root}; Ctrl-C stops it",
            highlight=False,
        )
        specs = fleet_services(config, address, rng_seed=seed)
        supervisor = Supervisor(
            specs, data_root=root, observer=summary, rng=random.Random(seed)
        )
        try:
            await supervisor.start()
            with Live(
                summary.table(address), console=console, refresh_per_second=2
            ) as live:
                while not stop.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)
                    live.update(summary.table(address))
        finally:
            await supervisor.stop()
            await broker.stop()
        console.line()
        console.print(
            f"stopped: {summary.commands['ok']} commands ok, {summary.published['telemetry']} telemetry messages",
            highlight=False,
        )

    if data_dir is not None:
        asyncio.run(main(data_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="squall-fleet-") as tmp:
            asyncio.run(main(Path(tmp)))
    return 0
