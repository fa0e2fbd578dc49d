"""`squall sim sweep`: one scenario over many seeds, in parallel, with a progress bar.

Passing seeds keep only their report.json; failing seeds get a full run directory (history,
plots, scenario.toml) and a replay command. sweep.json summarises every seed.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sim.errors import BadInput, shown

MAX_SEEDS = 100_000  # seeds in one sweep: hours of runs already; more is a typo (1-1000000000)


def parse_seeds(text: str) -> list[int]:
    """``"1-50"``, ``"3,7,9"`` or a mix: ``"1-5,9"``; at most MAX_SEEDS seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                if len(seeds) + hi - lo + 1 > MAX_SEEDS:
                    raise BadInput(f"--seeds {shown(text, 60)}: {len(seeds) + hi - lo + 1:,} seeds, a sweep takes at most {MAX_SEEDS:,}; split it into several sweeps")
                seeds.extend(range(lo, hi + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise BadInput(f"--seeds {shown(repr(text), 60)}: write a range like 1-50, a list like 3,7,9, or both (1-5,9)") from None
    if len(seeds) > MAX_SEEDS:
        raise BadInput(f"--seeds {shown(text, 60)}: {len(seeds):,} seeds, a sweep takes at most {MAX_SEEDS:,}; split it into several sweeps")
    if not seeds:
        raise BadInput("--seeds: no seeds given; write a range like 1-50")
    return list(dict.fromkeys(seeds))


def _one(scenario_ref: str, seed: int, out: str) -> dict[str, Any]:
    from sim.runner import run_scenario
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_ref)
    outcome = run_scenario(scenario, seed, keep_trace=False, scenario_ref=scenario_ref)
    run_dir = Path(out) / f"seed-{seed}"
    if not outcome.ok:
        from sim.report import write_run

        write_run(run_dir, outcome)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "report.json").write_text(json.dumps(outcome.report, indent=2, default=str))
    r = outcome.report
    return {
        "seed": seed,
        "ok": r["ok"],
        "failed": [c["name"] for c in r["checks"] if not c["ok"]],
        "first_failure": next((c["detail"][:240] for c in r["checks"] if not c["ok"]), ""),
        "metrics": r["metrics"],
        "faults": [f["kind"] for f in r["faults"]],
        "virtual_seconds": r["virtual_seconds"],
        "wall_seconds": r["wall_seconds"],
        "trace_hash": r["trace_hash"],
        "replay": r["replay"],
        "run_dir": str(run_dir),
    }


def sweep(scenario_ref: str, seeds: list[int], out: Path, jobs: int | None = None, progress: bool = True) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from sim.scenario import load_scenario

    load_scenario(scenario_ref)  # bad input fails here, once, not in every worker
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(seeds)))
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    columns = (TextColumn("sweep {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(scenario_ref, total=len(seeds), failed=0)
        if jobs == 1:
            for seed in seeds:
                results.append(_one(scenario_ref, seed, str(out)))
                bar.update(task, advance=1, failed=sum(not r["ok"] for r in results))
        else:
            # forkserver, not fork: forking a process whose progress bar runs a thread can
            # leave a child holding a lock nobody will release.
            ctx = get_context("forkserver")
            ctx.set_forkserver_preload(["sim.runner", "sim.scenario", "system.fleet"])
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = [pool.submit(_one, scenario_ref, seed, str(out)) for seed in seeds]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update(task, advance=1, failed=sum(not r["ok"] for r in results))
    wall = time.perf_counter() - start
    results.sort(key=lambda r: r["seed"])
    summary = {
        "scenario": scenario_ref,
        "seeds": seeds,
        "jobs": jobs,
        "wall_seconds": round(wall, 3),
        "seeds_per_minute": round(len(seeds) / wall * 60.0, 2) if wall else None,
        "failed": [r["seed"] for r in results if not r["ok"]],
        "runs": results,
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"sweep {summary['scenario']}: {len(summary['runs'])} seeds, {len(summary['failed'])} failed, {summary['seeds_per_minute']} seeds/min")
    for col in ("seed", "result", "published", "lost", "dup", "p99 ms", "reconnects", "faults"):
        table.add_column(col, justify="right" if col not in ("result", "faults") else "left")
    for r in summary["runs"]:
        m = r["metrics"]
        table.add_row(
            str(r["seed"]), "ok" if r["ok"] else f"[red]FAILED {','.join(r['failed'])}[/red]", str(m["published"]), str(m["lost"]),
            str(m["duplicated"]), str(m["latency_ms"]["p99"]), str(m["reconnects"]), ",".join(sorted(set(r["faults"]))) or "-",
        )
    console.print(table)
    for r in summary["runs"]:
        if not r["ok"]:
            console.print(f"[red]seed {r['seed']}[/red]: {r['first_failure']}\n  replay: {r['replay']}    (run dir {r['run_dir']})")
