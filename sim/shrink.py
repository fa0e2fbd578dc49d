"""`squall sim shrink DIR`: the smallest fault schedule that still fails the same checks.

Hypothesis does the shrinking: a schedule is drawn as "which of the original faults to
keep, and how long each lasts", the property is "the run still fails the checks the
original failed", and `hypothesis.find` returns the minimal such draw: fewest faults,
shortest durations. The seed of the world stays the same, so only the faults change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from sim.errors import BadInput
from sim.faults.schedule import Schedule, TimedFault


@dataclass
class ShrinkResult:
    original: Schedule
    minimal: Schedule
    failing: list[str]
    runs: int
    seed: int
    path: Path | None = None


def _candidates(original: Schedule) -> st.SearchStrategy[Schedule]:
    faults = list(original.faults)

    def one(f: TimedFault) -> st.SearchStrategy[TimedFault | None]:
        if f.duration is None:
            return st.one_of(st.none(), st.just(f))
        # A fraction of the original duration, simplest first: shorter faults are simpler.
        return st.one_of(st.none(), st.integers(1, 8).map(lambda k, f=f: f.model_copy(update={"duration": round(f.duration * k / 8, 3)})))

    return st.tuples(*[one(f) for f in faults]).map(lambda kept: Schedule(faults=[f for f in kept if f is not None]))


def shrink_schedule(original: Schedule, still_fails: Callable[[Schedule], bool], max_runs: int = 60, progress: Callable[[int], None] | None = None) -> tuple[Schedule, int]:
    runs = 0

    def condition(schedule: Schedule) -> bool:
        nonlocal runs
        runs += 1
        failed = still_fails(schedule)
        if progress is not None:
            progress(runs)
        return failed

    if not original.faults:
        return original, 0
    try:
        minimal = find(
            _candidates(original),
            condition,
            settings=settings(max_examples=max_runs, database=None, deadline=None, phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck)),
        )
    except NoSuchExample:
        return original, runs  # no smaller failing schedule found within the budget
    return minimal, runs


def shrink_run(run_dir: Path, max_runs: int = 60, out: Path | None = None, progress: Callable[[int], None] | None = None) -> ShrinkResult:
    """``progress`` is called with the number of runs spent so far, after each run."""
    from sim.replay import read_run_dir
    from sim.runner import run_scenario
    from sim.scenario import to_toml

    report, scenario = read_run_dir(run_dir)
    failing = [c["name"] for c in report["checks"] if not c["ok"]]
    if not failing:
        raise BadInput(f"{run_dir}: every check passed in this run, so there is nothing to shrink; shrink a failing run from a sweep")
    seed = report["seed"]
    original = scenario.schedule(seed)  # type: ignore[attr-defined]

    def still_fails(schedule: Schedule) -> bool:
        outcome = run_scenario(scenario, seed, schedule=schedule, keep_trace=False, plots=False)  # type: ignore[arg-type]
        now_failing = {c["name"] for c in outcome.report["checks"] if not c["ok"]}
        return set(failing) <= now_failing

    minimal, runs = shrink_schedule(original, still_fails, max_runs, progress)
    path = out or run_dir / "shrunk.toml"
    shrunk = scenario.model_copy(update={"faults": minimal.faults, "swarm": None, "seed": seed, "name": f"{scenario.name}-shrunk"})  # type: ignore[attr-defined]
    path.write_text(to_toml(shrunk))
    return ShrinkResult(original, minimal, failing, runs, seed, path)


def describe(result: ShrinkResult) -> list[str]:
    lines = [f"failing checks: {', '.join(result.failing)}", f"faults: {len(result.original)} -> {len(result.minimal)} after {result.runs} runs"]
    lines += [f"  at {f.at:g}s for {f.duration if f.duration is not None else 'ever'}: {f.fault.label()}" for f in result.minimal.faults]
    return lines


