"""The proxy in a process of its own (as the chaos runner runs it): the real toxiproxy-python
client drives it over HTTP, real bytes cross it on loopback, and it never outlives its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer

from chaos.proxy import ProxyProcess
from proxy_helpers import TIMEOUT, EchoServer


async def _round_trip(port: int, payload: bytes) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    writer.write(payload)
    got = await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)
    elapsed = time.perf_counter() - start
    writer.close()
    return got, elapsed


def test_the_toxiproxy_client_drives_a_proxy_process_and_bytes_cross_it() -> None:
    async def main() -> int:
        async with EchoServer() as echo:
            with ProxyProcess() as proc:
                assert proc.pid is not None and proc.pid != os.getpid() and psutil.pid_exists(proc.pid)
                host, _, port = proc.url.removeprefix("http://").rpartition(":")
                APIConsumer.host, APIConsumer.port = host, int(port)
                # Blocking HTTP calls from this loop are fine: the server lives in another process.
                client = Toxiproxy()
                assert client.running()
                proxy = client.create(upstream=echo.address, name="echo")
                listen = int(proxy.listen.rsplit(":", 1)[1])
                payload = os.urandom(200_000)
                assert (await _round_trip(listen, payload))[0] == payload
                # A toxic added over HTTP acts on the bytes the other process relays.
                proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": 300})
                got, elapsed = await _round_trip(listen, b"ping")
                assert got == b"ping" and elapsed >= 0.3
                proxy.disable()
                with pytest.raises(OSError):
                    await _round_trip(listen, b"ping")
                return proc.pid

    saved = (APIConsumer.host, APIConsumer.port)
    try:
        pid = asyncio.run(main())
    finally:
        APIConsumer.host, APIConsumer.port = saved
    assert not psutil.pid_exists(pid)  # stop() waited for it to exit


def test_a_proxy_process_ends_when_its_parent_is_killed() -> None:
    # The parent starts a proxy, says its pid, then is killed without any chance to clean up,
    # as a nightly job killed by its CI runner would be.
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from chaos.proxy import ProxyProcess
            proc = ProxyProcess().start()
            print(proc.pid, flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = parent.stdout.readline()  # type: ignore[union-attr]
        child = psutil.Process(int(line))
        assert child.is_running()
        parent.send_signal(signal.SIGKILL)
        parent.wait(TIMEOUT)
        child.wait(timeout=TIMEOUT)  # psutil raises TimeoutExpired if the proxy lingers
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_proxy_process_that_cannot_start_says_why() -> None:
    # 203.0.113.1 (TEST-NET-3) is no address of this machine: binding to it fails at once.
    with pytest.raises(RuntimeError, match=r"the proxy process did not start \(.*(assign|address).*\); run `squall proxy --port 0`"):
        ProxyProcess(host="203.0.113.1").start()
