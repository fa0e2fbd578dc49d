"""`squall broker`: bad arguments are one line and exit 2; --conformance prints the table and exits 0/1."""

from __future__ import annotations

import re

import pytest

from sim.cli import main


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


def test_standalone_broker_serves_until_interrupted() -> None:
    """`squall broker --port 0` says where it listens, serves MQTT, and stops cleanly on Ctrl-C."""
    import signal
    import socket
    import subprocess
    import sys

    from system.broker.conformance._wire import PINGREQ, connect_bytes, packet

    proc = subprocess.Popen(
        [sys.executable, "-c", "from sim.cli import main; main()", "broker", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the broker is listening (or the process died)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, f"unexpected first line {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=10) as s:
            s.sendall(connect_bytes("cli-test") + packet(PINGREQ, 0, b""))
            got = b""
            while len(got) < 6:
                chunk = s.recv(6 - len(got))
                assert chunk, "broker closed the connection"
                got += chunk
            assert got == b"\x20\x02\x00\x00\xd0\x00"  # CONNACK accepted, PINGRESP
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
