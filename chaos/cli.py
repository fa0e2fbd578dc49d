"""What `squall chaos run` does, apart from parsing its arguments."""

from __future__ import annotations

import os
from pathlib import Path


def run_one(scenario_ref: str, seed: int | None, out: Path | None, duration: float | None, broker_url: str | None, upstream: str | None, as_json: bool = False) -> int:
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from chaos._preflight import preflight
    from chaos.runner import run_chaos
    from sim._console import progress_bar
    from sim.errors import out_dir
    from sim.run_cli import _show_report
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_ref)
    seed = scenario.seed if seed is None else seed
    name = Path(scenario_ref).stem if scenario_ref.endswith(".toml") else scenario_ref
    preflight(broker_url, upstream, os.environ.get("TOXIPROXY_URL"))  # before the output folder and the proxy: a wrong URL fails at once
    out = out_dir(out or Path("squall-runs") / f"chaos-{name}-seed{seed}")
    wall = duration or scenario.chaos.duration
    columns = (TextColumn(f"chaos {scenario.name} seed {seed}"), BarColumn(), TextColumn("{task.completed:.0f} of {task.total:g} wall s, {task.fields[published]:,} published"), TimeElapsedColumn())
    with progress_bar(*columns) as bar:
        task = bar.add_task("chaos", total=wall, published=0)
        outcome = run_chaos(
            scenario, seed, out=out, broker_url=broker_url, upstream=upstream, duration=duration, scenario_ref=scenario_ref,
            progress=lambda done, published: bar.update(task, completed=done, published=published),
        )
    _show_report(outcome.report, out, as_json)
    return 0 if outcome.ok else 1
