"""Helpers for the app suite: a simulated world with the real broker, bus clients on it,
an event recorder, and a raw MQTT watcher."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from sim import World
from system import BusClient, BusSettings, Event
from system.broker import EmbeddedBroker

BROKER_URL = "mqtt://broker:1883"
logging.getLogger("amqtt").setLevel(logging.CRITICAL)


async def _broker() -> None:
    broker = EmbeddedBroker(host="0.0.0.0", port=1883)
    await broker.start()
    await asyncio.Event().wait()


def world_with_broker(seed: int = 1) -> World:
    world = World(seed=seed)
    world.host("broker").spawn(_broker)
    return world


def bus(
    client_id: str,
    observer: Any = None,
    *,
    url: str = BROKER_URL,
    seed: int = 0,
    **settings: Any,
) -> BusClient:
    settings.setdefault("heartbeat_interval", 0)
    return BusClient(
        BusSettings.from_url(url, client_id=client_id, **settings),
        observer=observer if observer is not None else (lambda e: None),
        rng=random.Random(f"{seed}:{client_id}"),
    )


class Recorder:
    """Collects observer events; ``of(name)`` filters by event name."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, name: str, **match: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.name == name and all(getattr(e, k) == v for k, v in match.items())
        ]


class Collect:
    """A bus handler that keeps (topic, data) pairs and can wait for a count."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, msg: Any) -> None:
        self.items.append((msg.topic, msg.data))
        self._changed.set()

    async def wait_for(self, n: int, timeout: float = 60.0) -> list[tuple[str, Any]]:
        async def loop() -> None:
            while len(self.items) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)
        return self.items

    def topics(self) -> list[str]:
        return [t for t, _ in self.items]


def real_errors(result: Any) -> list[str]:
    """The run's task errors, less one the sim reports after a crash: amqtt's reader loop
    swallows the crash's cancellation and awaits a dead connection, and when the garbage
    collector finds it asyncio logs "Task was destroyed but it is pending!" (reported to the
    sim's owner: a crashed host's leftover tasks should be dropped quietly)."""
    return [
        e
        for e in result.errors
        if not e.endswith("Task was destroyed but it is pending!")
    ]


def run_clean(world: World, main: Any, until: float) -> Any:
    """Run the world and return main's value; any task that died with an error fails the test."""
    result = world.run(main, until=until)
    assert real_errors(result) == [], result.errors
    assert result.completed, f"main did not finish within {until} virtual seconds"
    return result.value
