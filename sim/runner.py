"""The sim runner: a scenario's broker and fleet as hosts of a simulated world.

`run_scenario(scenario, seed)` gives a `RunOutcome` (report dict, history, trace); with
``out`` it also writes the run directory that `squall sim replay` and `shrink` read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from sim._plan import plan
from sim._trace import Trace
from sim._world import World
from sim.checks import CheckResult, RunFacts, metrics, run_checks, run_custom_checks
from sim.errors import SimulationError
from sim.faults.schedule import CrashFault, Schedule
from sim.history import History
from sim.scenario import Scenario

BROKER = "broker"
BROKER_PORT = 1883


@dataclass
class RunOutcome:
    report: dict[str, Any]
    history: History
    schedule: Schedule
    trace: Trace | None
    scenario: Scenario

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.report["checks"])


def replay_command(scenario_ref: str, seed: int, duration: float | None = None) -> str:
    """``duration``: when the run overrode the scenario's (``--duration``), the replay must too."""
    return f"squall sim run {scenario_ref} --seed {seed}" + (f" --duration {duration:g}" if duration is not None else "")


def run_scenario(
    scenario: Scenario,
    seed: int | None = None,
    *,
    out: Path | None = None,
    schedule: Schedule | None = None,
    keep_trace: bool = True,
    scenario_ref: str | None = None,
    plots: bool = True,
    progress: Callable[[float], None] | None = None,
    replay: str | None = None,
) -> RunOutcome:
    """``progress`` is called with the virtual time, a hundred times over the run (it watches
    the clock from the kernel and changes nothing in the run: same seed, same trace hash).
    ``replay`` replaces the report's replay command (default: ``replay_command(scenario_ref, seed)``)."""
    with quiet("amqtt"), quiet("system.supervisor"):  # a supervised service's death is in the history
        return _run(scenario, scenario.seed if seed is None else seed, out=out, schedule=schedule, keep_trace=keep_trace, scenario_ref=scenario_ref, plots=plots, progress=progress, replay=replay)


@contextlib.contextmanager
def quiet(name: str) -> Iterator[None]:
    """Silence a chatty library's logger for the length of a run, then put it back."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(scenario: Scenario, seed: int, *, out: Path | None, schedule: Schedule | None, keep_trace: bool, scenario_ref: str | None, plots: bool, progress: Callable[[float], None] | None = None, replay: str | None = None) -> RunOutcome:
    schedule = scenario.schedule(seed) if schedule is None else schedule
    net = scenario.network
    world = World(
        seed=seed,
        latency=net.latency_ms / 1000.0,
        jitter=net.jitter_ms / 1000.0,
        tick=net.tick_ms / 1000.0,
        user_timeout=net.user_timeout_s,
        trace=keep_trace,
    )
    history = History(clock=lambda: world.now)
    world.at_end(history.seal)
    flavor = scenario.broker.flavor

    from system.broker import EmbeddedBroker

    durable = EmbeddedBroker(host="0.0.0.0", port=BROKER_PORT, flavor=flavor, observer=history.wire if scenario.judges_wire else None)

    async def broker() -> None:
        durable.crashed(durable=scenario.broker.durable)  # a no-op on the first boot
        await durable.start()
        await asyncio.Event().wait()

    world.host(BROKER).spawn(broker)
    url = f"mqtt://{BROKER}:{BROKER_PORT}"
    for service in plan(scenario, seed, url, history.note):
        host = world.host(service.name)
        host.spawn(service.run, history, host.disk)
    _record_faults(world, schedule, history)
    schedule.apply(world)
    if scenario.memory_every:
        _sample_memory(world, history, scenario.memory_every, scenario.duration)
    if progress is not None:
        step = scenario.duration / 100

        def tick() -> None:
            progress(world.now)
            if world.now + step < scenario.duration:
                world.after(step, tick)

        world.after(step, tick)

    wall = time.perf_counter()
    stuck: SimulationError | None = None
    try:
        result = world.run(until=scenario.duration)
        now, trace_hash, trace, errors = result.now, result.trace_hash, result.trace, result.errors
    except SimulationError as exc:  # a deadlock or livelock is a finding, reported like a failed check
        stuck = exc
        now, trace_hash, trace, errors = world.now, world.trace.hash, world.trace, world.errors
    wall = time.perf_counter() - wall

    facts = RunFacts(duration=scenario.duration, quiet_after=schedule.quiet_after, end=now, extras=scenario.check_facts())
    checks = run_checks(history.records, scenario.checks, facts)
    checks += run_custom_checks(history.records, scenario.checks, facts, scenario.pythonpath)
    progress = CheckResult("progress", stuck is None, "the run reached its end" if stuck is None else str(stuck), at=None if stuck is None else now)
    checks.insert(0, progress)
    report = build_report(
        scenario=scenario,
        mode="sim",
        seed=seed,
        checks=checks,
        metrics=metrics(history.records, scenario.checks, facts),
        virtual_seconds=now,
        wall_seconds=wall,
        trace_hash=trace_hash,
        schedule=schedule,
        replay=replay or replay_command(scenario_ref or scenario.name, seed),
        extra={"kernel_errors": errors[:20]},
    )
    outcome = RunOutcome(report, history, schedule, trace, scenario)
    if out is not None:
        from sim.report import write_run

        write_run(out, outcome, plots=plots)
    return outcome


def _sample_memory(world: World, history: History, every: float, until: float) -> None:
    """The process's memory at virtual intervals, for the soak's growth check. Observing only:
    the samples go to the history, never into the network trace, so the hash is unchanged."""
    import psutil

    proc = psutil.Process()

    def sample() -> None:
        history.note("sample", rss_mb=round(proc.memory_info().rss / 2**20, 2))
        if world.now + every <= until:
            world.after(every, sample)

    world.after(every, sample)


def _record_faults(world: World, schedule: Schedule, history: History) -> None:
    for f in sorted(schedule.faults, key=lambda f: f.at):
        fields = {"kind": f.fault.kind, "label": f.fault.label()}
        world.at(f.at, functools.partial(history.note, "fault", **fields))
        if isinstance(f.fault, CrashFault):
            world.at(f.at, functools.partial(history.note, "crash", host=f.fault.host))
        if f.duration is not None:
            world.at(f.at + f.duration, functools.partial(history.note, "heal", **fields))


def build_report(
    *,
    scenario: Scenario,
    mode: str,
    seed: int,
    checks: list[CheckResult],
    metrics: dict[str, Any],
    virtual_seconds: float,
    wall_seconds: float,
    trace_hash: str | None,
    schedule: Schedule,
    replay: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """report.json's content: the contract fields first, then what helps a person."""
    failed = [c for c in checks if not c.ok]
    return {
        "scenario": scenario.name,
        "mode": mode,
        "seed": seed,
        "trace_hash": trace_hash,
        "virtual_seconds": round(virtual_seconds, 6),
        "wall_seconds": round(wall_seconds, 3),
        "checks": [c.to_json() for c in checks],
        "metrics": metrics,
        "ok": not failed,
        "replay": replay,
        "broker": scenario.broker.flavor,
        "faults": [{"at": a, "until": b, "kind": k, "label": lbl} for a, b, k, lbl in schedule.windows()],
        "quiet_after": schedule.quiet_after,
        "judged": {"topics": scenario.checks.topics, "receivers": scenario.checks.receivers, "grace_s": scenario.checks.grace_s},
        **(extra or {}),
    }
