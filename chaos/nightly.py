"""`squall chaos nightly`: every shipped scenario for real, plus a sweep in sim, one index.

    out/
      index.md, index.json      one line per run, failures first, with replay commands
      chaos-<scenario>/         a chaos run directory per shipped scenario
      sweep-<scenario>/         the sim sweep (sweep.json, failing seeds' run directories)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def nightly(out: Path | None, duration: float, seeds: str, sweep_scenario: str, broker_url: str | None, upstream: str | None, jobs: int | None, only: str | None = None) -> int:
    from chaos._preflight import preflight
    from chaos.runner import run_chaos
    from sim.errors import out_dir, pick
    from sim.scenario import load_scenario, shipped
    from sim.sweep import parse_seeds, sweep

    # Every argument is checked before the first run: a nightly must not fail an hour in on a typo.
    seed_list = parse_seeds(seeds)
    load_scenario(sweep_scenario)
    # Shipped names, or scenario files of your own (a .toml path).
    files = [n.strip() for n in (only or "").split(",") if n.strip().endswith(".toml")]
    rest = ",".join(n for n in (only or "").split(",") if n.strip() and not n.strip().endswith(".toml"))
    names = (pick("--scenarios", rest, shipped()) if rest or not files else []) + files
    preflight(broker_url, upstream, os.environ.get("TOXIPROXY_URL"))
    out = out_dir(out or Path("squall-runs") / f"nightly-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}")
    console = Console()
    rows: list[dict[str, Any]] = []
    columns = (TextColumn("nightly {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("chaos", total=len(names))
        for name in names:
            bar.update(task, description=f"chaos {name}")
            run_dir = out / f"chaos-{Path(name).stem}"
            try:
                outcome = run_chaos(load_scenario(name), out=run_dir, broker_url=broker_url, upstream=upstream, duration=duration, scenario_ref=name)
                report = outcome.report
                rows.append({"kind": "chaos", "scenario": name, "ok": report["ok"], "failed": [c["name"] for c in report["checks"] if not c["ok"]], "replay": report["replay"], "dir": str(run_dir)})
            except Exception as exc:  # one broken scenario must not hide the others' results
                rows.append({"kind": "chaos", "scenario": name, "ok": False, "failed": [f"crashed: {type(exc).__name__}: {exc}"], "replay": f"squall chaos run {name}", "dir": str(run_dir)})
            bar.advance(task)
    summary = sweep(sweep_scenario, seed_list, out / f"sweep-{Path(sweep_scenario).stem}", jobs)
    for r in summary["runs"]:
        rows.append({"kind": "sim", "scenario": sweep_scenario, "seed": r["seed"], "ok": r["ok"], "failed": r["failed"], "replay": r["replay"], "dir": r["run_dir"]})
    ok = all(r["ok"] for r in rows)
    index = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ok": ok,
        "proxy": os.environ.get("TOXIPROXY_URL", "squall (own process)"),
        "broker": broker_url or "embedded",
        "chaos_duration": duration,
        "sweep": {"scenario": sweep_scenario, "seeds": seed_list, "seeds_per_minute": summary["seeds_per_minute"]},
        "runs": rows,
    }
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "index.md").write_text(_markdown(index))
    failed = [r for r in rows if not r["ok"]]
    console.print(f"nightly: {len(rows) - len(failed)} of {len(rows)} runs passed; index {out / 'index.md'}")
    for r in failed:
        console.print(f"[red]FAILED[/red] {r['kind']} {r['scenario']}{' seed ' + str(r['seed']) if 'seed' in r else ''}: {', '.join(r['failed'])}\n  replay: {r['replay']}", highlight=False)
    return 0 if ok else 1


def _markdown(index: dict[str, Any]) -> str:
    lines = [
        f"# squall nightly {index['when']}: {'PASSED' if index['ok'] else 'FAILED'}",
        "",
        f"proxy: {index['proxy']}; broker: {index['broker']}; chaos runs of {index['chaos_duration']:g} s; "
        f"sim sweep of {index['sweep']['scenario']} over {len(index['sweep']['seeds'])} seeds ({index['sweep']['seeds_per_minute']} seeds/min)",
        "",
        "| run | result | failed checks | replay | report |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(index["runs"], key=lambda r: r["ok"]):
        name = f"{r['kind']} {r['scenario']}" + (f" seed {r['seed']}" if "seed" in r else "")
        report = Path(r["dir"]) / "report.md"
        link = f"[report]({os.path.relpath(report, start=Path(r['dir']).parent.parent) if report.exists() else r['dir']})"
        lines.append(f"| {name} | {'ok' if r['ok'] else '**FAILED**'} | {', '.join(r['failed']) or '-'} | `{r['replay']}` | {link} |")
    return "\n".join(lines) + "\n"
