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

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn


def nightly(out: Path | None, duration: float, seeds: str, sweep_scenario: str, broker_url: str | None, upstream: str | None, jobs: int | None, only: str | None = None) -> int:
    from chaos._preflight import preflight
    from chaos.runner import run_chaos
    from sim._console import people, progress_bar
    from sim.errors import out_dir, pick
    from sim.scenario import load_scenario, shipped
    from sim.sweep import interrupted_exit_code, parse_seeds, sweep

    # Every argument is checked before the first run: a nightly must not fail an hour in on a typo.
    seed_list = parse_seeds(seeds)
    load_scenario(sweep_scenario)
    # Shipped names, or scenario files of your own (a .toml path), each loaded now.
    files = [n.strip() for n in (only or "").split(",") if n.strip().endswith(".toml")]
    rest = ",".join(n for n in (only or "").split(",") if n.strip() and not n.strip().endswith(".toml"))
    names = (pick("--scenarios", rest, shipped()) if rest or not files else []) + files
    for f in files:
        load_scenario(f)
    preflight(broker_url, upstream, os.environ.get("TOXIPROXY_URL"))
    out = out_dir(out or Path("squall-runs") / f"nightly-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}")
    console = people()
    rows: list[dict[str, Any]] = []
    columns = (TextColumn("nightly {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    stopped: str | None = None  # the signal that interrupted the night, if one did
    with progress_bar(*columns, transient=False) as bar:
        task = bar.add_task("chaos", total=len(names))
        for name in names:
            bar.update(task, description=f"chaos {name}")
            run_dir = out / f"chaos-{Path(name).stem}"
            try:
                outcome = run_chaos(load_scenario(name), out=run_dir, broker_url=broker_url, upstream=upstream, duration=duration, scenario_ref=name)
                report = outcome.report
                rows.append({"kind": "chaos", "scenario": name, "ok": report["ok"], "failed": [c["name"] for c in report["checks"] if not c["ok"]], "replay": report["replay"], "dir": str(run_dir)})
            except KeyboardInterrupt:  # Ctrl-C: keep what ran, skip the rest, still write the index
                stopped = "SIGINT"
                break
            except Exception as exc:  # one broken scenario must not hide the others' results
                rows.append({"kind": "chaos", "scenario": name, "ok": False, "failed": [f"crashed: {type(exc).__name__}: {exc}"], "replay": f"squall chaos run {name} --duration {duration:g}", "dir": str(run_dir)})
            bar.advance(task)
    summary = sweep(sweep_scenario, seed_list, out / f"sweep-{Path(sweep_scenario).stem}", jobs) if stopped is None else None
    if summary is not None:
        for r in summary["runs"]:
            rows.append({"kind": "sim", "scenario": sweep_scenario, "seed": r["seed"], "ok": r["ok"], "failed": r["failed"], "replay": r["replay"], "dir": r["run_dir"]})
        stopped = summary.get("interrupted_by")
    index = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ok": stopped is None and all(r["ok"] for r in rows),
        "proxy": os.environ.get("TOXIPROXY_URL", "squall (own process)"),
        "broker": broker_url or "embedded",
        "chaos_duration": duration,
        "sweep": {
            "scenario": sweep_scenario, "seeds": seed_list,
            "seeds_done": summary["seeds_done"] if summary else [],
            "seeds_per_minute": summary["seeds_per_minute"] if summary else None,
        },
        **({"interrupted_by": stopped} if stopped else {}),
        "runs": rows,
    }
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "index.md").write_text(_markdown(index, out))
    failed = [r for r in rows if not r["ok"]]
    console.print(f"nightly: {len(rows) - len(failed)} of {len(rows)} runs passed; index {out / 'index.md'}")
    for r in failed:
        console.print(f"[red]FAILED[/red] {r['kind']} {r['scenario']}{' seed ' + str(r['seed']) if 'seed' in r else ''}: {', '.join(r['failed'])}\n  replay: {r['replay']}", highlight=False)
    if stopped:
        console.print(f"squall: interrupted ({stopped}): {len(index['sweep']['seeds_done'])} of {len(seed_list)} sweep seeds ran; the index lists what did", highlight=False)
        return interrupted_exit_code(stopped)
    return 0 if index["ok"] else 1


def _report_link(run_dir: Path, index_dir: Path) -> str:
    """A link from index.md to the run's report: report.md, or report.json for a passing sweep seed."""
    for name in ("report.md", "report.json"):
        if (run_dir / name).exists():
            return Path(os.path.relpath(run_dir / name, start=index_dir)).as_posix()
    return Path(os.path.relpath(run_dir, start=index_dir)).as_posix()


def _markdown(index: dict[str, Any], index_dir: Path) -> str:
    lines = [
        f"# squall nightly {index['when']}: {'PASSED' if index['ok'] else 'FAILED'}",
        "",
        f"proxy: {index['proxy']}; broker: {index['broker']}; chaos runs of {index['chaos_duration']:g} s; "
        f"sim sweep of {index['sweep']['scenario']} over {len(index['sweep']['seeds_done'])} of {len(index['sweep']['seeds'])} seeds ({index['sweep']['seeds_per_minute']} seeds/min)"
        + (f"; INTERRUPTED ({index['interrupted_by']}): not every run ran" if index.get("interrupted_by") else ""),
        "",
        "| run | result | failed checks | replay | report |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(index["runs"], key=lambda r: r["ok"]):
        name = f"{r['kind']} {r['scenario']}" + (f" seed {r['seed']}" if "seed" in r else "")
        link = f"[report]({_report_link(Path(r['dir']), index_dir)})"
        lines.append(f"| {name} | {'ok' if r['ok'] else '**FAILED**'} | {', '.join(r['failed']) or '-'} | `{r['replay']}` | {link} |")
    return "\n".join(lines) + "\n"
