"""Routers, devices, commands and telemetry: the real broker and app in the simulated world."""

from __future__ import annotations

import asyncio

import pytest
from _app_support import Collect, Recorder, bus, run_clean, world_with_broker
from pydantic import BaseModel

from system import RequestFailed
from system.app import App, Router


class SetPoint(BaseModel):
    target: float
    mode: str = "comfort"


class Reading(BaseModel):
    celsius: float
    ok: bool = True


def test_composed_prefixes_route_each_message_to_its_own_router_only():
    world = world_with_broker()
    seen: dict[str, list[str]] = {"floor1": [], "floor2": []}

    async def service():
        app = App(bus("svc"), prefix="building")
        for floor in ("floor1", "floor2"):
            router = Router(prefix=floor)

            @router.on("events/#", model=None)
            def on_event(msg_data, floor=floor):  # raw payload
                seen[floor].append(msg_data)

            app.include(router)
        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        async with bus("client") as client:
            await client.publish("building/floor1/events/door", "f1-door")
            await client.publish("building/floor2/events/window", "f2-window")
            await client.publish("building/floor1/events/a/b", "f1-deep")
            await client.publish("building/floor3/events/x", "nobody")
            await client.publish("floor1/events/x", "no-prefix")
            await asyncio.sleep(2)
        return seen

    assert run_clean(world, main, 60) == {
        "floor1": ["f1-door", "f1-deep"],
        "floor2": ["f2-window"],
    }


def test_nested_routers_compose_prefixes_and_serve_typed_commands():
    world = world_with_broker()

    async def service():
        app = App(bus("svc"), prefix="building")
        floor = Router(prefix="floor1")
        room = Router(prefix="kitchen")
        floor.include(room)
        app.include(floor)
        thermostat = room.device("thermostat")

        @thermostat.command("set")
        def set_point(payload: SetPoint) -> SetPoint:
            return payload

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        async with bus("client") as client:
            full = await client.request(
                "building/floor1/kitchen/thermostat/cmd/set", {"target": 21.5}
            )
            with pytest.raises(RequestFailed, match="target"):
                await client.request(
                    "building/floor1/kitchen/thermostat/cmd/set", {"target": "warm"}
                )
            with pytest.raises(RequestFailed, match="has no command 'boost'"):
                await client.request("building/floor1/kitchen/thermostat/cmd/boost", {})
            # still serving after the bad payloads
            again = await client.request(
                "building/floor1/kitchen/thermostat/cmd/set",
                {"target": 19, "mode": "eco"},
            )
        return full.data, again.data

    full, again = run_clean(world, main, 120)
    assert full == {"target": 21.5, "mode": "comfort"}  # the default filled in
    assert again == {"target": 19.0, "mode": "eco"}


def test_invalid_command_payload_gets_an_error_reply_and_the_device_stays_healthy():
    world = world_with_broker()
    events = Recorder()

    async def service():
        app = App(bus("svc"), prefix="home", observer=events)
        dev = app.device("lamp")

        @dev.command("dim")
        def dim(payload: SetPoint) -> dict:
            return {"dimmed": payload.target}

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        async with bus("client") as client:
            with pytest.raises(RequestFailed) as info:
                await client.request("home/lamp/cmd/dim", {"mode": "x"})
            ok = await client.request("home/lamp/cmd/dim", {"target": 3})
        return str(info.value), ok.data

    error, ok = run_clean(world, main, 60)
    assert "invalid payload for dim: target: Field required" in error
    assert ok == {"dimmed": 3.0}
    assert events.of("device_error") == []


def test_triggerable_telemetry_under_a_router_prefix_with_typed_values():
    world = world_with_broker()
    reads = {"n": 0}

    async def service():
        app = App(bus("svc"), prefix="plant")
        line = app.include(Router(prefix="line2"))
        probe = line.device("probe")

        @probe.telemetry("temperature")  # no interval: only on demand
        def temperature() -> Reading:
            reads["n"] += 1
            return {
                "celsius": 20.0 + reads["n"]
            }  # validated into Reading, defaults filled

        await app.run()

    world.host("svc").spawn(service)

    async def main():
        await asyncio.sleep(1)
        got = Collect()
        async with bus("client") as client:
            await client.subscribe("plant/#", got)
            await asyncio.sleep(10)
            assert [
                t for t in got.topics() if "/telemetry/" in t
            ] == []  # nothing periodic
            await client.publish("plant/line2/probe/trigger/temperature", None)
            await client.publish("plant/line2/probe/trigger/temperature", None)
            await got.wait_for(1)
            while len([t for t in got.topics() if "/telemetry/" in t]) < 2:
                await asyncio.sleep(0.5)
        return [(t, d) for t, d in got.items if "/telemetry/" in t]

    items = run_clean(world, main, 120)
    assert items == [
        ("plant/line2/probe/telemetry/temperature", {"celsius": 21.0, "ok": True}),
        ("plant/line2/probe/telemetry/temperature", {"celsius": 22.0, "ok": True}),
    ]
