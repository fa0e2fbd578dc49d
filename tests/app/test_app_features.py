"""Periodic tasks, coalescing, state machines, retry, config reload, health, availability and
failure isolation: the real broker and app in the simulated world."""

from __future__ import annotations

import asyncio

import pytest
from _app_support import Collect, Recorder, bus, run_clean, world_with_broker
from pydantic import BaseModel

from system import RequestFailed
from system.app import App, Backoff, retry


def test_a_periodic_task_ticks_once_per_interval():
    world = world_with_broker()
    ticks: list[float] = []

    async def main():
        app = App(bus("svc"), prefix="p")

        @app.every(2.0)
        def tick():
            ticks.append(asyncio.get_running_loop().time())

        async with app:
            start = asyncio.get_running_loop().time()
            await asyncio.sleep(21.0)
        return start

    start = run_clean(world, main, 60)
    assert len(ticks) == 10
    assert ticks == pytest.approx([start + 2.0 * n for n in range(1, 11)])


def test_a_failing_handler_is_contained_counted_and_published_while_others_carry_on():
    world = world_with_broker()
    events = Recorder()

    async def service():
        app = App(bus("svc"), prefix="h", observer=events)
        bad, good = app.device("bad", failing_after=2), app.device("good")

        @bad.telemetry("t", interval=1.0)
        def broken():
            raise OSError("sensor unplugged")

        @good.telemetry("t", interval=1.0)
        def fine():
            return 1

        @bad.command("ping")
        def ping():
            raise RuntimeError("boom")

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        got = Collect()
        async with bus("watch") as watch:
            await watch.subscribe("h/#", got)
            await asyncio.sleep(5.5)
            with pytest.raises(RequestFailed, match="ping failed: RuntimeError: boom"):
                await watch.request("h/bad/cmd/ping")
            await asyncio.sleep(1)
        return got.items

    items = run_clean(world, main, 60)
    good = [d for t, d in items if t == "h/good/telemetry/t"]
    errors = [d for t, d in items if t == "h/bad/errors"]
    health = [d["status"] for t, d in items if t == "h/bad/health"]
    assert len(good) >= 4
    assert (
        len(errors) >= 5
        and errors[0]["error"] == "OSError"
        and errors[-1]["errors"] == len(errors)
    )
    assert health[:3] == ["ok", "degraded", "failing"]
    assert [e.new for e in events.of("device_health", device="h/bad")] == [
        "degraded",
        "failing",
    ]
    assert events.of("device_health", device="h/good") == []
    assert {e.where for e in events.of("device_error")} == {
        "telemetry:t",
        "command:ping",
    }


def test_device_availability_is_published_at_start_and_stop():
    world = world_with_broker()
    events = Recorder()

    async def main():
        got = Collect()
        async with bus("watch") as watch:
            await watch.subscribe("a/+/availability", got)
            app = App(bus("svc"), prefix="a", observer=events)
            app.device("d1")
            app.device("d2")
            async with app:
                await asyncio.sleep(1)
            await asyncio.sleep(1)
        return got.items

    items = run_clean(world, main, 60)
    assert sorted(items[:2]) == [
        ("a/d1/availability", {"status": "online"}),
        ("a/d2/availability", {"status": "online"}),
    ]
    assert sorted(items[2:]) == [
        ("a/d1/availability", {"status": "offline"}),
        ("a/d2/availability", {"status": "offline"}),
    ]
    assert [e.status for e in events.of("device_availability", device="a/d1")] == [
        "online",
        "offline",
    ]


