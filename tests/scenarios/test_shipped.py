"""Every shipped scenario passes in sim for a few seeds (short durations); the CLI around it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sim.runner import run_scenario
from sim.scenario import load_scenario, shipped

SHORT = {"soak": 900.0}  # virtual seconds; the rest run as shipped
# Bugs the harness found and that are not fixed yet: each must keep failing until it is.
KNOWN: dict[str, str] = {}


def test_the_shipped_scenarios_are_there():
    assert {"smoke", "broker-restart", "flaky-network", "partition-heal", "slow-subscriber", "device-churn", "swarm", "soak"} <= set(shipped())


@pytest.mark.parametrize("name", shipped())
@pytest.mark.parametrize("seed", [1, 2])
def test_shipped_scenario_passes_in_sim(name, seed, request):
    if name in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN[name]))
    scenario = load_scenario(name)
    if name in SHORT:
        scenario = scenario.model_copy(update={"duration": SHORT[name]})
    if scenario.broker.flavor == "amqtt":
        pytest.skip("runs on stock amqtt on purpose: its checks are expected to fail (see the amqtt bug-hunt tests)")
    outcome = run_scenario(scenario, seed, keep_trace=False, plots=False)
    failed = {c["name"]: c["detail"] for c in outcome.report["checks"] if not c["ok"]}
    assert not failed, f"seed {seed} failed: {failed}; replay: {outcome.report['replay']}"
    assert outcome.report["metrics"]["published"] > 0 and outcome.report["metrics"]["delivered"] > 0


def squall(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_run_writes_the_report_contract_and_replay_reproduces_the_hash(tmp_path):
    out = tmp_path / "run"
    done = squall("sim", "run", "partition-heal", "--seed", "3", "--duration", "150", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    for key in ("scenario", "mode", "seed", "trace_hash", "virtual_seconds", "wall_seconds", "checks", "metrics"):
        assert key in report
    assert report["mode"] == "sim" and report["seed"] == 3 and report["virtual_seconds"] == 150
    for key in ("published", "delivered", "lost", "duplicated", "latency_ms", "reconnects"):
        assert key in report["metrics"]
    assert set(report["metrics"]["latency_ms"]) == {"p50", "p95", "p99"}
    assert all({"name", "ok", "detail"} <= set(c) for c in report["checks"])
    for f in ("report.md", "history.jsonl", "scenario.toml", "trace.jsonl.gz", "timeline.png", "latency.png", "reconnects.png"):
        assert (out / f).stat().st_size > 0, f
    again = squall("sim", "replay", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    assert report["trace_hash"] in again.stdout


def test_replay_of_a_tampered_run_reports_the_first_divergence(tmp_path):
    out = tmp_path / "run"
    assert squall("sim", "run", "smoke", "--duration", "20", "--out", str(out)).returncode == 0
    text = (out / "scenario.toml").read_text().replace("telemetry_interval = 1.0", "telemetry_interval = 1.5")
    (out / "scenario.toml").write_text(text)
    done = squall("sim", "replay", str(out))
    assert done.returncode == 1
    assert "different run" in done.stdout and "diverge at event" in done.stdout


@pytest.mark.parametrize(
    "content, expected",
    [
        ('name = "x"\nduration = -5\n', "duration: Input should be greater than 0"),
        ('name = "x"\nduration = 10\n[fleet]\nrooms = 0\n', "fleet.rooms"),
        ('name = "x"\nduration = 10\nbogus = 1\n', "bogus: Extra inputs are not permitted"),
        ('name = "x"\nduration = 10\n[[faults]]\nat = 1\nkind = "crash"\n', "faults[0].host: Field required"),
        ('name = "x"\nduration = 10\n[[faults]]\nat = 20\nkind = "crash"\nhost = "a"\n', "after the run ends"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_bad_scenario_files_get_one_line_naming_the_field_and_exit_2(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    done = squall("sim", "run", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("squall: error: scenario") and expected in lines[0], done.stderr


def test_unknown_scenario_and_bad_seeds_are_bad_input():
    done = squall("sim", "run", "no-such-scenario")
    assert done.returncode == 2 and "unknown scenario 'no-such-scenario'" in done.stderr and "smoke" in done.stderr
    done = squall("sim", "sweep", "smoke", "--seeds", "9-3")
    assert done.returncode == 2 and "--seeds" in done.stderr
    done = squall("sim", "replay", "/nonexistent/dir")
    assert done.returncode == 2 and "not found" in done.stderr


def test_watching_progress_does_not_change_the_run():
    scenario = load_scenario("swarm").model_copy(update={"duration": 90.0})
    seen: list[float] = []
    quiet = run_scenario(scenario, 4, keep_trace=False, plots=False)
    watched = run_scenario(scenario, 4, keep_trace=False, plots=False, progress=seen.append)
    assert watched.report["trace_hash"] == quiet.report["trace_hash"]
    assert len(seen) >= 90 and seen == sorted(seen) and seen[-1] < 90


def test_a_folder_named_like_a_shipped_scenario_does_not_hide_it(tmp_path, monkeypatch):
    # `squall sim sweep swarm --out swarm` leaves a folder ./swarm; the next `sim run swarm` is
    # still the shipped scenario, not "swarm is a directory".
    from sim.scenario import load_scenario

    (tmp_path / "swarm").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_scenario("swarm").name == "swarm"
