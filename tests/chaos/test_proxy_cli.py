"""`squall proxy`: bad config is one line and exit 2; a good one serves until SIGINT."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sim.cli import main


def squall(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    "content, expected",
    [
        ('[{"name": "a", "upstream": "127.0.0.1:1883"', "not valid JSON"),
        ('{"name": "a", "upstream": "127.0.0.1:1883"}', "expected a JSON array of proxies"),
        ('[{"name": "a"}]', "proxy 1: missing required field 'upstream'"),
        ('[{"upstream": "127.0.0.1:1"}]', "proxy 1: missing required field 'name'"),
        ('["a"]', "proxy 1: expected a JSON object"),
        ('[{"name": "a", "upstream": "x:1", "enabled": "no"}]', "enabled must be true or false"),
        ('[{"name": "a", "upstream": "x:1", "listen": 5}]', "listen must be a string"),
        ('[{"name": "a", "upstream": "x:1"}, {"name": "a", "upstream": "x:2"}]', "'a' appears twice"),
        ('[{"name": "a", "upstream": "x:1", "listen": "nowhere"}]', "missing port"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(content)
    code, err = squall(["proxy", "--port", "0", "--config", str(config)], capsys)
    assert code == 2
    assert err.startswith("squall: error: --config ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = squall(["proxy", "--config", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "no such file" in err and err.count("\n") == 1


def test_a_taken_api_port_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, err = squall(["proxy", "--port", str(taken.getsockname()[1])], capsys)
    assert code == 2 and "choose another --port" in err and err.count("\n") == 1


def test_serves_the_config_until_interrupted(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        upstream = f"127.0.0.1:{probe.getsockname()[1]}"
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "mqtt", "upstream": upstream, "listen": "127.0.0.1:0"}]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "proxy", "--port", "0", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("squall proxy: Toxiproxy API on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        listing = requests.get(f"{url}/proxies", timeout=10).json()
        assert listing["mqtt"]["upstream"] == upstream and listing["mqtt"]["enabled"] is True
        assert f"mqtt: {listing['mqtt']['listen']} -> {upstream}" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
