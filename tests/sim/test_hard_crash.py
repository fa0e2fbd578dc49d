"""A hard crash (SIGKILL) runs none of the host's code again; a graceful one runs its cleanup."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from sim import World
from sim.faults.schedule import CrashFault, Schedule, TimedFault


def _service_with_cleanup(world: World, seen: list[str]):
    async def service() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(3, seen.append, "timer")  # a callback the host scheduled
        child = loop.create_task(asyncio.sleep(3600))
        try:
            await asyncio.wait_for(child, timeout=3600)
        except asyncio.CancelledError:
            seen.append(f"cancelled at {world.now:g}")
            raise
        finally:
            seen.append(f"finally at {world.now:g}")

    return service


@pytest.mark.parametrize("hard", [False, True])
def test_a_hard_crash_runs_no_finally_no_except_and_no_scheduled_callback(hard: bool) -> None:
    world = World(seed=1)
    seen: list[str] = []
    world.host("svc").spawn(_service_with_cleanup(world, seen))

    async def main() -> list[str]:
        await asyncio.sleep(1)
        world.crash("svc", hard=hard)
        await asyncio.sleep(10)  # long past the timer
        return list(seen)

    during = world.run(main).value
    if hard:
        assert during == []
    else:
        assert during[:2] == ["cancelled at 1", "finally at 1"]


def test_a_hard_crashed_host_restarts_fresh_and_the_run_ends_without_waiting_for_its_dead() -> None:
    world = World(seed=1)
    boots: list[float] = []

    async def service() -> None:
        boots.append(world.now)
        try:
            await asyncio.Event().wait()
        finally:
            boots.append(-1.0)  # must never run inside the run

    world.host("svc").spawn(service)

    async def main() -> list[float]:
        await asyncio.sleep(1)
        world.kill("svc")
        await asyncio.sleep(2)
        world.restart("svc")
        await asyncio.sleep(1)
        return list(boots)

    result = world.run(main)
    assert result.value == [0.0, 3.0]
    assert result.now == pytest.approx(4.0)  # teardown did not sit out a timeout for the dead task
    assert not result.errors


def test_sqlite_keeps_what_was_committed_and_loses_the_open_transaction_on_a_hard_crash() -> None:
    world = World(seed=1)
    rows: list[list[tuple[str]]] = []

    async def service() -> None:
        db = sqlite3.connect(world.host("svc").disk / "data.db")
        db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
        rows.append(db.execute("SELECT v FROM t ORDER BY v").fetchall())
        if rows[-1]:
            db.execute("INSERT INTO t VALUES ('after restart')")  # the dead writer holds no lock
            db.commit()
            return
        db.execute("INSERT INTO t VALUES ('committed')")
        db.commit()
        db.execute("INSERT INTO t VALUES ('in flight')")  # an open transaction across an await
        try:
            await asyncio.sleep(3600)
        finally:
            db.commit()  # what a graceful stop would do; a SIGKILL never gets here

    world.host("svc").spawn(service)

    async def main() -> None:
        await asyncio.sleep(1)
        world.crash("svc", hard=True)
        world.restart("svc")
        await asyncio.sleep(1)

    world.run(main)
    assert rows == [[], [("committed",)]]


def test_crash_faults_are_hard_unless_told_graceful_and_say_so_in_their_label() -> None:
    hard = TimedFault.model_validate({"at": 1, "duration": 1, "kind": "crash", "host": "svc"})
    soft = TimedFault.model_validate({"at": 1, "duration": 1, "kind": "crash", "host": "svc", "mode": "graceful"})
    assert isinstance(hard.fault, CrashFault) and hard.fault.mode == "hard"
    assert (hard.fault.label(), soft.fault.label()) == ("crash svc", "stop svc")
    for fault, expected in ((hard, []), (soft, ["cancelled at 1", "finally at 1"])):
        world = World(seed=1)
        seen: list[str] = []
        world.host("svc").spawn(_service_with_cleanup(world, seen))
        Schedule(faults=[fault]).apply(world)

        async def main() -> list[str]:
            await asyncio.sleep(1.5)
            return list(seen)

        assert world.run(main).value[:2] == expected


def test_hard_crashes_are_deterministic() -> None:
    def once() -> str:
        world = World(seed=7)
        seen: list[str] = []
        world.host("svc").spawn(_service_with_cleanup(world, seen))
        Schedule(faults=[TimedFault(at=0.5, duration=2, fault=CrashFault(host="svc"))]).apply(world)
        return world.run(until=5).trace_hash

    assert once() == once()


def test_a_dead_hosts_cleanup_never_reaches_a_sealed_history_even_when_reclaimed() -> None:
    from sim.history import History

    world = World(seed=1)
    history = History(clock=lambda: world.now)
    world.at_end(history.seal)

    async def service() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            history({"event": "state_persisted"})  # what a device persisting on the way out reports

    world.host("svc").spawn(service)

    async def main() -> None:
        await asyncio.sleep(1)
        world.crash("svc", hard=True)
        await asyncio.sleep(1)

    world.run(main)
    assert [r["event"] for r in history] == []
    assert world._dead == {}  # reclaimed: a finished world holds no dead coroutines
