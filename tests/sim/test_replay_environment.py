"""Run directories record the environment; a replay elsewhere says so before anything else."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata

import pytest


def squall(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("env") / "run"
    done = squall("sim", "run", "smoke", "--duration", "20", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_report_records_interpreter_platform_and_library_versions(run_dir):
    env = json.loads((run_dir / "report.json").read_text())["environment"]
    assert env["python"] == platform.python_version() and env["platform"] == platform.platform()
    for package in ("squall", "amqtt", "paho-mqtt", "aiomqtt", "gmqtt"):
        assert env[package] == metadata.version(package)
    assert f"python {platform.python_version()}" in (run_dir / "report.md").read_text()


def test_replay_in_the_same_environment_says_nothing_about_it(run_dir):
    done = squall("sim", "replay", str(run_dir))
    assert done.returncode == 0 and "same run" in done.stdout
    assert "environment" not in done.stdout


def test_replay_of_a_run_recorded_elsewhere_says_so_first(run_dir, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    report = json.loads((other / "report.json").read_text())
    report["environment"].update(python="3.10.0", amqtt="0.11.0")
    report["trace_hash"] = "0" * 64  # and the run it recorded differs, as it would there
    (other / "report.json").write_text(json.dumps(report))
    done = squall("sim", "replay", str(other))
    assert done.returncode == 1
    first, *rest = done.stdout.strip().splitlines()
    assert first.startswith("recorded in a different environment")
    assert f"python 3.10.0 -> {platform.python_version()}" in first and f"amqtt 0.11.0 -> {metadata.version('amqtt')}" in first
    assert any("different run" in line for line in rest)
