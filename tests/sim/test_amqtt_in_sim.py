"""The real amqtt broker and clients run unmodified in the simulated world."""

from __future__ import annotations

import asyncio
import time

from amqtt.client import MQTTClient

from sim import World
from sim.bench.amqtt_burst import run_sim
from system.broker import EmbeddedBroker


def test_ten_publishers_and_a_subscriber_at_qos1_lose_nothing():
    world = World(seed=3)
    up = asyncio.Event()
    received: list[tuple[str, bytes]] = []

    async def broker():
        b = EmbeddedBroker(host="0.0.0.0", port=1883)
        await b.start()
        up.set()
        await asyncio.Event().wait()

    world.host("broker").spawn(broker)

    async def publisher(i: int):
        client = MQTTClient(client_id=f"pub-{i}", config={"auto_reconnect": False})
        await client.connect("mqtt://broker:1883")
        for n in range(20):
            await client.publish(f"t/{i}", f"{i}:{n}".encode(), qos=1)
        await client.disconnect()

    async def main():
        await up.wait()
        sub = MQTTClient(client_id="sub", config={"auto_reconnect": False})
        await sub.connect("mqtt://broker:1883")
        await sub.subscribe([("t/#", 1)])
        for i in range(10):
            world.host(f"pub-{i}").spawn(publisher, i)
        while len(received) < 200:
            msg = await asyncio.wait_for(sub.deliver_message(), timeout=30)
            received.append((msg.topic, bytes(msg.data)))
        await sub.disconnect()
        return time.time()

    result = world.run(main)
    assert sorted(received) == sorted((f"t/{i}", f"{i}:{n}".encode()) for i in range(10) for n in range(20))
    # Per-publisher order is kept at QoS 1 on one connection.
    for i in range(10):
        mine = [p for t, p in received if t == f"t/{i}"]
        assert mine == [f"{i}:{n}".encode() for n in range(20)]
    assert not [e for e in result.errors if "task" in e]


def test_the_burst_benchmark_workload_delivers_every_message():
    rate, trace_hash = run_sim(publishers=3, messages=20, size=64, seed=5)
    assert rate > 0 and len(trace_hash) == 64
