"""The bus client in squall's simulated world: the same code on a virtual clock.

The broker host crashes (a silent peer: no FIN, no RST) or is partitioned away; the
client's keep-alive must notice, back off within its bounds, and reconnect once the broker
is back. Virtual time makes the timing assertions exact and the run take milliseconds.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from system import BusClient, BusSettings, Event
from system.broker import EmbeddedBroker

sim = pytest.importorskip("sim", reason="squall's simulated world (sim.World) is not available")

KEEP_ALIVE = 10
RECONNECT_MAX = 8.0
CONNECT_TIMEOUT = 5.0
DOWN_AT, DOWN_FOR = 5.0, 60.0


def _run(seed: int, fault: str) -> tuple[list[Event], list[int]]:
    world = sim.World(seed=seed)
    events: list[Event] = []
    received: list[int] = []

    async def broker() -> None:
        await EmbeddedBroker(host="broker", port=1883).start()
        await asyncio.Event().wait()

    async def main() -> None:
        await asyncio.sleep(0.1)
        settings = BusSettings(
            host="broker",
            port=1883,
            client_id="dev",
            heartbeat_interval=0,
            keep_alive=KEEP_ALIVE,
            reconnect_initial=0.5,
            reconnect_max=RECONNECT_MAX,
            connect_timeout=CONNECT_TIMEOUT,
        )
        async with BusClient(settings, observer=events.append, rng=random.Random(seed)) as dev:
            await dev.subscribe("echo/#", lambda msg: received.append(msg.data))
            await asyncio.sleep(DOWN_AT - 0.1)
            if fault == "crash":
                world.crash("broker")
            else:
                world.partition("main", "broker")
            for i in range(5):  # published while the broker is unreachable: queued
                await dev.publish("echo/x", i)
            await asyncio.sleep(DOWN_FOR)
            if fault == "crash":
                world.restart("broker")
            else:
                world.heal()
            await dev.wait_connected(120)
            for i in range(5, 10):
                await dev.publish("echo/x", i)
            await dev.flush(60)
            while len(set(received)) < 10:
                await asyncio.sleep(0.1)

    world.host("broker").spawn(broker)
    result = world.run(main, until=600)
    assert result.completed and not result.errors, result.errors
    return events, received


@pytest.mark.parametrize("fault", ["crash", "partition"])
def test_a_lost_broker_is_detected_and_reconnected_in_virtual_time(fault: str) -> None:
    events, received = _run(seed=3, fault=fault)
    [lost] = [e for e in events if e.name == "error" and e.where == "keepalive"]
    assert DOWN_AT < lost.at <= DOWN_AT + KEEP_ALIVE  # noticed within one keep-alive
    attempts = [e.at for e in events if e.name == "error" and e.where == "connect"]
    [back] = [e for e in events if e.name == "reconnect"]
    gaps = [b - a for a, b in zip([lost.at, *attempts], [*attempts, back.at], strict=True)]
    assert max(gaps) <= RECONNECT_MAX + CONNECT_TIMEOUT + 1  # bounded backoff, never a long stall
    assert DOWN_AT + DOWN_FOR <= back.at <= DOWN_AT + DOWN_FOR + RECONNECT_MAX + CONNECT_TIMEOUT + 1
    assert back.attempts == len(attempts) + 1
    # Queued while away, sent after the client resubscribed (even a crashed broker that
    # forgot everything gets the subscription back first): each arrives once.
    assert sorted(received) == list(range(10))


def test_same_seed_same_schedule() -> None:
    def schedule(seed: int) -> list[tuple[str, float]]:
        return [(e.name, e.at) for e in _run(seed, "crash")[0]]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)  # the jitter really comes from the seeded rng
