"""`squall sim sweep`: one scenario over many seeds, in parallel, with a progress bar.

Passing seeds keep only their report.json; failing seeds get a full run directory (history,
plots, scenario.toml) and a replay command. sweep.json summarises every seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

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
        "first_failure": next((c["detail"] for c in r["checks"] if not c["ok"]), ""),
        "metrics": r["metrics"],
        "faults": [f["kind"] for f in r["faults"]],
        "virtual_seconds": r["virtual_seconds"],
        "wall_seconds": r["wall_seconds"],
        "trace_hash": r["trace_hash"],
        "replay": r["replay"],
        "run_dir": str(run_dir),
    }


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides what a sweep does with
    # it (cancel, write the partial summary), so a worker must not die mid-write on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def sweep(scenario_ref: str, seeds: list[int], out: Path, jobs: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every seed; on Ctrl-C stop the workers and return (and write) a partial summary.

    A partial summary has ``partial: true`` and ``interrupted_by`` (SIGINT or SIGTERM);
    ``seeds_done`` lists the seeds that finished either way.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from sim._console import progress_bar
    from sim.scenario import load_scenario

    load_scenario(scenario_ref)  # bad input fails here, once, not in every worker
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(seeds)))
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    stopped_by: list[str] = []
    start = time.perf_counter()
    columns = (TextColumn("sweep {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn())
    with (progress_bar(*columns, transient=False) if progress else Progress(disable=True)) as bar:
        task = bar.add_task(scenario_ref, total=len(seeds), failed=0)

        def done(result: dict[str, Any]) -> None:
            results.append(result)
            bar.update(task, advance=1, failed=sum(not r["ok"] for r in results))

        try:
            with _stop_signals(stopped_by):
                if jobs == 1:
                    for seed in seeds:
                        done(_one(scenario_ref, seed, str(out)))
                else:
                    _in_pool(scenario_ref, seeds, out, jobs, done)
        except BaseException:
            # After Ctrl-C or SIGTERM whatever surfaces first (the interrupt, or a pool broken
            # by workers killed in the same signal) ends the sweep the same way: partially.
            if not stopped_by:
                raise
    wall = time.perf_counter() - start
    results.sort(key=lambda r: r["seed"])
    summary = {
        "scenario": scenario_ref,
        "seeds": seeds,
        "partial": bool(stopped_by),
        **({"interrupted_by": stopped_by[0]} if stopped_by else {}),
        "seeds_done": [r["seed"] for r in results],
        "jobs": jobs,
        "wall_seconds": round(wall, 3),
        "seeds_per_minute": round(len(results) / wall * 60.0, 2) if wall else None,
        "failed": [r["seed"] for r in results if not r["ok"]],
        "runs": results,
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def interrupted_exit_code(signal_name: str) -> int:
    """128 + the signal (``"SIGINT"``) that stopped the work, as a shell reports a command it stopped."""
    return 128 + signal.Signals[signal_name].value


@contextlib.contextmanager
def _stop_signals(stopped_by: list[str]) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM (a CI job cancelled) stop the sweep; ``stopped_by`` names the signal."""

    def stop(signum: int, frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; a sweep elsewhere keeps Python's defaults
        return
    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _in_pool(scenario_ref: str, seeds: list[int], out: Path, jobs: int, done: Any) -> None:
    # forkserver, not fork: forking a process whose progress bar runs a thread can
    # leave a child holding a lock nobody will release.
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["sim.runner", "sim.scenario", "system.fleet"])
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_ignore_sigint)
    futures = []
    taken: set[Any] = set()
    try:
        futures = [pool.submit(_one, scenario_ref, seed, str(out)) for seed in seeds]
        for fut in as_completed(futures):
            taken.add(fut)
            done(fut.result())
    except BaseException:
        # Seeds that finished while the interrupt arrived still count.
        for fut in futures:
            if fut not in taken and fut.done() and not fut.cancelled() and fut.exception() is None:
                taken.add(fut)
                done(fut.result())
        # Interrupted (or a worker failed): the seeds still queued are dropped and the running
        # ones stopped now, not after the whole queue has run. The executor has no public way
        # to stop a running worker before Python 3.14, hence its process table.
        workers = list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for w in workers:
            w.terminate()
        for w in workers:
            w.join(5)
        raise
    finally:
        pool.shutdown(wait=True)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from sim._console import people

    console = people()
    done = f"INTERRUPTED after {len(summary['runs'])} of {len(summary['seeds'])} seeds" if summary.get("partial") else f"{len(summary['runs'])} seeds"
    table = Table(title=f"sweep {summary['scenario']}: {done}, {len(summary['failed'])} failed, {summary['seeds_per_minute']} seeds/min")
    for col in ("seed", "result", "published", "lost", "dup", "p99 ms", "reconnects", "faults"):
        # fold, not ellipsis: on a narrow terminal a cell wraps; nothing is cut off
        table.add_column(col, justify="right" if col not in ("result", "faults") else "left", overflow="fold")
    for r in summary["runs"]:
        m = r["metrics"]
        table.add_row(
            str(r["seed"]), "ok" if r["ok"] else f"[red]FAILED {','.join(r['failed'])}[/red]", str(m["published"]), str(m["lost"]),
            str(m["duplicated"]), str(m["latency_ms"]["p99"]), str(m["reconnects"]), ",".join(sorted(set(r["faults"]))) or "-",
        )
    console.print(table)
    for r in summary["runs"]:
        if not r["ok"]:
            console.print(f"[red]seed {r['seed']}[/red]: {r['first_failure']}\n  replay: {r['replay']}    (run dir {r['run_dir']})", highlight=False)
