"""Acceptance: a user's own MQTT services, in a project outside squall, under a scenario.

Everything goes through the `squall` CLI from the project's folder, as a user runs it: a run,
a 20-seed sweep with swarm faults, replay, shrink, chaos with the services as real processes,
and a planted bug found by the right check with its replay command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _user_project import (
    clients_run_in_sim,
    make_client_project,
    make_project,
    scenario,
    squall,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("user-project"))


def test_a_run_judges_the_users_services_on_the_wire(project: Path) -> None:
    got = squall("sim", "run", "good.toml", "--seed", "3", "--out", "run", cwd=project)
    assert got.returncode == 0, got.stdout + got.stderr
    report = json.loads((project / "run" / "report.json").read_text())
    names = {c["name"]: c for c in report["checks"]}
    for name in ("wire_delivery", "wire_duplicates", "wire_order", "wire_latency", "wire_resubscribe", "wire_wills", "wire_sessions", "wire_comes_back", "heard_sensor_0", "heard_sensor_1"):
        assert names[name]["ok"], names[name]
    assert "qos1_loss" not in names and "commands" not in names  # the fleet's checks: no fleet here
    assert report["metrics"]["published"] > 50 and report["metrics"]["delivered"] > 0
    history = [json.loads(line) for line in (project / "run" / "history.jsonl").read_text().splitlines()]
    wire = [r for r in history if r["event"] == "mqtt"]
    assert {r["client"] for r in wire if r["type"] == "connect"} == {"sensor-0", "sensor-1", "counter"}
    sub = next(r for r in wire if r["type"] == "SUBSCRIBE")
    assert sub["client"] == "counter" and sub["filters"] == [["readings/#", 1]]
    pub = next(r for r in wire if r["type"] == "PUBLISH" and r["dir"] == "in")
    assert pub["qos"] == 1 and pub["pid"] >= 1 and pub["dup"] is False and len(pub["hash"]) == 16
    assert any(r["event"] == "counted" for r in history)  # ctx.note lands in the history
    # the same seed is the same run
    assert squall("sim", "replay", "run", cwd=project).returncode == 0


@pytest.mark.slow  # two 20-seed sweeps and a shrink: about 20 s
def test_a_sweep_finds_the_planted_bug_and_replay_and_shrink_work(project: Path) -> None:
    good = squall("sim", "sweep", "good.toml", "--seeds", "1-20", "--jobs", "2", "--out", "sweep-good", cwd=project)
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr
    summary = json.loads((project / "sweep-good" / "sweep.json").read_text())
    faults = {k for r in summary["runs"] for k in r["faults"]}
    assert {"partition", "crash"} <= faults  # the swarm really broke things

    bad = squall("sim", "sweep", "buggy.toml", "--seeds", "1-20", "--jobs", "2", "--out", "sweep-bad", cwd=project)
    assert bad.returncode == 1, bad.stdout[-3000:] + bad.stderr
    summary = json.loads((project / "sweep-bad" / "sweep.json").read_text())
    assert summary["failed"], "the planted bug went unnoticed"
    first = next(r for r in summary["runs"] if not r["ok"])
    assert "wire_resubscribe" in first["failed"]
    assert "counter reconnected" in first["first_failure"] and "readings/#" in first["first_failure"]
    assert f"squall sim run buggy.toml --seed {first['seed']}" in bad.stdout

    run_dir = project / first["run_dir"]
    again = squall("sim", "replay", str(run_dir), cwd=project)
    assert again.returncode == 0 and "same run" in again.stdout, again.stdout + again.stderr

    shrunk = squall("sim", "shrink", str(run_dir), "--runs", "25", cwd=project)
    assert (run_dir / "shrunk.toml").is_file(), shrunk.stdout + shrunk.stderr
    rerun = squall("sim", "run", str(run_dir / "shrunk.toml"), "--seed", str(first["seed"]), "--out", "shrunk-run", cwd=project)
    assert rerun.returncode == 1, rerun.stdout
    report = json.loads((project / "shrunk-run" / "report.json").read_text())
    assert not next(c for c in report["checks"] if c["name"] == "wire_resubscribe")["ok"]
    assert len(report["faults"]) <= len(json.loads((run_dir / "report.json").read_text())["faults"])


def test_chaos_runs_the_services_as_real_processes(project: Path) -> None:
    (project / "chaos.toml").write_text(scenario(swarm=False, extra='\n[[faults]]\nat = 30\nduration = 15\nkind = "partition"\na = ["counter"]\nb = ["broker"]\n'))
    got = squall("chaos", "run", "chaos.toml", "--out", "chaos-run", cwd=project)
    report = json.loads((project / "chaos-run" / "report.json").read_text())
    assert report["mode"] == "chaos"
    assert got.returncode == 0, got.stdout + got.stderr
    history = [json.loads(line) for line in (project / "chaos-run" / "history.jsonl").read_text().splitlines()]
    publishers = {r["client"] for r in history if r["event"] == "mqtt" and r["type"] == "PUBLISH" and r["dir"] == "in"}
    assert publishers == {"sensor-0", "sensor-1"}  # the processes reached the broker through their proxies
    assert any(r["event"] == "counted" for r in history)  # the in-process counter ran on the real loop


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("shopkit.nothere:main", "module 'shopkit.nothere' not found"),
        ("shopkit.services:missing", "has no 'missing'"),
        ("shopkit.services:not_async", "is not async"),
        ("shopkit.services:two_args", "must take exactly one argument"),
        ("nocolon", 'write entry as "package.module:function"'),
    ],
)
def test_a_bad_entry_is_one_line_and_exit_2(project: Path, entry: str, says: str) -> None:
    path = project / f"bad-{entry.replace(':', '-')}.toml"
    path.write_text(f'name = "bad"\nduration = 10\n[[services]]\nname = "x"\nentry = "{entry}"\n')
    got = squall("sim", "run", path.name, cwd=project)
    assert got.returncode == 2
    assert says in got.stderr and len(got.stderr.strip().splitlines()) == 1, got.stderr


def test_a_fault_on_an_unknown_host_is_bad_input(project: Path) -> None:
    (project / "typo.toml").write_text(scenario(swarm=False, extra='\n[[faults]]\nat = 5\nkind = "crash"\nhost = "countr"\n'))
    got = squall("sim", "run", "typo.toml", cwd=project)
    assert got.returncode == 2 and "no host 'countr'" in got.stderr and "counter" in got.stderr, got.stderr


def test_a_user_check_that_raises_fails_naming_the_exception(project: Path) -> None:
    (project / "raises.toml").write_text(scenario(swarm=False, extra='\n[[checks.custom]]\nentry = "shopkit_checks:raises"\n').replace("duration = 90", "duration = 20"))
    got = squall("sim", "run", "raises.toml", "--out", "raises-run", cwd=project)
    assert got.returncode == 1, got.stdout + got.stderr
    report = json.loads((project / "raises-run" / "report.json").read_text())
    bad = next(c for c in report["checks"] if c["name"] == "raises")
    assert not bad["ok"] and "KeyError" in bad["detail"] and "no such column" in bad["detail"]
    assert next(c for c in report["checks"] if c["name"] == "heard_sensor_0")["ok"]
    assert "raises" in (project / "raises-run" / "report.md").read_text()


def test_squall_init_gives_a_newcomer_a_passing_scenario_and_test(tmp_path: Path) -> None:
    made = squall("init", "myproj", "--package", "myapp", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "myproj"
    for name in ("squall.toml", "squall_checks.py", "tests/test_squall.py", "myapp/services.py", "myapp/__main__.py"):
        assert (folder / name).is_file(), name
    run = squall("sim", "run", "squall.toml", "--out", "run", cwd=folder)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((folder / "run" / "report.json").read_text())
    assert report["metrics"]["published"] > 0 and any(c["name"] == "subscriber_keeps_up" and c["ok"] for c in report["checks"])
    again = squall("init", "myproj", "--package", "myapp", cwd=tmp_path)  # never overwrites
    assert again.returncode == 0 and "kept  myproj/squall.toml" in again.stdout
    assert squall("init", ".", "--package", "my-app", cwd=tmp_path).returncode == 2


def test_the_starter_pytest_test_runs_per_seed(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    assert squall("init", ".", "--package", "myapp", cwd=tmp_path).returncode == 0
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    got = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_squall.py", "--squall-seeds", "1-2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert got.returncode == 0 and "2 passed" in got.stdout, got.stdout[-2000:]


@pytest.mark.slow  # a 20-seed sweep twice, a shrink and a chaos run: about 40 s
@pytest.mark.skipif(not clients_run_in_sim(), reason="paho-mqtt and aiomqtt in virtual time (simulated sockets, add_reader) are not in this squall yet")
def test_aiomqtt_and_paho_services_run_every_way_and_the_bug_is_found(tmp_path: Path) -> None:
    project = make_client_project(tmp_path / "client-project")
    got = squall("sim", "run", "good.toml", "--out", "run", cwd=project)
    assert got.returncode == 0, got.stdout + got.stderr
    history = [json.loads(line) for line in (project / "run" / "history.jsonl").read_text().splitlines()]
    assert {r["client"] for r in history if r["event"] == "mqtt" and r["type"] == "PUBLISH" and r["dir"] == "in"} == {"sensor-0", "sensor-1"}
    assert any(r["event"] == "counted" for r in history)
    assert squall("sim", "replay", "run", cwd=project).returncode == 0

    good = squall("sim", "sweep", "good.toml", "--seeds", "1-20", "--jobs", "2", "--out", "sweep-good", cwd=project)
    assert good.returncode == 0, good.stdout[-3000:]
    bad = squall("sim", "sweep", "buggy.toml", "--seeds", "1-20", "--jobs", "2", "--out", "sweep-bad", cwd=project)
    assert bad.returncode == 1, bad.stdout[-3000:]
    first = next(r for r in json.loads((project / "sweep-bad" / "sweep.json").read_text())["runs"] if not r["ok"])
    assert "wire_resubscribe" in first["failed"] and f"squall sim run buggy.toml --seed {first['seed']}" in bad.stdout
    run_dir = project / first["run_dir"]
    assert squall("sim", "replay", str(run_dir), cwd=project).returncode == 0
    squall("sim", "shrink", str(run_dir), "--runs", "20", cwd=project)
    assert (run_dir / "shrunk.toml").is_file()

    chaos = squall("chaos", "run", "good.toml", "--out", "chaos-run", cwd=project)
    assert chaos.returncode == 0, chaos.stdout + chaos.stderr
    chaos_history = [json.loads(line) for line in (project / "chaos-run" / "history.jsonl").read_text().splitlines()]
    assert {r["client"] for r in chaos_history if r["event"] == "mqtt" and r["type"] == "PUBLISH" and r["dir"] == "in"} == {"sensor-0", "sensor-1"}
