"""What a scenario runs, whatever the world: the broker, the fleet's services, the watchers,
the user's ``[[services]]`` (sim/services.py).

Both runners (sim and chaos) start exactly these, so a scenario means the same thing in
both worlds; they differ only in where a service runs and what "crash" means.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal

from sim.scenario import Scenario
from sim.services import ServiceSet, context_for, resolve_service

Observer = Callable[[Any], None]
Entry = Callable[[Observer, Path], Awaitable[None]]


@dataclass(frozen=True)
class Service:
    name: str  # also its host name in sim and its MQTT client id
    kind: str
    run: Entry
    depends_on: tuple[str, ...] = ()
    user: ServiceSet | None = None  # set for a user's service: its [[services]] table
    index: int = 0


def plan(scenario: Scenario, seed: int, broker_url: str | Callable[[str], str], note: Callable[..., None], mode: Literal["sim", "chaos"] = "sim") -> list[Service]:
    """The services of one run, in start order (dependencies first).

    ``broker_url`` is one URL for every service (sim), or a function of the service's name
    (chaos, where each service reaches the broker through its own proxy).
    """
    url_for: Callable[[str], str] = broker_url if callable(broker_url) else (lambda _name, url=broker_url: url)  # type: ignore[misc]
    services = _fleet(scenario, seed, broker_url, note) if scenario.runs_fleet else []
    if scenario.workload.churn_subscriber and not scenario.runs_fleet:
        services.append(Service("watcher", "watcher", _churn(scenario, url_for("watcher"), seed)))
    hosts = {s.name: s.hosts() for s in scenario.services}
    for user in scenario.services:
        main = resolve_service(user, scenario.pythonpath, mode)
        deps = tuple(h for d in user.depends_on for h in hosts[d])
        for i, host in enumerate(user.hosts()):
            services.append(Service(host, user.name, _user(user, i, main, url_for(host), seed, mode, note), deps, user, i))
    return _ordered(services)


def _user(user: ServiceSet, index: int, main: Any, url: str, seed: int, mode: Literal["sim", "chaos"], note: Callable[..., None]) -> Entry:
    """A user's entry as a host's entry point: a fresh context on every (re)start, same disk."""

    async def run(observer: Observer, disk: Path) -> None:
        if main is None:  # command only: the chaos runner starts the process instead
            return
        await main(context_for(user, index, broker_url=url, seed=seed, disk=disk, mode=mode, note=note))

    return run


def _fleet(scenario: Scenario, seed: int, broker_url: str | Callable[[str], str], note: Callable[..., None]) -> list[Service]:
    """The reference fleet, the monitor and the churning watcher: squall's own service set."""
    from system.fleet import fleet_rooms, fleet_services

    config = scenario.fleet_config()
    if callable(broker_url):
        url_for = broker_url
        # One URL per service: build each service against its own URL, all sharing one
        # set of rooms, so a room's sensors and heater still see the same physics.
        rooms = fleet_rooms(config, seed)
        names = [s.name for s in fleet_services(config, "mqtt://unused:1", seed, rooms=rooms)]
        specs = [next(s for s in fleet_services(config, url_for(n), seed, rooms=rooms) if s.name == n) for n in names]
    else:
        url_for = lambda _name, url=broker_url: url  # noqa: E731
        specs = fleet_services(config, broker_url, seed)
    services = [Service(s.name, s.kind, s.run, tuple(s.depends_on)) for s in specs]
    services.append(Service("monitor", "monitor", _monitor(url_for("monitor"), note)))
    if scenario.workload.churn_subscriber:
        services.append(Service("watcher", "watcher", _churn(scenario, url_for("watcher"), seed)))
    if scenario.workload.supervised:
        services.append(Service("supervisor", "supervisor", _supervised(scenario, url_for("supervisor"), seed)))
    return services


def host_names(scenario: Scenario) -> set[str]:
    """Every host a run of this scenario has: the broker and each service (the names faults use)."""
    names = {"broker", *(h for s in scenario.services for h in s.hosts())}
    if scenario.workload.churn_subscriber:
        names.add("watcher")
    if scenario.workload.supervised:
        names.add("supervisor")
    if scenario.runs_fleet:
        from system.fleet import fleet_services

        names |= {s.name for s in fleet_services(scenario.fleet_config(), "mqtt://unused:1", scenario.seed)} | {"monitor"}
    return names


