"""Client libraries: one publisher and one subscriber of the same library, N messages at QoS 1
through the embedded broker, in the simulated world against real loopback TCP.

The workload code is the same in both worlds (a library's idiomatic publish loop); only
where the broker lives differs. Figures: msgs per wall second on each side, and their
paired ratio (sim.bench._paired).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from sim._pins import wall_clock
from sim.bench._paired import in_turn, median, paired
from sim.bench.amqtt_burst import timed_in_sim
from system.broker import EmbeddedBroker

Workload = Callable[[str, int, int, Callable[[str, Any], Any]], Awaitable[None]]
_PAYLOAD = bytes(64)


def _on_asyncio(client: Any) -> None:
    """Drive a paho client from the running loop, as paho's loop_asyncio example does."""
    loop = asyncio.get_running_loop()
    misc: list[asyncio.Task[None]] = []

    async def misc_loop() -> None:
        while client.loop_misc() == 0:
            await asyncio.sleep(1)

    def opened(c: Any, userdata: Any, sock: Any) -> None:
        loop.add_reader(sock, c.loop_read)
        misc.append(loop.create_task(misc_loop()))

    def closed(c: Any, userdata: Any, sock: Any) -> None:
        loop.remove_reader(sock)
        for task in misc:
            task.cancel()

    client.on_socket_open = opened
    client.on_socket_close = closed
    client.on_socket_register_write = lambda c, u, sock: loop.add_writer(sock, c.loop_write)
    client.on_socket_unregister_write = lambda c, u, sock: loop.remove_writer(sock)


async def paho(host: str, port: int, messages: int, spawn: Callable[[str, Any], Any]) -> None:
    import paho.mqtt.client as mqtt

    loop = asyncio.get_running_loop()
    subscribed, all_in = loop.create_future(), loop.create_future()
    got = 0

    def on_message(c: Any, u: Any, m: Any) -> None:
        nonlocal got
        got += 1
        if got == messages:
            all_in.set_result(None)

    async def subscriber() -> None:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
        _on_asyncio(sub)
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("bench/#", qos=1)
        sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set_result(None)
        sub.on_message = on_message
        sub.connect(host, port)
        await all_in
        sub.disconnect()

    async def publisher() -> None:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
        _on_asyncio(pub)
        acked = loop.create_future()
        pending = set()

        def on_publish(c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
            pending.discard(mid)
            if not pending and sent == messages and not acked.done():
                acked.set_result(None)

        connected = loop.create_future()
        pub.on_connect = lambda c, u, f, rc, p: connected.set_result(None)
        pub.on_publish = on_publish
        pub.connect(host, port)
        await connected
        sent = 0
        for _ in range(messages):
            pending.add(pub.publish("bench/paho", _PAYLOAD, qos=1).mid)
            sent += 1
        if pending:
            await acked
        pub.disconnect()

    sub_task = spawn("sub", subscriber)
    await subscribed
    await asyncio.gather(spawn("pub", publisher), sub_task)


async def aiomqtt(host: str, port: int, messages: int, spawn: Callable[[str, Any], Any]) -> None:
    import aiomqtt as lib

    loop = asyncio.get_running_loop()
    subscribed = loop.create_future()

    async def subscriber() -> None:
        async with lib.Client(host, port, identifier="bench-sub") as sub:
            await sub.subscribe("bench/#", qos=1)
            subscribed.set_result(None)
            got = 0
            async for _ in sub.messages:
                got += 1
                if got == messages:
                    return

    async def publisher() -> None:
        async with lib.Client(host, port, identifier="bench-pub") as pub:
            for _ in range(messages):
                await pub.publish("bench/aiomqtt", _PAYLOAD, qos=1)

    sub_task = spawn("sub", subscriber)
    await subscribed
    await asyncio.gather(spawn("pub", publisher), sub_task)


async def gmqtt(host: str, port: int, messages: int, spawn: Callable[[str, Any], Any]) -> None:
    import gmqtt as lib

    loop = asyncio.get_running_loop()
    subscribed, all_in = loop.create_future(), loop.create_future()
    got = 0

    def on_message(c: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        nonlocal got
        got += 1
        if got == messages:
            all_in.set_result(None)
        return 0

    async def subscriber() -> None:
        sub = lib.Client("bench-sub")
        sub.on_message = on_message
        sub.on_subscribe = lambda c, mid, qos, props: subscribed.done() or subscribed.set_result(None)
        await sub.connect(host, port, version=lib.constants.MQTTv311)
        sub.subscribe("bench/#", qos=1)
        await all_in
        await sub.disconnect()

    async def publisher() -> None:
        pub = lib.Client("bench-pub")
        await pub.connect(host, port, version=lib.constants.MQTTv311)
        for _ in range(messages):
            pub.publish("bench/gmqtt", _PAYLOAD, qos=1)
            await asyncio.sleep(0)  # gmqtt's publish only queues: let the loop write
        await all_in  # its disconnect would drop what is still queued
        await pub.disconnect()

    sub_task = spawn("sub", subscriber)
    await subscribed
    await asyncio.gather(spawn("pub", publisher), sub_task)


LIBRARIES: dict[str, Workload] = {"paho": paho, "aiomqtt": aiomqtt, "gmqtt": gmqtt}


def run_real(library: str, messages: int) -> float:
    """Messages per wall second on real loopback TCP."""

    async def main() -> float:
        async with EmbeddedBroker(port=0) as broker:
            t0 = wall_clock()
            await LIBRARIES[library]("127.0.0.1", broker.port, messages, lambda _h, fn: asyncio.ensure_future(fn()))
            return wall_clock() - t0

    return messages / asyncio.run(main())


def run_sim(library: str, messages: int, seed: int = 1) -> tuple[float, str]:
    """Messages per wall second inside the simulated world, and the run's trace hash."""
    wall, trace_hash = timed_in_sim(lambda spawn: LIBRARIES[library]("broker", 1883, messages, spawn), seed)
    return messages / wall, trace_hash


def figure(quick: bool) -> dict[str, float]:
    messages, rounds = (100, 1) if quick else (1000, 5)
    out: dict[str, float] = {}
    for library in LIBRARIES:
        runs: dict[str, list[float]] = {"real": [], "sim": []}
        for r in range(rounds):
            for side in in_turn(("real", "sim"), r):
                runs[side].append(run_real(library, messages) if side == "real" else run_sim(library, messages)[0])
        out[f"{library}_sim_msgs_per_wall_s"] = round(median(runs["sim"]), 1)
        out[f"{library}_real_msgs_per_wall_s"] = round(median(runs["real"]), 1)
        out[f"{library}_sim_over_real"] = paired(runs["sim"], runs["real"])
    return out