def test_retry_succeeds_on_the_second_attempt_and_publishes_no_error():
    world = world_with_broker()
    events = Recorder()
    attempts: list[float] = []

    async def flaky_read() -> float:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) == 1:
            raise TimeoutError("bus glitch")
        return 42.0

    async def main():
        import random

        got = Collect()
        async with bus("watch") as watch:
            await watch.subscribe("r/#", got)
            app = App(bus("svc"), prefix="r", observer=events)
            dev = app.device("meter")

            @dev.telemetry("power")
            async def power():
                return await retry(
                    flaky_read,
                    attempts=3,
                    backoff=Backoff(0.5, 5.0, rng=random.Random(3)),
                )

            async with app:
                assert await dev.trigger("power")
                await asyncio.sleep(1)
        return got.items

    items = run_clean(world, main, 60)
    assert len(attempts) == 2 and 0 <= attempts[1] - attempts[0] <= 0.5
    assert [d for t, d in items if t == "r/meter/telemetry/power"] == [42.0]
    assert [t for t, _ in items if t.endswith("/errors")] == []
    assert events.of("device_error") == [] and events.of("device_health") == []


def test_retry_gives_up_after_its_attempts_and_the_last_error_is_contained():
    async def always_fails():
        raise OSError("gone")

    async def main():
        import random

        with pytest.raises(OSError, match="gone"):
            await retry(
                always_fails,
                attempts=3,
                backoff=Backoff(1.0, 2.0, jitter=False, rng=random.Random(1)),
            )
        return asyncio.get_running_loop().time()

    assert run_clean(world_with_broker(), main, 60) == pytest.approx(
        3.0
    )  # 1 + 2 seconds of backoff


def test_coalescing_group_flushes_several_sources_as_one_message():
    world = world_with_broker()

    async def main():
        got = Collect()
        async with bus("watch") as watch:
            await watch.subscribe("c/#", got)
            app = App(bus("svc"), prefix="c")
            dev = app.device("station")
            env = dev.coalesce("env", interval=10.0)

            @env.source("humidity")
            def humidity():
                return 40

            async with app:
                for t in (18.0, 18.5, 19.0):
                    env.set("temperature", t)
                    await asyncio.sleep(1)
                await asyncio.sleep(8)  # first flush at 10 s
                env.set("pressure", 1013)
                await asyncio.sleep(10)  # second flush at 20 s
        return [d for t, d in got.items if t == "c/station/telemetry/env"]

    assert run_clean(world, main, 60) == [
        {"temperature": 19.0, "humidity": 40},
        {"pressure": 1013, "humidity": 40},
    ]


def test_state_machine_moves_are_published_reported_and_invalid_events_refused():
    world = world_with_broker()
    events = Recorder()

    async def service():
        app = App(bus("svc"), prefix="s", observer=events)
        fan = app.device("fan")
        mode = fan.state_machine(
            "mode",
            "off",
            {
                ("off", "start"): "low",
                ("low", "boost"): "high",
                ("high", "stop"): "off",
                ("low", "stop"): "off",
            },
        )

        @fan.command("press")
        async def press(button: str) -> dict:
            return {"state": await mode.fire(button)}

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        got = Collect()
        async with bus("client") as client:
            await client.subscribe("s/fan/state/mode", got)
            replies = [
                (await client.request("s/fan/cmd/press", b)).data
                for b in ("start", "boost")
            ]
            with pytest.raises(
                RequestFailed, match="'start' is not allowed in state 'high'"
            ):
                await client.request("s/fan/cmd/press", "start")
            replies.append((await client.request("s/fan/cmd/press", "stop")).data)
            await asyncio.sleep(1)
        return replies, [d["state"] for _, d in got.items]

    replies, states = run_clean(world, main, 60)
    assert replies == [{"state": "low"}, {"state": "high"}, {"state": "off"}]
    assert states == [
        "off",
        "low",
        "high",
        "off",
    ]  # the retained state first, then each move
    assert [(e.old, e.new, e.trigger) for e in events.of("device_state")] == [
        ("off", "low", "start"),
        ("low", "high", "boost"),
        ("high", "off", "stop"),
    ]


class Tuning(BaseModel):
    interval: float = 10.0
    label: str = "a"