def _ordered(services: list[Service]) -> list[Service]:
    by_name = {s.name: s for s in services}
    done: dict[str, Service] = {}

    def visit(s: Service, path: tuple[str, ...]) -> None:
        if s.name in done:
            return
        if s.name in path:
            raise ValueError(f"dependency cycle: {' -> '.join(path + (s.name,))}")
        for dep in s.depends_on:
            if dep in by_name:
                visit(by_name[dep], path + (s.name,))
        done[s.name] = s

    for s in services:
        visit(s, ())
    return list(done.values())


def _monitor(broker_url: str, note: Callable[..., None]) -> Entry:
    """Watches every client's retained availability, as a dashboard would. Its own connects
    and disconnects are recorded (nothing else of its bus), so the availability check judges
    only what it could see."""

    async def run(observer: Observer, disk: Path) -> None:
        from system.bus import BusClient, BusSettings

        async def seen(msg: Any) -> None:
            subject = msg.topic.rsplit("/", 1)[-1]
            status = (msg.data or {}).get("status") if isinstance(msg.data, dict) else None
            if subject != "monitor" and status:
                note("availability", subject=subject, status=status, watcher="monitor")

        def sight(event: Any) -> None:
            if event.name in ("connect", "disconnect"):
                observer(event)

        settings = BusSettings(url=broker_url, client_id="monitor", heartbeat_interval=0)
        client = BusClient(settings, observer=sight, rng=random.Random("monitor"))
        await client.subscribe(f"{settings.prefix}/availability/+", seen)
        await client.start()
        await asyncio.Event().wait()

    return run


def _churn(scenario: Scenario, broker_url: str, seed: int) -> Entry:
    """A QoS 1 subscriber with a persistent session that keeps dropping off and coming back."""
    w = scenario.workload

    async def run(observer: Observer, disk: Path) -> None:
        from system.bus import BusClient, BusSettings

        rng = random.Random(f"watcher:{seed}")
        settings = BusSettings(url=broker_url, client_id="watcher", heartbeat_interval=0, clean_session=False)
        while True:
            client = BusClient(settings, observer=observer, rng=rng)
            await client.subscribe(w.churn_topics, lambda msg: None, qos=1)
            await client.start()
            await asyncio.sleep(w.churn_every * (0.5 + rng.random()))
            await client.abort()  # gone without a DISCONNECT, messages in flight
            await asyncio.sleep(w.churn_offline)

    return run


def _supervised(scenario: Scenario, broker_url: str, seed: int) -> Entry:
    """A supervisor running flaky services: each publishes a heartbeat, then dies after a
    seeded lifetime, and the supervisor must start it again with its backoff."""
    w = scenario.workload

    async def run(observer: Observer, disk: Path) -> None:
        from system.bus import BusClient, BusSettings
        from system.supervisor import ServiceSpec, Supervisor

        def flaky(name: str) -> Callable[[Observer, Path], Awaitable[None]]:
            rng = random.Random(f"{name}:{seed}")

            async def serve(obs: Observer, data_dir: Path) -> None:
                settings = BusSettings(url=broker_url, client_id=name, heartbeat_interval=0)
                client = BusClient(settings, observer=obs, rng=random.Random(f"{name}:{seed}:bus:{rng.random()}"))
                await client.start()
                try:
                    await asyncio.sleep(rng.expovariate(1.0 / w.supervised_lifetime))
                finally:
                    await client.abort()
                raise RuntimeError(f"{name} died (a planted crash)")

            return serve

        specs = [ServiceSpec(name=f"flaky-{i}", kind="flaky", depends_on=(), run=flaky(f"flaky-{i}")) for i in range(1, w.supervised + 1)]
        supervisor = Supervisor(specs, data_root=disk, observer=observer, rng=random.Random(f"supervisor:{seed}"), stable_after=w.supervised_stable_after)
        await supervisor.start()
        try:
            await asyncio.Event().wait()
        finally:
            await supervisor.stop()

    return run
