"""Run directories: report.json (machines), report.md (people), history, plots, and what replays it.

    out/
      report.json     contract fields (see ARCHITECTURE.md) + fault windows + replay command
      report.md       the same for a person, failed checks first
      history.jsonl   what the system did (sim.history)
      scenario.toml   the scenario with this seed's faults written out: replays the run exactly
      trace.jsonl.gz  the network trace (sim runs), for `squall sim replay` divergence reports
      timeline.png, latency.png, reconnects.png
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim._trace import TraceEvent
from sim.scenario import to_toml

if TYPE_CHECKING:
    from sim.runner import RunOutcome


def write_run(out: Path, outcome: "RunOutcome", *, plots: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = outcome.report
    resolved = outcome.scenario.model_copy(update={"faults": list(outcome.schedule.faults), "swarm": None, "seed": report["seed"]})
    (out / "scenario.toml").write_text(to_toml(resolved))
    report = {**report, "run_dir": str(out)}
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    (out / "report.md").write_text(markdown(report))
    outcome.history.dump(out / "history.jsonl")
    if outcome.trace is not None and outcome.trace.keep:
        with gzip.open(out / "trace.jsonl.gz", "wt") as fh:
            for e in outcome.trace.events:
                fh.write(json.dumps([e.t, e.kind, e.conn, e.detail]) + "\n")
    if plots:
        from sim.plots import plot_run

        plot_run(out, outcome.history.records, report)


def load_trace(run_dir: Path) -> list[TraceEvent] | None:
    path = run_dir / "trace.jsonl.gz"
    if not path.exists():
        return None
    with gzip.open(path, "rt") as fh:
        return [TraceEvent(*json.loads(line)) for line in fh if line.strip()]


_NAMES = ("id", "request", "subject", "client", "host", "room")
"""The keys that name what broke a promise, most specific first."""


def culprit(check: dict[str, Any]) -> str:
    """For a failed check: the first message, request, client or host that broke the promise,
    and the virtual time it did (``-`` for a check that passed)."""
    if check["ok"]:
        return "-"
    first = check.get("first") or {}
    parts = []
    for key in _NAMES:
        if first.get(key) is not None:
            value = first[key]
            parts.append(f"request {value}" if key == "request" else f"`{value}`")
            if key in ("id", "request"):
                who = first.get("client") or first.get("source")
                if who:
                    parts.append(f"({who})")
            break
    at = check.get("at", first.get("t"))
    if at is not None:
        parts.append(f"at t={at:.3f}s")
    return " ".join(parts) or "-"


def markdown(report: dict[str, Any]) -> str:
    checks = sorted(report["checks"], key=lambda c: (c["ok"], bool(c.get("skipped"))))
    m = report["metrics"]
    lat = m.get("latency_ms", {})
    verdict = "PASSED" if report["ok"] else "FAILED"
    lines = [
        f"# {report['scenario']} ({report['mode']}, seed {report['seed']}): {verdict}",
        "",
        f"Replay: `{report['replay']}`",
        "",
        f"- broker: {report.get('broker')}",
        f"- virtual seconds: {report['virtual_seconds']:g}, wall seconds: {report['wall_seconds']:g}",
    ]
    if report.get("trace_hash"):
        lines.append(f"- trace hash: `{report['trace_hash']}`")
    lines += [
        f"- published {m['published']}, delivered {m['delivered']}, lost {m['lost']}, duplicated {m['duplicated']}, reconnects {m['reconnects']}",
        f"- latency p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, p99 {lat.get('p99')} ms",
        "",
        "## Checks",
        "",
        "| check | result | first to break it | detail |",
        "|---|---|---|---|",
    ]
    for c in checks:
        detail = str(c["detail"]).replace("|", "\\|")
        result = "**FAILED**" if not c["ok"] else ("skipped" if c.get("skipped") else "ok")
        lines.append(f"| {c['name']} | {result} | {culprit(c)} | {detail} |")
    lines += ["", "## Faults", ""]
    if report.get("faults"):
        lines += ["| from (s) | until (s) | fault |", "|---|---|---|"]
        for f in report["faults"]:
            until = "-" if f["until"] is None else f"{f['until']:g}"
            lines.append(f"| {f['at']:g} | {until} | {f['label']} |")
    else:
        lines.append("None.")
    lines += ["", "![timeline](timeline.png)", "", "![latency](latency.png)", ""]
    if m.get("reconnects"):
        lines += ["![reconnects](reconnects.png)", ""]
    else:
        # An empty picture reads as a broken plot; say it in words.
        lines += ["Reconnects: none in this run ([reconnects.png](reconnects.png) shows any disconnects).", ""]
    return "\n".join(lines)