def test_config_reload_changes_intervals_without_a_restart_and_rejects_bad_config():
    world = world_with_broker()
    events = Recorder()
    ticks: list[float] = []
    labels: list[str] = []

    async def service():
        app = App(bus("svc"), prefix="cfg", config=Tuning(), observer=events)

        @app.every("interval")
        def tick():
            ticks.append(asyncio.get_running_loop().time())

        @app.on_reload
        def changed(cfg: Tuning):
            labels.append(cfg.label)

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(35)  # ticks at ~10, 20, 30
        async with bus("admin") as admin:
            reply = await admin.request("cfg/config", {"interval": 2.0, "label": "b"})
            with pytest.raises(RequestFailed, match="invalid config: interval"):
                await admin.request("cfg/config", {"interval": "often"})
            t = asyncio.get_running_loop().time()
            await asyncio.sleep(10.5)
        return reply.data, t

    reply, reloaded_at = run_clean(world, main, 120)
    assert reply == {"interval": 2.0, "label": "b"}
    assert len([x for x in ticks if x < 35]) == 3
    assert len([x for x in ticks if x > reloaded_at]) == 5  # every 2 s now
    assert labels == ["b"]
    assert [e.version for e in events.of("config_reloaded")] == [1]


def test_a_manual_device_pulls_commands_and_publishes_when_it_chooses():
    world = world_with_broker()

    async def service():
        app = App(bus("svc"), prefix="m")
        door = app.device("door")
        door.pull_commands()
        async with app:
            async for cmd in door.commands():
                if cmd.name == "open":
                    await door.publish("position", {"open": True})
                    await cmd.reply("opened")
                else:
                    await cmd.fail(f"cannot {cmd.name}")

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        got = Collect()
        async with bus("client") as client:
            await client.subscribe("m/door/telemetry/#", got)
            opened = await client.request("m/door/cmd/open")
            with pytest.raises(RequestFailed, match="cannot fly"):
                await client.request("m/door/cmd/fly")
            await got.wait_for(1)
        return opened.data, got.items

    opened, items = run_clean(world, main, 60)
    assert opened == "opened"
    assert items == [("m/door/telemetry/position", {"open": True})]


def test_a_telemetry_value_that_is_not_json_fails_that_reading_only():
    world = world_with_broker()
    events = Recorder()
    calls = {"n": 0}

    async def main():
        got = Collect()
        async with bus("watch") as watch:
            await watch.subscribe("j/#", got)
            app = App(bus("svc"), prefix="j", observer=events)
            dev = app.device("odd")

            @dev.telemetry("t", interval=1.0)
            def t():
                calls["n"] += 1
                return {"bad": object()} if calls["n"] == 2 else {"n": calls["n"]}

            async with app:
                await asyncio.sleep(4.5)
        return [d for topic, d in got.items if topic == "j/odd/telemetry/t"]

    assert run_clean(world, main, 60) == [{"n": 1}, {"n": 3}, {"n": 4}]
    assert [(e.where, e.error) for e in events.of("device_error")] == [
        ("telemetry:t", "EnvelopeError")
    ]


def test_send_command_reports_each_round_trip_with_its_outcome_and_latency():
    world = world_with_broker()
    events = Recorder()

    async def service():
        app = App(bus("svc"), prefix="k")
        valve = app.device("valve")

        @valve.command("open")
        def open_(percent: int) -> dict:
            if percent > 100:
                raise ValueError("over 100%")
            return {"open": percent}

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        app = App(bus("ctl"), prefix="k", observer=events)
        async with app:
            ok = await app.send_command("k/valve", "open", 40, timeout=5)
            with pytest.raises(RequestFailed, match="over 100%"):
                await app.send_command("k/valve", "open", 140, timeout=5)
            with pytest.raises(TimeoutError):
                await app.send_command("k/missing", "open", 1, timeout=5)
        return ok

    assert run_clean(world, main, 60) == {"open": 40}
    sent = events.of("command_sent")
    done = events.of("command_done")
    assert [e.request for e in sent] == [e.request for e in done] == [1, 2, 3]
    assert [e.outcome for e in done] == ["ok", "error", "timeout"]
    assert 0 < done[0].latency < 0.1 and done[2].latency == pytest.approx(5.0)
    assert all(e.topic.endswith("/cmd/open") for e in done)
