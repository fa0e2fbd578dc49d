"""What squall's broker fixes cost: the amqtt burst on stock amqtt and on squall's flavor, interleaved.

The issue's budget: the fixes may cost at most 5% of the burst figure, i.e.
``squall_over_amqtt`` >= 0.95.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sim.bench._paired import in_turn, median, paired
from sim.bench.amqtt_burst import burst
from system.broker import EmbeddedBroker


def run_flavor(flavor: str, publishers: int, messages: int, size: int) -> float:
    """Messages per wall second of the burst on real loopback against one broker flavor."""

    async def main() -> float:
        async with EmbeddedBroker("127.0.0.1", 0, flavor=flavor) as broker:  # type: ignore[arg-type]
            t0 = time.perf_counter()
            url = f"mqtt://127.0.0.1:{broker.port}"
            await burst(url, publishers, messages, size, lambda _h, fn: asyncio.ensure_future(fn()))
            return time.perf_counter() - t0

    return publishers * messages / asyncio.run(main())


def figure(quick: bool) -> dict[str, float]:
    publishers, messages, size = (10, 30, 64) if quick else (10, 300, 64)
    logging.getLogger("amqtt").setLevel(logging.ERROR)  # stock amqtt warns on every client disconnect
    runs: dict[str, list[float]] = {"amqtt": [], "squall": []}
    for r in range(1 if quick else 5):
        for flavor in in_turn(("amqtt", "squall"), r):
            runs[flavor].append(run_flavor(flavor, publishers, messages, size))
    return {
        "stock_amqtt_msgs_per_s": round(median(runs["amqtt"]), 1),
        "squall_msgs_per_s": round(median(runs["squall"]), 1),
        "squall_over_amqtt": paired(runs["squall"], runs["amqtt"]),
    }
