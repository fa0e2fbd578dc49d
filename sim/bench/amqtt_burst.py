"""amqtt burst: N publishers x M messages at QoS 1 to one subscriber, sim against real loopback.

The same workload code runs in both worlds; only where the broker lives differs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from amqtt.client import MQTTClient

from sim._pins import wall_clock
from sim.bench._paired import in_turn, median, paired
from system.broker import EmbeddedBroker

_QUIET = {"auto_reconnect": False, "keep_alive": 60}


async def subscribe_until(url: str, topic: str, expected: int, ready: asyncio.Event) -> int:
    sub = MQTTClient(client_id="bench-sub", config=_QUIET)
    await sub.connect(url)
    await sub.subscribe([(topic, 1)])
    ready.set()
    got = 0
    while got < expected:
        await sub.deliver_message()
        got += 1
    await sub.disconnect()
    return got


async def publish_burst(url: str, index: int, messages: int, size: int) -> None:
    pub = MQTTClient(client_id=f"bench-pub-{index}", config=_QUIET)
    await pub.connect(url)
    payload = bytes(size)
    for _ in range(messages):
        await pub.publish(f"bench/{index}", payload, qos=1)
    await pub.disconnect()


async def burst(url: str, publishers: int, messages: int, size: int, spawn: Callable[[str, Any], Any]) -> float:
    """Run the burst against the broker at url; returns the elapsed clock of the loop."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    expected = publishers * messages
    sub_task = spawn("sub", lambda: subscribe_until(url, "bench/#", expected, ready))
    await ready.wait()
    start = loop.time()
    pubs = [spawn(f"pub-{i}", lambda i=i: publish_burst(url, i, messages, size)) for i in range(publishers)]
    await asyncio.gather(*pubs)
    got = await sub_task
    assert got == expected, f"subscriber got {got} of {expected}"
    return loop.time() - start


def run_real(publishers: int, messages: int, size: int) -> float:
    """Messages per wall second on real loopback TCP."""

    async def main() -> float:
        async with EmbeddedBroker(port=0) as broker:
            url = f"mqtt://127.0.0.1:{broker.port}"
            t0 = time.perf_counter()
            await burst(url, publishers, messages, size, lambda _h, fn: asyncio.ensure_future(fn()))
            return time.perf_counter() - t0

    wall = asyncio.run(main())
    return publishers * messages / wall


def run_sim(publishers: int, messages: int, size: int, seed: int = 1) -> tuple[float, str]:
    """Messages per wall second inside the simulated world, and the run's trace hash."""
    wall, trace_hash = timed_in_sim(lambda spawn: burst("mqtt://broker:1883", publishers, messages, size, spawn), seed)
    return publishers * messages / wall, trace_hash


def timed_in_sim(workload: Callable[[Callable[[str, Any], Any]], Awaitable[Any]], seed: int = 1) -> tuple[float, str]:
    """Wall seconds of ``workload(spawn)`` in a world whose host "broker" runs the embedded
    broker on 1883 (timed from the broker being up), and the run's trace hash."""
    from sim import World

    world = World(seed=seed, trace=False)
    started = asyncio.Event()

    async def broker_main() -> None:
        broker = EmbeddedBroker(host="0.0.0.0", port=1883)
        await broker.start()
        started.set()
        await asyncio.Event().wait()

    world.host("broker").spawn(broker_main)

    async def main() -> float:
        await started.wait()
        t0 = wall_clock()  # time.perf_counter is virtual in here
        await workload(lambda h, fn: world.host(h).spawn(fn))
        return wall_clock() - t0

    result = world.run(main)
    return result.value, result.trace_hash


def figure(quick: bool) -> dict[str, float]:
    publishers, messages = (10, 30) if quick else (10, 300)
    # The ratio is the median of the ratios within rounds (sim.bench._paired), the rates the
    # medians of each world's rounds.
    runs: dict[str, list[float]] = {"real": [], "sim": []}
    for r in range(1 if quick else 5):
        for world in in_turn(("real", "sim"), r):
            rate = run_real(publishers, messages, 64) if world == "real" else run_sim(publishers, messages, 64)[0]
            runs[world].append(rate)
    sims, reals = runs["sim"], runs["real"]
    return {
        "sim_msgs_per_wall_s": round(median(sims), 1),
        "real_msgs_per_wall_s": round(median(reals), 1),
        "sim_over_real": paired(sims, reals),
    }
