"""Persisted device state across a service crash and restart (world.crash / restart, host disk)."""

from __future__ import annotations

import asyncio

import pytest
from _app_support import bus, run_clean, world_with_broker

from system.app import App
from system.store import OnChange, OnInterval, Store


def _counter_service(world, policy):
    """A service whose device counts 'bump' commands in a persisted value."""
    restored: list[int] = []

    async def service():
        store = Store(world.host("svc").disk / "state.db")
        app = App(bus("svc"), prefix="p", store=store)
        dev = app.device("counter")
        count = dev.persist("count", 0, policy)

        @dev.command("bump")
        def bump() -> dict:
            count.value += 1
            return {"count": count.value}

        async with app:
            restored.append(count.value)
            await asyncio.Event().wait()

    world.host("svc").spawn(service)
    return restored


async def _bump(client, n):
    return [
        (await client.request("p/counter/cmd/bump")).data["count"] for _ in range(n)
    ]


def test_persist_on_change_keeps_every_change_across_a_crash():
    world = world_with_broker()
    restored = _counter_service(world, OnChange())

    async def main():
        await asyncio.sleep(1)
        async with bus("client") as client:
            before = await _bump(client, 3)
            world.crash("svc")
            await asyncio.sleep(5)
            world.restart("svc")
            await asyncio.sleep(5)
            after = await _bump(client, 1)
        return before, after

    before, after = run_clean(world, main, 120)
    assert before == [1, 2, 3]
    assert restored == [0, 3]
    assert after == [4]


def test_persist_on_interval_loses_only_the_changes_since_the_last_write():
    world = world_with_broker()
    restored = _counter_service(world, OnInterval(10.0))

    async def main():
        await asyncio.sleep(
            1
        )  # the service's interval writes fall at about 10, 20, 30 s
        async with bus("client") as client:
            await _bump(client, 2)
            await asyncio.sleep(12)  # written at ~10 s
            late = await _bump(client, 3)  # 3, 4, 5: never written before the crash
            world.crash("svc")
            world.restart("svc")
            await asyncio.sleep(5)
            after = await _bump(client, 1)
        return late, after

    late, after = run_clean(world, main, 120)
    assert late == [3, 4, 5]
    assert restored == [0, 2]
    assert after == [3]


def test_persist_on_interval_writes_on_a_clean_stop():
    world = world_with_broker()
    path_holder = {}

    async def main():
        path = world.host("main").disk / "s.db"
        path_holder["path"] = path
        app = App(bus("svc"), prefix="p", store=Store(path))
        value = app.device("d").persist("v", "unset", OnInterval(3600))
        async with app:
            value.value = "set before stop"
        app2 = App(bus("svc2"), prefix="p", store=Store(path))
        again = app2.device("d").persist("v", "unset", OnInterval(3600))
        async with app2:
            return again.value

    assert run_clean(world, main, 60) == "set before stop"


def test_store_round_trips_json_values_and_rejects_others(tmp_path):
    with Store(tmp_path / "kv.db") as store:
        store.put("ns", "a", {"x": [1, 2.5, "s", None]})
        store.put_many([("ns", "b", 2), ("other", "a", True)])
        assert store.get("ns", "a") == {"x": [1, 2.5, "s", None]}
        assert store.items("ns") == {"a": {"x": [1, 2.5, "s", None]}, "b": 2}
        assert store.get("ns", "missing", "dflt") == "dflt"
        with pytest.raises(TypeError):
            store.put("ns", "c", object())
        with pytest.raises(ValueError):
            store.put("ns", "c", float("nan"))
