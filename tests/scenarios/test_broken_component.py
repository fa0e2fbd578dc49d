"""A deliberately broken client variant fails the right check, and shrink finds the fault that matters."""

from __future__ import annotations


from sim.faults.schedule import CrashFault, Schedule, TimedFault, ToxicFault
from sim.faults.toxics import Toxic
from sim.runner import run_scenario
from sim.scenario import load_scenario
from sim.shrink import shrink_run


def fragile_broker():
    # Without durable sessions a restarted broker knows no subscriptions: clients must
    # resubscribe, and what is published before they do is lost even for a correct client,
    # so the scenario allows that window's worth.
    s = load_scenario("broker-restart")
    return s.model_copy(update={
        "broker": s.broker.model_copy(update={"durable": False}),
        "duration": 150.0,
        "checks": s.checks.model_copy(update={"max_qos1_lost": 40}),
    })


NOISE = [
    TimedFault(at=20, duration=10, fault=ToxicFault(target="broker:1883", toxic=Toxic(name="lat", type="latency", attributes={"latency": 30}))),
    TimedFault(at=60, duration=5, fault=CrashFault(host="broker")),
    TimedFault(at=90, duration=10, fault=ToxicFault(target="broker:1883", toxic=Toxic(name="slice", type="slicer", attributes={"average_size": 16, "delay": 100}))),
]


def test_the_real_client_resubscribes_and_loses_nothing():
    outcome = run_scenario(fragile_broker(), 1, schedule=Schedule(faults=NOISE), keep_trace=False, plots=False)
    assert outcome.ok, [c for c in outcome.report["checks"] if not c["ok"]]


def test_a_client_that_does_not_resubscribe_fails_qos1_loss(no_resubscribe):
    outcome = run_scenario(fragile_broker(), 1, schedule=Schedule(faults=NOISE), keep_trace=False, plots=False)
    failed = {c["name"]: c for c in outcome.report["checks"] if not c["ok"]}
    assert "qos1_loss" in failed
    # The first lost message comes right after the broker's restart, and the detail says so.
    assert failed["qos1_loss"]["at"] >= 65
    assert "squall sim run broker-restart --seed 1" in outcome.report["replay"]


def test_shrink_keeps_only_the_crash(no_resubscribe, tmp_path):
    out = tmp_path / "run"
    run_scenario(fragile_broker(), 1, schedule=Schedule(faults=NOISE), out=out, plots=False)
    result = shrink_run(out, max_runs=25)
    assert result.failing == ["qos1_loss"] or "qos1_loss" in result.failing
    assert [f.fault.kind for f in result.minimal.faults] == ["crash"]
    assert result.path is not None and result.path.exists()
    shrunk = load_scenario(result.path)
    assert len(shrunk.faults) == 1 and shrunk.faults[0].fault.kind == "crash"
