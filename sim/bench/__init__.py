"""`squall bench`: every hot path's figure, each measured side by side in one process run.

A figure is a function ``(quick: bool) -> dict[str, float]`` registered below by dotted
path, so `sim` can list figures that live in `chaos` without importing it at module level.
Ratios compare two measurements taken in this same run, so they hold on a noisy machine
far better than absolute numbers do.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from pathlib import Path
from typing import Callable

from sim.errors import pick

FIGURES: dict[str, str] = {
    "amqtt_burst": "sim.bench.amqtt_burst:figure",
    "instructions": "sim.bench.instructions:figure",
    "clients": "sim.bench.clients:figure",
    "broker_fixes": "sim.bench.broker_flavors:figure",
    "devices_10": "sim.bench.devices:figure",
    "fleet_100": "sim.bench.fleet:compression",
    "swarm_sweep": "sim.bench.fleet:sweep_rate",
    "proxy": "chaos.proxy._bench:figure",
}


def _load(path: str) -> Callable[[bool], dict[str, float]]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_bench(json_out: Path | None = None, only: str | None = None, quick: bool = False) -> int:
    from rich.console import Console
    from rich.table import Table

    names = pick("--only", only, list(FIGURES))
    from sim.runner import quiet

    console = Console(stderr=True)
    results: dict[str, dict[str, float]] = {}
    for name in names:
        with console.status(f"bench {name} ..."), quiet("amqtt"):  # its shutdown noise is no figure
            start = time.perf_counter()
            results[name] = _load(FIGURES[name])(quick)
            results[name]["bench_wall_seconds"] = round(time.perf_counter() - start, 3)
    table = Table(title="squall bench")
    table.add_column("figure")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, figs in results.items():
        for key, value in figs.items():
            table.add_row(name, key, f"{value:,.3f}" if isinstance(value, float) else str(value))
    Console().print(table)
    if json_out is not None:
        doc = {"python": platform.python_version(), "machine": platform.machine(), "quick": quick, "figures": results}
        json_out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return 0
