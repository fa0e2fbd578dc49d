"""Fleet figures: time compression of a 100-sensor fleet, seeds per minute of a swarm sweep."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sim.runner import run_scenario
from sim.scenario import load_scenario


def compression(quick: bool) -> dict[str, float]:
    """A 100-sensor fleet (25 rooms x 4 sensors) for 120 virtual seconds (30 with --quick)."""
    base = load_scenario("smoke")
    seconds = 30.0 if quick else 120.0
    scenario = base.model_copy(update={"name": "fleet-100", "duration": seconds, "fleet": {**(base.fleet or {}), "rooms": 25, "sensors_per_room": 4}})
    outcome = run_scenario(scenario, 1, keep_trace=False, plots=False)
    r = outcome.report
    return {
        "sensors": 100.0,
        "virtual_seconds": seconds,
        "wall_seconds": r["wall_seconds"],
        "virtual_per_wall": round(seconds / r["wall_seconds"], 2),
        "messages_delivered": float(r["metrics"]["delivered"]),
        "checks_passed": float(r["ok"]),
    }


def sweep_rate(quick: bool) -> dict[str, float]:
    """Seeds per minute of a 60-virtual-second swarm sweep, all cores."""
    from sim.sweep import sweep

    seeds = list(range(1, 5 if quick else 13))
    with tempfile.TemporaryDirectory() as tmp:
        scenario = load_scenario("swarm").model_copy(update={"duration": 60.0, "swarm_quiet": 20.0})
        path = Path(tmp) / "swarm-60.toml"
        from sim.scenario import to_toml

        path.write_text(to_toml(scenario).replace("swarm_quiet = 20.0", "swarm_quiet = 20.0"))
        start = time.perf_counter()
        summary = sweep(str(path), seeds, Path(tmp) / "out", jobs=None, progress=False)
        wall = time.perf_counter() - start
    return {"seeds": float(len(seeds)), "jobs": float(summary["jobs"]), "seeds_per_minute": round(len(seeds) / wall * 60, 1), "failed": float(len(summary["failed"]))}
