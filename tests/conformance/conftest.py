"""Targets for the conformance suite: squall's embedded broker, stock amqtt, and mosquitto.

The embedded brokers are started fresh inside each test's event loop (so one statement's
leftovers never decide another's verdict); mosquitto runs once per session, and every check
uses its own client ids and topics.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from system.broker.conformance import Target
from system.broker.conformance._embedded import ACL, DENIED, PASSWORD, USER

__all__ = ["ACL", "DENIED", "PASSWORD", "USER"]  # the embedded targets' user and ACL, mirrored in mosquitto's


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto not listening on {port} after {timeout} s")


@pytest.fixture(scope="session")
def mosquitto_target(mosquitto_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """mosquitto on a free loopback port: anonymous allowed, persistence off, plus alice and an ACL."""
    d: Path = tmp_path_factory.mktemp("mosquitto")
    port = _free_port()
    passwd, acl = d / "passwd", d / "acl"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), USER, PASSWORD], check=True, capture_output=True)
    acl.write_text(f"topic readwrite #\ntopic readwrite $squall/#\n\nuser {USER}\ntopic readwrite squall/#\n")
    cfg = d / "mosquitto.conf"
    cfg.write_text(
        # run as ourselves: mosquitto started by root otherwise drops to "mosquitto", who cannot read tmp
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"password_file {passwd}\nacl_file {acl}\n"
    )
    proc = subprocess.Popen([mosquitto_path, "-c", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        yield Target("127.0.0.1", port, "mosquitto", USER, PASSWORD, DENIED)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
