"""`squall broker`: bad arguments are one line and exit 2; --conformance prints the table and exits 0/1;
the standalone broker stops cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest

from sim.cli import main
from system.broker.conformance._wire import PINGREQ, connect_bytes, packet


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["broker", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flavor", "nope"], "--flavor must be one of squall, amqtt"),
        (["--conformance", "--against", "localhost"], "--against must be HOST:PORT"),
        (["--against", "127.0.0.1:1883"], "only makes sense with --conformance"),
        (["--conformance", "--only", "no_such_statement"], "matches no statement"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = _run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("squall: error:") and message in err


def test_conformance_on_squall_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--conformance", "--only", "MQTT_4_4_0_1", "--seed", "1")
    assert code == 0, out
    assert re.search(r"MQTT_4_4_0_1_unacked_publish_resent_with_dup\s+pass", out) and not re.search(r"\sfail\s", out)


def test_conformance_on_stock_amqtt_exits_1_naming_the_statement(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--conformance", "--flavor", "amqtt", "--only", "resubscribe", "--seed", "1")
    assert code == 1, err
    assert re.search(r"MQTT_3_8_4_3_resubscribe_replaces_subscription\s+fail", out)


def test_port_in_use_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = _run(capsys, "--port", str(port))
    assert code == 2
    assert err == f"squall: error: cannot listen on 127.0.0.1:{port}: address already in use; pick another with --host/--port (0: any free port)\n"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_standalone_broker_stops_cleanly_on_signal(sig: signal.Signals) -> None:
    """`squall broker --port 0` serves MQTT and stops on SIGINT or SIGTERM with exit 0, no traceback,
    closing its clients' connections, also when started with SIGINT ignored (a background job)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from sim.cli import main; main()", "broker", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ignore_sigint,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()  # blocks until the broker is listening (or the process died)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, f"unexpected first line {line!r}; stderr: {proc.stderr.read()}"
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=10) as s:
            s.sendall(connect_bytes("cli-test") + packet(PINGREQ, 0, b""))
            assert _recv_exactly(s, 6) == b"\x20\x02\x00\x00\xd0\x00"  # CONNACK accepted, PINGRESP
            proc.send_signal(sig)
            assert proc.wait(30) == 0
            assert s.recv(1) == b"", "the client's connection was left open"
        out, err = proc.communicate()
        assert out == "squall broker stopped\n"
        assert err == "", err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_conformance_against_a_running_broker_with_a_user_and_a_denied_filter(capsys: pytest.CaptureFixture[str]) -> None:
    """`squall broker --user --denied-filter` has what the credential and ACL checks need, so
    `--against` it runs them instead of skipping."""
    login = ["--user", "alice:wonderland", "--denied-filter", "forbidden/#"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from sim.cli import main; main()", "broker", "--port", "0", *login],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
        assert match, line
        for only in ("with_credentials", "acl_denied"):
            code, out, _ = _run(capsys, "--conformance", "--against", match.group(1), *login, "--only", only, "--seed", "1")
            assert code == 0 and "skipped 0" in out and re.search(r"passed [1-9]\d* of", out), out
    finally:
        proc.terminate()
        proc.wait(30)


def test_denied_filter_needs_a_user(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--port", "0", "--denied-filter", "forbidden/#")
    assert code == 2 and err.count("\n") == 1 and "--denied-filter needs --user" in err


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        assert chunk, "broker closed the connection"
        got += chunk
    return got
