"""Issue 14, blind spots 5 and 6: each class of bug, planted by a test-only patch, fails the
check written for it within 20 seeds, and the shrinker brings the failing run down to at most
3 faults; the unpatched code passes the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.runner import RunOutcome, run_scenario
from sim.scenario import Scenario, load_scenario
from sim.shrink import shrink_run


def _failed(outcome: RunOutcome) -> dict[str, dict]:
    return {c["name"]: c for c in outcome.report["checks"] if not c["ok"]}


def _first_failing_seed(scenario: Scenario, check: str, seeds: range = range(1, 21)) -> int:
    for seed in seeds:
        if check in _failed(run_scenario(scenario, seed, keep_trace=False, plots=False)):
            return seed
    raise AssertionError(f"{check} never failed in seeds {seeds.start}-{seeds.stop - 1}")


def _shrinks_to_at_most_3_faults(scenario: Scenario, seed: int, check: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_scenario(scenario, seed, out=out, plots=False)
    result = shrink_run(out, max_runs=20)
    assert check in result.failing
    assert len(result.minimal) <= 3, result.minimal


# -- blind spot 5: a device that persists its state only on the way out -------------------------


def churning_heater(mode: str = "hard") -> Scenario:
    s = load_scenario("device-churn")
    return s.model_copy(update={
        "duration": 150.0,
        "swarm_quiet": 40.0,
        "fleet": {**s.fleet, "rooms": 1, "sensors_per_room": 1},
        "swarm": s.swarm.model_copy(update={"crash_hosts": ["heater-r1"], "per_minute": 6, "crash_mode": mode}),  # type: ignore[union-attr]
    })


@pytest.fixture
def persists_only_in_finally(monkeypatch):
    """A state machine whose state reaches the store only when the app stops (App.stop flushes,
    as a ``finally:`` would): fine for a clean stop, lost in a SIGKILL."""
    from system.app import _device
    from system.store import OnInterval

    original = _device.DeviceMachine.__init__

    def init(self, device, name, machine):
        original(self, device, name, machine)
        self._saved.policy = OnInterval(1e9)

    monkeypatch.setattr(_device.DeviceMachine, "__init__", init)


@pytest.mark.slow  # a seed hunt plus a shrink: tens of runs
def test_a_device_that_persists_only_in_finally_fails_restore_and_shrinks(persists_only_in_finally, tmp_path):
    scenario = churning_heater()
    seed = _first_failing_seed(scenario, "restore")
    failed = _failed(run_scenario(scenario, seed, keep_trace=False, plots=False))["restore"]
    assert "heater" in failed["detail"] and failed["at"] > 0
    _shrinks_to_at_most_3_faults(scenario, seed, "restore", tmp_path)


def test_a_graceful_stop_hides_that_bug_and_the_real_heater_passes_restore_after_hard_crashes(tmp_path, monkeypatch):
    seed = 1
    outcome = run_scenario(churning_heater(), seed, keep_trace=False, plots=False)
    assert outcome.ok, _failed(outcome)
    restore = next(c for c in outcome.report["checks"] if c["name"] == "restore")
    assert restore["detail"].endswith("came back in their last acknowledged state")
    from system.app import _device
    from system.store import OnInterval

    original = _device.DeviceMachine.__init__
    monkeypatch.setattr(_device.DeviceMachine, "__init__", lambda self, *a: (original(self, *a), setattr(self._saved, "policy", OnInterval(1e9)))[0])
    assert "restore" in _failed(run_scenario(churning_heater(), seed, keep_trace=False, plots=False))
    assert "restore" not in _failed(run_scenario(churning_heater("graceful"), seed, keep_trace=False, plots=False))


# -- blind spot 6: reconnect backoff past its cap ------------------------------------------------


def short_outage() -> Scenario:
    s = load_scenario("long-outage")
    faults = [s.faults[0].model_copy(update={"duration": 120.0})]
    return s.model_copy(update={"duration": 240.0, "faults": faults})


def test_long_outage_passes_reconnect_unmodified():
    outcome = run_scenario(short_outage(), 1, keep_trace=False, plots=False)
    assert outcome.ok, _failed(outcome)
    reconnect = next(c for c in outcome.report["checks"] if c["name"] == "reconnect")
    assert "at the maximum" in reconnect["detail"] and "jittered" in reconnect["detail"]


@pytest.mark.slow  # a seed hunt plus a shrink: tens of runs
def test_a_backoff_without_cap_fails_reconnect(monkeypatch, tmp_path):
    from system.bus import _backoff

    monkeypatch.setattr(_backoff.Backoff, "ceiling", lambda self, attempt: self.initial * 2 ** min(max(attempt - 1, 0), 62))
    scenario = short_outage()
    seed = _first_failing_seed(scenario, "reconnect")
    detail = _failed(run_scenario(scenario, seed, keep_trace=False, plots=False))["reconnect"]["detail"]
    assert "promises at most 30s" in detail
    _shrinks_to_at_most_3_faults(scenario, seed, "reconnect", tmp_path)


@pytest.mark.slow  # a seed hunt plus a shrink: tens of runs
def test_a_backoff_without_jitter_fails_reconnect(monkeypatch, tmp_path):
    from system.bus import _backoff

    monkeypatch.setattr(_backoff.Backoff, "delay", lambda self, attempt: self.ceiling(attempt))
    scenario = short_outage()
    seed = _first_failing_seed(scenario, "reconnect")
    detail = _failed(run_scenario(scenario, seed, keep_trace=False, plots=False))["reconnect"]["detail"]
    assert "not jittered" in detail
    _shrinks_to_at_most_3_faults(scenario, seed, "reconnect", tmp_path)


# -- blind spot 6: a broker that forgets sessions, a client that forgets to resubscribe ------------


def test_broker_amnesia_passes_resubscribe_unmodified():
    outcome = run_scenario(load_scenario("broker-amnesia"), 1, keep_trace=False, plots=False)
    assert outcome.ok, _failed(outcome)
    assert next(c for c in outcome.report["checks"] if c["name"] == "resubscribe")["detail"].startswith("deliveries resumed")


@pytest.mark.slow  # a seed hunt plus a shrink: tens of runs
def test_a_client_that_forgets_to_resubscribe_fails_resubscribe(no_resubscribe, tmp_path):
    scenario = load_scenario("broker-amnesia")
    seed = _first_failing_seed(scenario, "resubscribe")
    failed = _failed(run_scenario(scenario, seed, keep_trace=False, plots=False))["resubscribe"]
    assert "subscriptions did not come back" in failed["detail"] and failed["at"] >= 60
    _shrinks_to_at_most_3_faults(scenario, seed, "resubscribe", tmp_path)


# -- blind spot 6: the supervisor --------------------------------------------------------------


def calm_supervised() -> Scenario:
    return load_scenario("supervised").model_copy(update={"duration": 120.0, "swarm": None})


def test_the_supervisor_restarts_on_time_unmodified():
    outcome = run_scenario(calm_supervised(), 1, keep_trace=False, plots=False)
    assert outcome.ok, _failed(outcome)
    assert "restarts on time" in next(c for c in outcome.report["checks"] if c["name"] == "supervisor")["detail"]


@pytest.mark.slow  # a seed hunt plus a shrink: tens of runs
def test_a_supervisor_that_never_restarts_fails_supervisor(monkeypatch, tmp_path):
    from system.supervisor import Supervisor

    original = Supervisor._launch

    def launch_once(self, name):
        if self.starts[name] == 0:
            original(self, name)

    monkeypatch.setattr(Supervisor, "_launch", launch_once)
    scenario = load_scenario("supervised")
    seed = _first_failing_seed(scenario, "supervisor")
    failed = _failed(run_scenario(scenario, seed, keep_trace=False, plots=False))["supervisor"]
    assert "started it never" in failed["detail"]
    _shrinks_to_at_most_3_faults(scenario, seed, "supervisor", tmp_path)
