"""`squall bench --only proxy`: what the proxy costs, with no toxics, next to a direct connection.

Both measurements run in one process and one event loop, alternating direct and proxied
rounds so that a noisy neighbour hurts both alike; each side keeps its best round. The
proxy shares the loop with the traffic it carries, as it does when the runner embeds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator

from amqtt.client import MQTTClient

from chaos.proxy._server import ProxyServer
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
    amqtt_rounds = 1 if quick else 5
    total = (8 if quick else 64) * (1 << 20)
    publishers, messages = (10, 60) if quick else (10, 300)
    best = {"direct_bytes": 0.0, "proxy_bytes": 0.0, "direct_amqtt": 0.0, "proxy_amqtt": 0.0}
    async with _Sink(total) as sink, EmbeddedBroker(port=0) as broker, ProxyServer(port=0) as server:
        to_sink = await server.create("sink", f"127.0.0.1:{sink.port}")
        to_broker = await server.create("mqtt", f"127.0.0.1:{broker.port}")
        sink_proxy = int(to_sink.listen.rsplit(":", 1)[1])
        broker_proxy = int(to_broker.listen.rsplit(":", 1)[1])
        for r in range(rounds):
            best["direct_bytes"] = max(best["direct_bytes"], await _bytes_per_second(sink.port, total))
            best["proxy_bytes"] = max(best["proxy_bytes"], await _bytes_per_second(sink_proxy, total))
        for r in range(amqtt_rounds):
            measure = _amqtt_messages_per_second
            best["direct_amqtt"] = max(best["direct_amqtt"], await measure(broker.port, f"d{r}", publishers, messages))
            best["proxy_amqtt"] = max(best["proxy_amqtt"], await measure(broker_proxy, f"p{r}", publishers, messages))
    return {
        "direct_bytes_per_s": round(best["direct_bytes"], 1),
        "proxy_bytes_per_s": round(best["proxy_bytes"], 1),
        "proxy_over_direct_bytes": round(best["proxy_bytes"] / best["direct_bytes"], 3),
        "direct_amqtt_msgs_per_s": round(best["direct_amqtt"], 1),
        "proxy_amqtt_msgs_per_s": round(best["proxy_amqtt"], 1),
        "proxy_over_direct_amqtt": round(best["proxy_amqtt"] / best["direct_amqtt"], 3),
    }


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
