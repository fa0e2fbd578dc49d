"""Properties of the pure parts: room physics, backoff, the state machine table, and device
subtopic handlers on the real broker in the simulated world."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from _app_support import Collect, Recorder, bus, run_clean, world_with_broker
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sim import World
from system.app import App, Backoff, InvalidTransition, StateMachine
from system.bus import Message
from system.fleet import Room

_times = st.lists(st.floats(0.1, 500.0, allow_nan=False), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None)
@given(switches=_times, looks=_times)
def test_room_temperature_does_not_depend_on_how_often_it_is_read(switches, looks):
    """Exact between events: reading the room in between changes nothing."""

    def final(observe: bool) -> float:
        async def main():
            room = Room("r", initial=18.0, outside=10.0)
            room.temperature()
            events = sorted(
                [(t, "switch") for t in switches]
                + ([(t, "look") for t in looks] if observe else [])
            )
            loop = asyncio.get_running_loop()
            for at, what in events:
                await asyncio.sleep(max(0.0, at - loop.time()))
                if what == "switch":
                    room.set_heater(not room.heater)
                else:
                    room.temperature()
            await asyncio.sleep(600 - loop.time())
            return room.temperature()

        return World(seed=1).run(main).value

    assert final(True) == pytest.approx(final(False), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    st.floats(0.01, 10), st.floats(1, 100), st.integers(1, 200), st.integers(0, 2**32)
)
def test_backoff_stays_under_its_growing_capped_ceiling(initial, factor, attempt, seed):
    maximum = initial * factor
    backoff = Backoff(initial, maximum, rng=random.Random(seed))
    ceiling = backoff.ceiling(attempt)
    assert ceiling == pytest.approx(min(maximum, initial * 2 ** (attempt - 1)))
    assert 0 <= backoff.delay(attempt) <= ceiling
    assert Backoff(initial, maximum, jitter=False).delay(attempt) == ceiling


_TABLE = {
    ("off", "start"): "low",
    ("low", "boost"): "high",
    ("high", "stop"): "off",
    ("low", "stop"): "off",
}


@given(st.lists(st.sampled_from(["start", "boost", "stop", "fly"]), max_size=30))
def test_state_machine_follows_its_table_and_refuses_the_rest(events):
    sm = StateMachine("off", _TABLE)
    for event in events:
        before = sm.state
        if (before, event) in _TABLE:
            assert sm.fire(event) == (before, _TABLE[(before, event)])
        else:
            with pytest.raises(
                InvalidTransition, match=f"'{event}' is not allowed in state '{before}'"
            ):
                sm.fire(event)
            assert sm.state == before


class Door(BaseModel):
    open: bool
    by: str = "unknown"


def test_device_subtopics_get_typed_payloads_raw_messages_and_bad_payloads_are_contained():
    world = world_with_broker()
    events = Recorder()
    doors: list[Door] = []
    raw: list[str] = []

    async def service():
        app = App(bus("svc"), prefix="b", observer=events)
        hall = app.device("hall")

        @hall.on("events/door")
        def on_door(door: Door):
            doors.append(door)

        @hall.on("events/+/log")
        def on_log(msg: Message):
            raw.append(msg.topic)

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        got = Collect()
        async with bus("client") as client:
            await client.subscribe("b/hall/errors", got)
            await client.publish("b/hall/events/door", {"open": True})
            await client.publish("b/hall/events/door", {"open": "maybe"})
            await client.publish("b/hall/events/window/log", "x")
            await client.publish("b/other/events/door", {"open": False})
            await got.wait_for(1)
            await asyncio.sleep(1)
        return got.items

    errors = run_clean(world, main, 60)
    assert doors == [Door(open=True)]
    assert raw == ["b/hall/events/window/log"]
    assert [d["where"] for _, d in errors] == ["on:events/door"]
    assert [e.where for e in events.of("device_error")] == ["on:events/door"]


_DETERMINISM = """
import sys
sys.path.insert(0, {tests!r})
from _app_fleet import fleet_world
from system.fleet import FleetConfig
world, events, _ = fleet_world(FleetConfig(rooms=2, sensors_per_room=1), seed=9)
result = world.run(until=300)
print(result.trace_hash, len(events.events))
"""


def test_a_fleet_run_is_identical_across_processes_and_hash_seeds():
    code = _DETERMINISM.format(tests=str(Path(__file__).parent))
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": h},
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        for h in ("0", "1")
    }
    assert len(outs) == 1, outs
