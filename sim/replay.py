"""`squall sim replay DIR`: run a run directory again and prove it is the same run."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from sim._trace import Divergence, TraceEvent, first_divergence
from sim.errors import BadInput, shown


@dataclass
class ReplayResult:
    same: bool
    expected: str
    got: str
    divergence: Divergence | None


def read_run_dir(run_dir: Path) -> tuple[dict, "object"]:
    """A run directory's report.json (checked for the fields replay and shrink use) and scenario."""
    from sim.scenario import load_scenario

    if not (run_dir / "report.json").is_file() or not (run_dir / "scenario.toml").is_file():
        raise BadInput(f"{run_dir} is not a squall run directory (needs report.json and scenario.toml); make one with squall sim run --out DIR")
    fix = f"rerun squall sim run --out {run_dir} to write it again"
    try:
        report = json.loads((run_dir / "report.json").read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{run_dir}/report.json is not JSON ({getattr(exc, 'msg', None) or exc.reason}); {fix}") from None
    except RecursionError:
        raise BadInput(f"{run_dir}/report.json is nested too deeply to be a report; {fix}") from None
    problems = _report_problems(report)
    if problems:
        raise BadInput(f"{run_dir}/report.json is damaged ({'; '.join(problems)}); {fix}")
    return report, load_scenario(run_dir / "scenario.toml")


def _report_problems(report: object) -> list[str]:
    if not isinstance(report, dict):
        return [f"a {type(report).__name__}, not an object"]
    problems = []
    if not isinstance(report.get("seed"), int) or isinstance(report.get("seed"), bool):
        problems.append("seed: missing or not an integer")
    if report.get("mode") == "sim" and not isinstance(report.get("trace_hash"), str):
        problems.append("trace_hash: missing or not a string")
    checks = report.get("checks")
    if not isinstance(checks, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("ok"), bool) for c in checks):
        problems.append("checks: missing or not a list of {name, ok}")
    return problems


def _stored_trace(run_dir: Path, expected: str, got: str) -> list[TraceEvent] | None:
    from sim.report import load_trace

    try:
        events = load_trace(run_dir)
        for e in events or []:
            if not (isinstance(e.t, (int, float)) and isinstance(e.kind, str) and isinstance(e.conn, int) and isinstance(e.detail, str)):
                raise TypeError(f"not a trace event: {e!r}")
        return events
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise BadInput(
            f"{run_dir}/trace.jsonl.gz is damaged ({type(exc).__name__}: {shown(str(exc), 80)}); the run differs "
            f"(expected trace_hash {expected}, got {got}) but its first divergence cannot be shown; rerun squall sim run to write the trace again"
        ) from None


def replay(run_dir: Path) -> ReplayResult:
    from sim.runner import run_scenario

    report, scenario = read_run_dir(run_dir)
    if report.get("mode") != "sim":
        raise BadInput(f"{run_dir} is a {report.get('mode')} run: only sim runs replay byte for byte")
    outcome = run_scenario(scenario, report["seed"], keep_trace=True)  # type: ignore[arg-type]
    got = outcome.report["trace_hash"]
    divergence = None
    if got != report["trace_hash"]:
        stored = _stored_trace(run_dir, report["trace_hash"], got)
        if stored is not None and outcome.trace is not None:
            divergence = first_divergence(stored, outcome.trace.events)
    return ReplayResult(got == report["trace_hash"], report["trace_hash"], got, divergence)
