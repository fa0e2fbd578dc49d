"""asyncio semantics hold in virtual time."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import Deadlock, SimulationError, Unsupported, World


def run(main, seed: int = 1, **kw):
    return World(seed=seed, **kw).run(main)


def test_sleep_advances_virtual_time_exactly():
    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(1.5)
        return loop.time() - t0

    assert run(main).value == pytest.approx(1.5, abs=1e-9)


def test_an_hour_of_sleep_does_not_wait_for_an_hour():
    async def main():
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    wall = time.monotonic()
    result = run(main)
    assert result.value == pytest.approx(3600)
    assert result.now == pytest.approx(3600)
    # Structural, not a timing goal: a real sleep would take the full hour.
    assert time.monotonic() - wall < 60


def test_call_later_fires_in_deadline_order_and_ties_in_call_order():
    async def main():
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        done = loop.create_future()
        for name, delay in [("c", 0.3), ("a", 0.1), ("b", 0.2), ("a2", 0.1)]:
            loop.call_later(delay, lambda n=name: fired.append((n, round(loop.time(), 9))))
        loop.call_later(0.5, done.set_result, None)
        await done
        return fired

    assert run(main).value == [("a", 0.1), ("a2", 0.1), ("b", 0.2), ("c", 0.3)]


def test_wait_for_times_out_at_the_virtual_deadline():
    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), timeout=2)
        return loop.time() - t0

    assert run(main).value == pytest.approx(2.0)


def test_cancellation_reaches_the_task_and_its_cleanup_runs():
    async def main():
        cleaned = []

        async def worker():
            try:
                await asyncio.sleep(100)
            finally:
                cleaned.append(asyncio.get_running_loop().time())

        task = asyncio.create_task(worker())
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return cleaned

    assert run(main).value == [pytest.approx(1.0)]


def test_gather_returns_in_argument_order_after_the_longest():
    async def main():
        async def after(d, v):
            await asyncio.sleep(d)
            return v

        loop = asyncio.get_running_loop()
        values = await asyncio.gather(after(3, "x"), after(1, "y"), after(2, "z"))
        return values, loop.time()

    values, now = run(main).value
    assert values == ["x", "y", "z"]
    assert now == pytest.approx(3)


def test_until_stops_a_run_that_would_go_on_forever():
    async def forever():
        while True:
            await asyncio.sleep(1)

    world = World(seed=1)
    world.host("a").spawn(forever)
    result = world.run(until=30)
    assert result.now == pytest.approx(30)
    assert result.completed is False


def test_main_that_outlives_until_is_cut_off():
    async def main():
        await asyncio.sleep(100)
        return "never"

    result = World(seed=1).run(main, until=5)
    assert (result.completed, result.value, result.now) == (False, None, pytest.approx(5))


def test_to_thread_and_executor_run_inline_in_zero_virtual_time():
    def blocking(x):
        return x * 2

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        a = await asyncio.to_thread(blocking, 2)
        b = await loop.run_in_executor(None, blocking, 5)
        return a, b, loop.time() - t0

    assert run(main).value == (4, 10, 0.0)


def test_deadlock_is_reported_with_the_waiting_tasks_instead_of_hanging():
    async def stuck_forever():
        await asyncio.Event().wait()

    async def main():
        await asyncio.get_running_loop().create_future()

    world = World(seed=7)
    world.host("worker").spawn(stuck_forever)
    with pytest.raises(Deadlock) as info:
        world.run(main)
    message = str(info.value)
    assert "seed 7" in message
    assert "host 'worker'" in message and "stuck_forever" in message
    assert "host 'main'" in message


def test_unsupported_features_name_themselves_and_the_way_out():
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(Unsupported, match="subprocess.*chaos"):
            await asyncio.create_subprocess_exec("true")
        with pytest.raises(Unsupported, match="add_reader"):
            loop.add_reader(0, lambda: None)
        with pytest.raises(Unsupported, match="TLS"):
            await asyncio.open_connection("x", 1, ssl=True)
        return True

    assert run(main).value is True


def test_network_calls_outside_any_host_are_refused_with_the_way_out():
    world = World(seed=1)
    with pytest.raises(SimulationError, match="outside any host"):
        world.loop.run_until_complete(world.loop.create_server(asyncio.Protocol, port=1))


def test_a_world_runs_once():
    async def main():
        return 1

    world = World(seed=1)
    world.run(main)
    with pytest.raises(SimulationError, match="runs once"):
        world.run(main)


def test_exception_in_main_propagates():
    async def main():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run(main)


def test_a_failing_spawned_task_is_recorded_not_fatal():
    async def bad():
        await asyncio.sleep(1)
        raise RuntimeError("device exploded")

    async def main():
        await asyncio.sleep(2)
        return "ok"

    world = World(seed=1)
    world.host("dev").spawn(bad)
    result = world.run(main)
    assert result.value == "ok"
    assert any("device exploded" in e and "dev" in e for e in result.errors)
    assert any(e.kind == "task-error" for e in result.trace.events)


def test_running_inside_an_already_running_loop_works_as_in_jupyter():
    async def inner():
        await asyncio.sleep(10)
        return asyncio.get_running_loop().time()

    async def outer():
        outer_loop = asyncio.get_running_loop()
        value = World(seed=1).run(inner).value
        assert asyncio.get_running_loop() is outer_loop
        return value

    assert asyncio.run(outer()) == pytest.approx(10)


# A program of callbacks: callback i is scheduled by callback parent[i] (or, for a parent that
# is not an earlier callback, by the coroutine that starts the program), with call_soon or
# call_later(0), and is cancelled right after it is scheduled when its flag says so. Each
# callback that runs records its number.
_programs = st.lists(st.tuples(st.integers(-1, 59), st.sampled_from(["soon", "later0"]), st.booleans()), min_size=1, max_size=60)


async def _run_program(program: list[tuple[int, str, bool]]) -> list[int]:
    loop = asyncio.get_running_loop()
    children: dict[int, list[int]] = {}
    for i, (parent, _, _) in enumerate(program):
        children.setdefault(parent if 0 <= parent < i else -1, []).append(i)

    def runs(i: int) -> int:  # how many callbacks run in i's subtree
        return 0 if program[i][2] else 1 + sum(runs(c) for c in children.get(i, []))

    expected = sum(runs(c) for c in children.get(-1, []))
    ran: list[int] = []
    all_ran = asyncio.Event()

    def schedule(i: int) -> None:
        handle = loop.call_soon(fire, i) if program[i][1] == "soon" else loop.call_later(0, fire, i)
        if program[i][2]:
            handle.cancel()

    def fire(i: int) -> None:
        ran.append(i)
        for child in children.get(i, []):
            schedule(child)
        if len(ran) == expected:
            all_ran.set()

    for child in children.get(-1, []):
        schedule(child)
    if expected:
        await all_ran.wait()
    return ran


@settings(max_examples=150, deadline=None)
@given(program=_programs)
def test_callbacks_run_in_exactly_the_order_stock_asyncio_runs_them(program: list[tuple[int, str, bool]]) -> None:
    # Fewer than the 64 cancelled timers that make either loop tidy its heap (their
    # thresholds differ, and tidying reorders timers due at the same instant).
    expected = asyncio.run(_run_program(program))
    assert World(seed=1).run(lambda: _run_program(program)).value == expected
