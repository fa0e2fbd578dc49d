"""What `squall sim run | sweep | replay | shrink` do, apart from parsing their arguments."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from sim.errors import BadInput, out_dir, out_file, shown

console = Console()


def run_one(scenario_ref: str, seed: int | None, out: Path | None, duration: float | None) -> int:
    from sim.runner import run_scenario
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_ref)
    if duration is not None:
        scenario = scenario.with_duration(duration)
    seed = scenario.seed if seed is None else seed
    name = Path(scenario_ref).stem if scenario_ref.endswith(".toml") else scenario_ref
    out = out_dir(out or Path("squall-runs") / f"sim-{name}-seed{seed}")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"{scenario.name} seed {seed}"), BarColumn(), TextColumn("{task.completed:,.0f} of {task.total:,.0f} virtual s"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("run", total=scenario.duration)
        outcome = run_scenario(scenario, seed, out=out, scenario_ref=scenario_ref, progress=lambda now: bar.update(task, completed=now))
    _print_report(outcome.report, out)
    return 0 if outcome.ok else 1


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


def sweep_many(scenario_ref: str, seeds: str, jobs: int | None, out: Path) -> int:
    from sim.sweep import parse_seeds, print_summary, sweep

    seed_list = parse_seeds(seeds)
    summary = sweep(scenario_ref, seed_list, out_dir(out), jobs)
    print_summary(summary)
    console.print(f"sweep summary: {out / 'sweep.json'}")
    return 1 if summary["failed"] else 0


def replay_dir(run_dir: Path) -> int:
    from sim.replay import replay

    _run_dir(run_dir, "make one with squall sim run SCENARIO --out DIR")
    with console.status(f"replaying {run_dir} ..."):
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
    with console.status(f"shrinking {run_dir} (up to {runs} runs) ..."):
        result = shrink_run(run_dir, runs, out)
    for line in describe(result):
        console.print(line, highlight=False)
    console.print(f"shrunk scenario: {result.path}\nreplay with: squall sim run {result.path} --seed {result.seed}")
    return 0


def _run_dir(run_dir: Path, fix: str) -> None:
    try:
        is_dir = run_dir.is_dir()
    except OSError:  # a name too long for the file system
        is_dir = False
    if not is_dir:
        what = "is a file, not a run directory" if run_dir.is_file() else "not found"
        raise BadInput(f"run directory {shown(str(run_dir), 120)} {what}; {fix}")
