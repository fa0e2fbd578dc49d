"""What `squall sim run | sweep | replay | shrink | list` do, apart from parsing their arguments."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sim._console import people, progress_bar, progress_console
from sim.errors import BadInput, out_dir, out_file, shown

console = people()


def _emit_json(obj: object) -> None:
    """The machine-readable result: the only thing on stdout under --json."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def run_one(scenario_ref: str, seed: int | None, out: Path | None, duration: float | None, as_json: bool = False) -> int:
    from sim.runner import replay_command, run_scenario
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_ref)
    if duration is not None:
        scenario = scenario.with_duration(duration)
    seed = scenario.seed if seed is None else seed
    name = Path(scenario_ref).stem if scenario_ref.endswith(".toml") else scenario_ref
    out = out_dir(out or Path("squall-runs") / f"sim-{name}-seed{seed}")
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"{scenario.name} seed {seed}"), BarColumn(), TextColumn("{task.completed:,.0f} of {task.total:,.0f} virtual s"), TimeElapsedColumn())
    with progress_bar(*columns) as bar:
        task = bar.add_task("run", total=scenario.duration)
        outcome = run_scenario(
            scenario, seed, out=out, scenario_ref=scenario_ref, replay=replay_command(scenario_ref, seed, duration),
            progress=lambda now: bar.update(task, completed=now),
        )
    _show_report(outcome.report, out, as_json)
    return 0 if outcome.ok else 1


def _show_report(report: dict, out: Path, as_json: bool) -> None:
    """report.json on stdout for a script (``--json``), or the summary for a person."""
    if as_json:  # exactly what report.json holds (write_run adds the run dir and the environment)
        written = out / "report.json"
        _emit_json(json.loads(written.read_text()) if written.is_file() else {**report, "run_dir": str(out)})
    else:
        _print_report(report, out)


def _print_report(report: dict, out: Path) -> None:
    m = report["metrics"]
    ratio = report["virtual_seconds"] / report["wall_seconds"] if report["wall_seconds"] else float("inf")
    console.print(f"[bold]{report['scenario']}[/bold] {report['mode']} seed {report['seed']}: {report['virtual_seconds']:g} virtual s in {report['wall_seconds']:.2f} wall s ({ratio:.0f}x)")
    console.print(f"published {m['published']}  delivered {m['delivered']}  lost {m['lost']}  duplicated {m['duplicated']}  reconnects {m['reconnects']}  latency p50/p95/p99 {m['latency_ms']['p50']}/{m['latency_ms']['p95']}/{m['latency_ms']['p99']} ms")
    for c in report["checks"]:
        mark = "[red]FAILED[/red]" if not c["ok"] else ("[yellow]skipped[/yellow]" if c.get("skipped") else "[green]ok[/green]    ")
        console.print(f"  {mark} {c['name']}: {c['detail']}", highlight=False)
    if report.get("trace_hash"):
        console.print(f"trace_hash {report['trace_hash']}")
    console.print(f"report     {out / 'report.md'}")
    if not report["ok"]:
        console.print(f"[red]seed {report['seed']} failed[/red]; replay with: {report['replay']}")


def sweep_many(scenario_ref: str, seeds: str, jobs: int | None, out: Path, as_json: bool = False) -> int:
    from sim.sweep import interrupted_exit_code, parse_seeds, print_summary, sweep

    summary = sweep(scenario_ref, parse_seeds(seeds), out_dir(out), jobs)
    if as_json:
        _emit_json(summary)
    else:
        print_summary(summary)
        console.print(f"sweep summary: {out / 'sweep.json'}")
    if summary["partial"]:
        progress_console().print(f"squall: interrupted ({summary['interrupted_by']}): {len(summary['seeds_done'])} of {len(summary['seeds'])} seeds done; partial summary in {out / 'sweep.json'}", highlight=False)
        return interrupted_exit_code(summary["interrupted_by"])
    return 1 if summary["failed"] else 0


def replay_dir(run_dir: Path) -> int:
    from sim.replay import read_run_dir, replay
    from sim.report import environment_changes

    _run_dir(run_dir, "make one with squall sim run SCENARIO --out DIR")
    report, _ = read_run_dir(run_dir)
    changes = environment_changes(report.get("environment"))
    if changes:  # said first: it explains a different run better than the divergence does
        console.print(
            f"[yellow]recorded in a different environment[/yellow] ({'; '.join(changes)}): another interpreter or "
            "library version may schedule the same seed differently; replay it where it was recorded",
            highlight=False,
            soft_wrap=True,
        )
    with progress_console().status(f"replaying {run_dir} ..."):
        result = replay(run_dir)
    if result.same:
        console.print(f"[green]same run[/green]: trace_hash {result.got}")
        return 0
    console.print(f"[red]different run[/red]: expected trace_hash {result.expected}, got {result.got}")
    if result.divergence is not None:
        console.print(str(result.divergence), highlight=False)
    return 1


def shrink_dir(run_dir: Path, runs: int, out: Path | None) -> int:
    from sim.shrink import describe, shrink_run

    _run_dir(run_dir, "shrink a failing run directory from squall sim run or sweep")
    if out is not None:
        out_file(out)
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    # hypothesis may stop before the budget (nothing left to shrink), so the bar can end early.
    columns = (TextColumn(f"shrinking {run_dir}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"), TimeElapsedColumn())
    with progress_bar(*columns) as bar:
        task = bar.add_task("shrink", total=runs)
        result = shrink_run(run_dir, runs, out, progress=lambda n: bar.update(task, completed=n))
    for line in describe(result):
        console.print(line, highlight=False)
    console.print(f"shrunk scenario: {result.path}\nreplay with: squall sim run {result.path} --seed {result.seed}")
    return 0


def version_line() -> str:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"squall {of('squall')} (amqtt {of('amqtt')}, Python {platform.python_version()})"


def list_scenarios(as_json: bool) -> int:
    from sim.scenario import load_scenario, shipped

    rows = []
    for name in shipped():
        s = load_scenario(name)
        rows.append({"name": name, "description": " ".join(s.description.split()), "duration": s.duration, "seed": s.seed})
    if as_json:
        _emit_json(rows)
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        console.print(f"[bold]{r['name']:<{width}}[/bold]  {r['duration']:>6g} s  ", end="")
        console.print(r["description"], markup=False, highlight=False)
    console.print("run one with: squall sim run NAME (or squall chaos run NAME); a .toml path works too", highlight=False)
    return 0


def _run_dir(run_dir: Path, fix: str) -> None:
    try:
        is_dir = run_dir.is_dir()
    except OSError:  # a name too long for the file system
        is_dir = False
    if not is_dir:
        what = "is a file, not a run directory" if run_dir.is_file() else "not found"
        raise BadInput(f"run directory {shown(str(run_dir), 120)} {what}; {fix}")
