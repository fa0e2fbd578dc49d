"""Long work shows progress, on stderr, so stdout stays the result."""

from __future__ import annotations

import re
from pathlib import Path

TERMINAL = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "NO_COLOR": "1"}  # stderr draws as on a terminal


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
SCENARIOS = Path(__file__).resolve().parents[2] / "sim" / "scenarios"


def test_conformance_shows_progress_on_stderr_and_only_the_table_on_stdout(squall) -> None:
    got = squall("broker", "--conformance", "--only", "MQTT_3_1_2_3", **TERMINAL)
    assert got.returncode == 0, got.stderr[-2000:]
    total = int(re.search(r"passed \d+ of (\d+)", got.stdout).group(1))
    assert re.search(rf"conformance\b.*\b{total}/{total}\b", _plain(got.stderr))
    assert "━" not in got.stdout and "\x1b" not in got.stdout


def test_shrink_shows_its_runs_as_they_go(squall, tmp_path: Path) -> None:
    text = re.sub(r"(?m)^duration = \d+", "duration = 30", (SCENARIOS / "amqtt-qos1-loss.toml").read_text(), count=1)
    (tmp_path / "loss.toml").write_text(text)
    assert squall("sim", "run", "loss.toml", "--seed", "1", "--out", "failing").returncode == 1
    got = squall("sim", "shrink", "failing", "--runs", "3", **TERMINAL)
    assert got.returncode == 0, got.stderr[-2000:]
    assert re.search(r"shrinking failing\b.*\b[1-9]\d*/3 runs", _plain(got.stderr))
    assert "shrunk scenario:" in got.stdout and "━" not in got.stdout
