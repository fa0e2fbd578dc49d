"""What squall prints is for people on a terminal and for scripts in a pipe: whole, and JSON on request."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

from sim.scenario import load_scenario, shipped


def test_version_names_squall_amqtt_and_python(squall) -> None:
    got = squall("--version")
    assert got.returncode == 0, got.stderr
    assert re.fullmatch(rf"squall {re.escape(version('squall'))} \(amqtt 0\.12\.1, Python 3\.\d+\.\d+\)\n", got.stdout)


def test_sim_list_shows_every_shipped_scenario_with_its_description(squall) -> None:
    text = squall("sim", "list")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    for name in shipped():
        description = " ".join(load_scenario(name).description.split())
        assert any(line.startswith(name + " ") and line.endswith(description) for line in lines), name
    rows = json.loads(squall("sim", "list", "--json").stdout)
    assert [r["name"] for r in rows] == shipped()
    assert all(r["description"] and r["duration"] > 0 for r in rows)


def test_sim_run_json_prints_the_report_and_nothing_else_on_stdout(squall, tmp_path: Path) -> None:
    got = squall("sim", "run", "smoke", "--duration", "10", "--seed", "3", "--json", "--out", "run")
    assert got.returncode == 0, got.stderr
    report = json.loads(got.stdout)  # the whole of stdout is one JSON document
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report == on_disk and report["ok"] is True  # environment and run dir included
    assert report["run_dir"] == "run"


def test_a_run_with_duration_replays_with_the_same_duration(squall, tmp_path: Path) -> None:
    first = json.loads(squall("sim", "run", "smoke", "--duration", "10", "--seed", "3", "--json", "--out", "a").stdout)
    assert first["replay"] == "squall sim run smoke --seed 3 --duration 10"
    args = first["replay"].split()[1:] + ["--json", "--out", "b"]
    again = json.loads(squall(*args).stdout)
    assert again["virtual_seconds"] == 10 and again["trace_hash"] == first["trace_hash"]


def test_sweep_json_prints_sweep_json_and_nothing_else_on_stdout(squall, tmp_path: Path) -> None:
    got = squall("sim", "sweep", "smoke", "--seeds", "1-2", "--jobs", "1", "--json", "--out", "sw")
    assert got.returncode == 0, got.stderr
    summary = json.loads(got.stdout)
    assert summary == json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert summary["partial"] is False and summary["seeds_done"] == [1, 2]


def _short_loss_scenario(tmp_path: Path) -> Path:
    # The shipped stock-amqtt scenario loses QoS 1 messages from t=14s on; 30 virtual seconds is enough.
    text = (Path(__file__).resolve().parents[2] / "sim" / "scenarios" / "amqtt-qos1-loss.toml").read_text()
    path = tmp_path / "loss.toml"
    path.write_text(re.sub(r"(?m)^duration = \d+", "duration = 30", text, count=1))
    return path


def test_piped_output_keeps_message_ids_and_replay_commands_whole(squall, tmp_path: Path) -> None:
    scenario = _short_loss_scenario(tmp_path)
    got = squall("sim", "run", str(scenario), "--seed", "1", "--out", "run")
    assert got.returncode == 1, got.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    loss = next(c for c in report["checks"] if c["name"] == "qos1_loss")
    assert not loss["ok"] and len(loss["detail"]) > 240  # long enough that 80 columns (or a cut at 240) would cut it
    assert any(line.endswith(f"FAILED qos1_loss: {loss['detail']}") for line in got.stdout.splitlines())
    ids = re.findall(r"\b[0-9a-f]{32}\b", loss["detail"])
    assert ids and all(i in got.stdout for i in ids)
    assert got.stdout.splitlines()[-1] == f"seed 1 failed; replay with: {report['replay']}"

    sweep = squall("sim", "sweep", str(scenario), "--seeds", "1", "--jobs", "1", "--out", "sw")
    assert sweep.returncode == 1, sweep.stderr
    run = json.loads((tmp_path / "sw" / "sweep.json").read_text())["runs"][0]
    assert run["first_failure"] == loss["detail"]  # sweep.json keeps the whole detail, every id in it
    assert f"  replay: {run['replay']}    (run dir {run['run_dir']})" in sweep.stdout.splitlines()
