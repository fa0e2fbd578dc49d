"""`squall sim replay DIR`: run a run directory again and prove it is the same run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sim._trace import Divergence, first_divergence
from sim.errors import BadInput


@dataclass
class ReplayResult:
    same: bool
    expected: str
    got: str
    divergence: Divergence | None
    environment_changes: list[str] = field(default_factory=list)  # recorded -> here, when they differ


def read_run_dir(run_dir: Path) -> tuple[dict, "object"]:
    from sim.scenario import load_scenario

    if not (run_dir / "report.json").is_file() or not (run_dir / "scenario.toml").is_file():
        raise BadInput(f"{run_dir} is not a squall run directory (needs report.json and scenario.toml); make one with squall sim run --out DIR")
    try:
        report = json.loads((run_dir / "report.json").read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{run_dir}/report.json is not JSON ({exc.msg}); rerun squall sim run --out {run_dir}") from None
    return report, load_scenario(run_dir / "scenario.toml")


def replay(run_dir: Path) -> ReplayResult:
    from sim.report import environment_changes, load_trace
    from sim.runner import run_scenario

    report, scenario = read_run_dir(run_dir)
    if report.get("mode") != "sim":
        raise BadInput(f"{run_dir} is a {report.get('mode')} run: only sim runs replay byte for byte")
    outcome = run_scenario(scenario, report["seed"], keep_trace=True)  # type: ignore[arg-type]
    got = outcome.report["trace_hash"]
    divergence = None
    if got != report["trace_hash"]:
        stored = load_trace(run_dir)
        if stored is not None and outcome.trace is not None:
            divergence = first_divergence(stored, outcome.trace.events)
    changes = environment_changes(report.get("environment"))
    return ReplayResult(got == report["trace_hash"], report["trace_hash"], got, divergence, changes)
