"""`squall bench --only proxy`: what the proxy costs, with no toxics, next to a direct connection.

Three ways, measured in one run, in rounds that alternate their order: direct, through the
proxy in its own process (``proxy_*``: how the chaos runner runs it, and how Toxiproxy runs),
and through the proxy embedded in the event loop of the traffic it carries
(``embedded_*``), and, where socat is installed, through socat (``socat_*``: the cost of the
hop itself). A ratio is the median of the ratios within each round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import time
from typing import AsyncIterator, Iterator

from amqtt.client import MQTTClient

from chaos.proxy._client import ToxiproxyAPI
from chaos.proxy._process import ProxyProcess
from chaos.proxy._server import ProxyServer
from sim.bench._paired import in_turn, median, paired
from system.broker import EmbeddedBroker

CHUNK = 64 * 1024


class _Sink:
    """Reads what a client sends; says ``k`` once ``expect`` bytes have arrived."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while got < self.expect:
            data = await reader.read(1 << 20)
            if not data:
                break
            got += len(data)
        writer.write(b"k")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> "_Sink":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


async def _bytes_per_second(port: int, total: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    block = b"\xa5" * CHUNK
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        writer.write(block)
        await writer.drain()
    assert await reader.read(1) == b"k"
    elapsed = time.perf_counter() - start
    writer.close()
    return total / elapsed


@contextlib.asynccontextmanager
async def _client(port: int, client_id: str) -> AsyncIterator[MQTTClient]:
    client = MQTTClient(client_id=client_id, config={"auto_reconnect": False, "plugins": {}})
    await client.connect(f"mqtt://127.0.0.1:{port}")
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


async def _amqtt_messages_per_second(port: int, tag: str, publishers: int, messages: int) -> float:
    """``publishers`` clients each publish ``messages`` 64 B QoS 1 messages to one subscriber."""
    total = publishers * messages
    payload = b"\x5a" * 64
    async with contextlib.AsyncExitStack() as stack:
        sub = await stack.enter_async_context(_client(port, f"sub-{tag}"))
        await sub.subscribe([(f"bench/{tag}/#", 1)])
        pubs = [await stack.enter_async_context(_client(port, f"pub-{tag}-{i}")) for i in range(publishers)]

        async def publish(i: int, client: MQTTClient) -> None:
            for _ in range(messages):
                await client.publish(f"bench/{tag}/{i}", payload, qos=1)

        async def drain() -> None:
            for _ in range(total):
                await sub.deliver_message(timeout_duration=60)

        start = time.perf_counter()
        await asyncio.gather(drain(), *(publish(i, c) for i, c in enumerate(pubs)))
        return total / (time.perf_counter() - start)


async def _measure(quick: bool) -> dict[str, float]:
    rounds = 1 if quick else 3
    amqtt_rounds = 1 if quick else 7
    total = (8 if quick else 64) * (1 << 20)
    publishers, messages = (10, 60) if quick else (10, 300)
    ways = _WAYS + (("socat",) if shutil.which("socat") else ())
    runs: dict[str, list[float]] = {f"{way}_{what}": [] for way in ways for what in ("bytes", "amqtt")}
    async with contextlib.AsyncExitStack() as stack:
        sink = await stack.enter_async_context(_Sink(total))
        broker = await stack.enter_async_context(EmbeddedBroker(port=0))
        embedded = await stack.enter_async_context(ProxyServer(port=0))
        process = await stack.enter_async_context(ProxyProcess())
        own = ToxiproxyAPI(process.url)
        ports = {"direct": (sink.port, broker.port)}
        ports["embedded"] = (
            _port((await embedded.create("sink", f"127.0.0.1:{sink.port}")).listen),
            _port((await embedded.create("mqtt", f"127.0.0.1:{broker.port}")).listen),
        )
        ports["process"] = (
            _port(await own.create("sink", "127.0.0.1:0", f"127.0.0.1:{sink.port}")),
            _port(await own.create("mqtt", "127.0.0.1:0", f"127.0.0.1:{broker.port}")),
        )
        if "socat" in ways:
            ports["socat"] = (stack.enter_context(_socat(sink.port)), stack.enter_context(_socat(broker.port)))
        # Each ratio is taken within its round (see sim.bench._paired).
        for r in range(rounds):
            for way in in_turn(ways, r):
                runs[f"{way}_bytes"].append(await _bytes_per_second(ports[way][0], total))
        for r in range(amqtt_rounds):
            for way in in_turn(ways, r):
                runs[f"{way}_amqtt"].append(await _amqtt_messages_per_second(ports[way][1], f"{way[0]}{r}", publishers, messages))
    figures = {
        "direct_bytes_per_s": round(median(runs["direct_bytes"]), 1),
        "proxy_bytes_per_s": round(median(runs["process_bytes"]), 1),
        "proxy_over_direct_bytes": paired(runs["process_bytes"], runs["direct_bytes"]),
        "embedded_over_direct_bytes": paired(runs["embedded_bytes"], runs["direct_bytes"]),
        "direct_amqtt_msgs_per_s": round(median(runs["direct_amqtt"]), 1),
        "proxy_amqtt_msgs_per_s": round(median(runs["process_amqtt"]), 1),
        "proxy_over_direct_amqtt": paired(runs["process_amqtt"], runs["direct_amqtt"]),
        "embedded_over_direct_amqtt": paired(runs["embedded_amqtt"], runs["direct_amqtt"]),
    }
    if "socat" in ways:
        figures["socat_over_direct_amqtt"] = paired(runs["socat_amqtt"], runs["direct_amqtt"])
        figures["proxy_over_socat_amqtt"] = paired(runs["process_amqtt"], runs["socat_amqtt"])
    return figures


# The proxy in its own process (as the chaos runner runs it, and as Toxiproxy runs), and
# embedded in the loop of the traffic it carries (ProxyServer in-process). Where socat is
# installed, it is the reference: a relay in C with nothing to inject, so what it costs is
# the extra loopback hop itself, the floor for any TCP proxy on this machine.
_WAYS: tuple[str, ...] = ("direct", "process", "embedded")


@contextlib.contextmanager
def _socat(upstream: int) -> Iterator[int]:
    """socat relaying a free loopback port to ``upstream``; yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"TCP:127.0.0.1:{upstream}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # until socat listens (it says nothing when it does)
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat did not listen on 127.0.0.1:{port}")
            time.sleep(0.01)
        yield port
    finally:
        proc.terminate()
        proc.wait()


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def figure(quick: bool) -> dict[str, float]:
    """Bytes/s and amqtt messages/s, through the proxy and direct, and their ratios."""
    # amqtt warns about late PUBACKs when a bench client disconnects; that is noise here.
    amqtt_log = logging.getLogger("amqtt")
    level = amqtt_log.level
    amqtt_log.setLevel(logging.ERROR)
    try:
        return asyncio.run(_measure(quick))
    finally:
        amqtt_log.setLevel(level)
