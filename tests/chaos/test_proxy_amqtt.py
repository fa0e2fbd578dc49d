"""The real amqtt broker behind the proxy, real amqtt clients in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from amqtt.client import MQTTClient
from amqtt.errors import ConnectError
from proxy_helpers import TIMEOUT

from chaos.proxy import Proxy, ProxyServer
from system.broker import EmbeddedBroker

Test = Callable[[EmbeddedBroker, ProxyServer, Proxy], Awaitable[None]]


def run(test: Test) -> None:
    async def main() -> None:
        async with EmbeddedBroker(port=0) as broker, ProxyServer(port=0) as server:
            proxy = await server.create("mqtt", upstream=f"127.0.0.1:{broker.port}")
            await asyncio.wait_for(test(broker, server, proxy), 60)

    asyncio.run(main())


def uri(listen: str) -> str:
    return f"mqtt://{listen}"


@contextlib.asynccontextmanager
async def mqtt(address: str, client_id: str, **config: Any) -> AsyncIterator[MQTTClient]:
    client = MQTTClient(client_id=client_id, config={"auto_reconnect": False, "plugins": {}, **config})
    await asyncio.wait_for(client.connect(uri(address)), TIMEOUT)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), TIMEOUT)


def direct(broker: EmbeddedBroker) -> str:
    return f"127.0.0.1:{broker.port}"


async def receive(client: MQTTClient, n: int) -> list[tuple[str, bytes]]:
    got = []
    for _ in range(n):
        message = await client.deliver_message(timeout_duration=TIMEOUT)
        assert message is not None
        got.append((message.topic, bytes(message.data)))
    return got


def test_publish_and_subscribe_through_the_proxy() -> None:
    async def test(broker: EmbeddedBroker, server: ProxyServer, proxy: Proxy) -> None:
        async with mqtt(proxy.listen, "sub") as sub, mqtt(proxy.listen, "pub") as pub:
            await sub.subscribe([("t/#", 1)])
            sent = [(f"t/{i}", b"m%03d" % i) for i in range(20)]
            for topic, payload in sent:
                await pub.publish(topic, payload, qos=1)
            assert await receive(sub, len(sent)) == sent
        assert server.bytes_total("mqtt", "upstream") > 20 * 4
        assert server.bytes_total("mqtt", "downstream") > 20 * 4

    run(test)


def test_latency_delays_the_puback() -> None:
    async def test(broker: EmbeddedBroker, server: ProxyServer, proxy: Proxy) -> None:
        async with mqtt(proxy.listen, "pub") as pub:
            await pub.publish("warm", b"up", qos=1)
            proxy.add_toxic({"type": "latency", "attributes": {"latency": 200}})
            start = time.perf_counter()
            await pub.publish("slow", b"ack", qos=1)
            assert time.perf_counter() - start >= 0.19

    run(test)


def test_slicer_both_ways_keeps_mqtt_packets_whole() -> None:
    async def test(broker: EmbeddedBroker, server: ProxyServer, proxy: Proxy) -> None:
        for stream in ("upstream", "downstream"):
            proxy.add_toxic({"type": "slicer", "stream": stream, "attributes": {"average_size": 3, "size_variation": 2}})
        async with mqtt(proxy.listen, "sub") as sub, mqtt(proxy.listen, "pub") as pub:
            await sub.subscribe([("s/#", 1)])
            sent = [("s/a", bytes(range(256)) * 4), ("s/b", b"short"), ("s/c", b"\x00" * 1000)]
            for topic, payload in sent:
                await pub.publish(topic, payload, qos=1)
            assert await receive(sub, len(sent)) == sent

    run(test)


def test_bandwidth_slows_publishing() -> None:
    async def test(broker: EmbeddedBroker, server: ProxyServer, proxy: Proxy) -> None:
        async with mqtt(proxy.listen, "pub") as pub:
            proxy.add_toxic({"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 20}})  # 20 KB/s
            start = time.perf_counter()
            for _ in range(5):
                await pub.publish("bulk", b"x" * 2000, qos=1)  # 10 KB in all: at least 0.5 s
            assert time.perf_counter() - start >= 0.45

    run(test)


def test_down_refuses_clients_until_enabled_again() -> None:
    async def test(broker: EmbeddedBroker, server: ProxyServer, proxy: Proxy) -> None:
        await server.update("mqtt", enabled=False)
        with pytest.raises((ConnectError, OSError)):
            async with mqtt(proxy.listen, "early"):
                pass
        await server.update("mqtt", enabled=True)
        async with mqtt(proxy.listen, "late") as pub:
            await pub.publish("t", b"ok", qos=1)

    run(test)


@pytest.mark.parametrize(
    "toxic",
    [
        {"type": "limit_data", "stream": "upstream", "attributes": {"bytes": 0}},
        {"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}},
        {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 100}},
    ],
    ids=lambda t: t["type"],
)
def test_a_cut_connection_makes_the_broker_send_the_will(toxic: dict[str, Any]) -> None:
    async def test(broker: EmbeddedBroker, server: ProxyServer, proxy: Proxy) -> None:
        will = {"topic": "will/pub", "message": "gone", "qos": 1, "retain": False}
        async with mqtt(direct(broker), "watcher") as watcher:
            await watcher.subscribe([("will/#", 1)])
            async with mqtt(proxy.listen, "pub", will=will) as pub:
                await pub.publish("t", b"before", qos=1)
                proxy.add_toxic(toxic)  # applies to the open connection
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pub.publish("t", b"after", qos=0), 1)
                assert await receive(watcher, 1) == [("will/pub", b"gone")]

    run(test)


def test_reset_peer_on_connect_fails_the_connect() -> None:
    async def test(broker: EmbeddedBroker, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}})
        with pytest.raises((ConnectError, OSError, asyncio.TimeoutError)):
            async with mqtt(proxy.listen, "doomed"):
                pass
        proxy.remove_toxic("reset_peer_upstream")
        async with mqtt(proxy.listen, "fine") as pub:
            await pub.publish("t", b"ok", qos=1)

    run(test)
