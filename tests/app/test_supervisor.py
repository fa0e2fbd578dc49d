"""The supervisor: dependency order, restart with backoff, reverse stop within a timeout,
graph errors before anything starts. Services are real apps on the real broker in the
simulated world; the ordering rule itself is a hypothesis property."""

from __future__ import annotations

import asyncio
import random

import pytest
from _app_support import Recorder, bus, run_clean, world_with_broker
from hypothesis import given
from hypothesis import strategies as st

from system.app import App
from system.supervisor import DependencyError, ServiceSpec, Supervisor, start_order


def _spec(name, *deps, run=None):
    async def idle(observer, data_dir):
        await asyncio.Event().wait()

    return ServiceSpec(name=name, kind="test", depends_on=tuple(deps), run=run or idle)


@st.composite
def dags(draw):
    n = draw(st.integers(1, 12))
    names = [f"s{i}" for i in range(n)]
    deps = {
        name: draw(st.sets(st.sampled_from(names[:i]), max_size=i)) if i else set()
        for i, name in enumerate(names)
    }
    order = draw(st.permutations(names))  # declared in any order
    return [_spec(name, *sorted(deps[name])) for name in order]


@given(dags())
def test_start_order_puts_every_service_after_its_dependencies(specs):
    order = start_order(specs)
    assert sorted(order) == sorted(s.name for s in specs)
    position = {name: i for i, name in enumerate(order)}
    for spec in specs:
        assert all(position[d] < position[spec.name] for d in spec.depends_on)


@given(dags(), st.data())
def test_start_order_rejects_any_cycle(specs, data):
    names = [s.name for s in specs]
    a = data.draw(st.sampled_from(names))
    # b depends (transitively or directly) on a; adding a -> b closes a cycle, even a self-loop.
    downstream = {a}
    for spec in sorted(specs, key=lambda s: start_order(specs).index(s.name)):
        if downstream & set(spec.depends_on):
            downstream.add(spec.name)
    b = data.draw(st.sampled_from(sorted(downstream)))
    cyclic = [
        _spec(s.name, *s.depends_on, *((b,) if s.name == a else ())) for s in specs
    ]
    with pytest.raises(DependencyError, match="cycle"):
        start_order(cyclic)


def test_missing_or_cyclic_dependencies_fail_before_anything_starts(tmp_path):
    started: list[str] = []

    async def run(observer, data_dir):
        started.append(data_dir.name)

    with pytest.raises(
        DependencyError,
        match="'ctl' depends on 'heater', which is not among the services",
    ):
        Supervisor(
            [_spec("ctl", "heater", run=run), _spec("sensor", run=run)],
            data_root=tmp_path,
        )
    with pytest.raises(DependencyError, match="cycle: a -> b -> a|cycle: b -> a -> b"):
        Supervisor(
            [_spec("a", "b", run=run), _spec("b", "a", run=run), _spec("c", run=run)],
            data_root=tmp_path,
        )
    with pytest.raises(DependencyError, match="two services are named 'a'"):
        Supervisor([_spec("a", run=run), _spec("a", run=run)], data_root=tmp_path)
    assert started == []


def _app_service(name, log, *, crash_first_after=None):
    """A service: an app answering 'ping' on svc/<name>; optionally dies once early on."""

    async def run(observer, data_dir):
        log.append(("start", name, asyncio.get_running_loop().time()))
        app = App(bus(name, observer), prefix="svc", observer=observer)
        dev = app.device(name)

        @dev.command("ping")
        def ping():
            return name

        async with app:
            await app.bus.wait_connected(30)
            first = sum(1 for e in log if e[:2] == ("start", name)) == 1
            if crash_first_after is not None and first:
                await asyncio.sleep(crash_first_after)
                raise RuntimeError(f"{name} lost its device")
            await asyncio.Event().wait()

    return run


def test_supervisor_starts_in_dependency_order_restarts_a_crash_with_backoff_and_stops_in_reverse():
    world = world_with_broker()
    events = Recorder()
    log: list[tuple] = []

    async def main():
        specs = [
            ServiceSpec(
                "controller",
                "controller",
                ("heater", "sensor"),
                _app_service("controller", log),
            ),
            ServiceSpec(
                "sensor",
                "sensor",
                (),
                _app_service("sensor", log, crash_first_after=5.0),
            ),
            ServiceSpec("heater", "heater", ("sensor",), _app_service("heater", log)),
        ]
        sup = Supervisor(
            specs,
            data_root=world.host("main").disk,
            observer=events,
            rng=random.Random(7),
            restart_initial=2.0,
            restart_max=8.0,
        )
        assert sup.order == ["sensor", "heater", "controller"]
        await sup.start()
        await asyncio.sleep(20)
        async with bus("client") as client:
            pong = (await client.request("svc/sensor/cmd/ping")).data
        states = dict(sup.states)
        await sup.stop()
        return pong, states, dict(sup.restarts)

    pong, states, restarts = run_clean(world, main, 120)
    assert [e[1] for e in log[:3]] == ["sensor", "heater", "controller"]
    assert pong == "sensor"  # the restarted service serves again
    assert states == {"sensor": "running", "heater": "running", "controller": "running"}
    assert restarts == {"sensor": 1, "heater": 0, "controller": 0}
    sensor = [(e.new, e.error, e.delay) for e in events.of("service", service="sensor")]
    assert [s for s, _, _ in sensor] == [
        "starting",
        "running",
        "crashed",
        "backoff",
        "starting",
        "running",
        "stopping",
        "stopped",
    ]
    crashed = events.of("service", service="sensor", new="crashed")[0]
    assert (
        crashed.error == "RuntimeError: sensor lost its device"
        and 0 <= crashed.delay <= 2.0
    )
    restarted = events.of("service", service="sensor", new="starting")[1]
    assert restarted.at - crashed.at == pytest.approx(crashed.delay)
    stops = [e.service for e in events.of("service", new="stopping")]
    assert stops == ["controller", "heater", "sensor"]


def test_backoff_grows_with_consecutive_crashes_and_stop_abandons_a_service_that_ignores_cancel():
    world = world_with_broker()
    events = Recorder()

    async def always_crashes(observer, data_dir):
        await asyncio.sleep(1)
        raise OSError("no device")

    async def stubborn(observer, data_dir):
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue  # refuses to stop

    async def main():
        sup = Supervisor(
            [
                ServiceSpec("flaky", "t", (), always_crashes),
                ServiceSpec("stubborn", "t", (), stubborn),
            ],
            data_root=world.host("main").disk,
            observer=events,
            rng=random.Random(1),
            restart_initial=1.0,
            restart_max=4.0,
            stop_timeout=3.0,
        )
        await sup.start()
        await asyncio.sleep(60)
        t = asyncio.get_running_loop().time()
        await sup.stop()
        return asyncio.get_running_loop().time() - t

    took = world.run(main, until=200)
    assert took.completed and took.value == pytest.approx(3.0)
    delays = [e.delay for e in events.of("service", service="flaky", new="crashed")]
    assert len(delays) >= 10
    ceilings = [min(4.0, 1.0 * 2**i) for i in range(len(delays))]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings))
    assert max(delays[3:]) > 1.0  # the ceiling did grow past the first one
    stopped = events.of("service", service="stubborn", new="stopped")[0]
    assert stopped.error == "did not stop within 3.0s; abandoned"
