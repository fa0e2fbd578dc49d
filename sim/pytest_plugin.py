"""squall's pytest plugin: test your own services in the simulated world, over many seeds.

Installed with squall (entry point ``pytest11: squall``), so nothing to configure:

    import asyncio, pytest
    from amqtt.client import MQTTClient

    @pytest.mark.squall_seeds(20)                 # seeds 1..20; or run with --squall-seeds 1-200
    def test_my_service_survives_a_partition(squall_world, squall_broker):
        squall_world.host("svc").spawn(my_service, squall_broker.url)

        async def main():
            await squall_broker.ready()
            squall_world.partition("svc", "broker")
            await asyncio.sleep(30)
            squall_world.heal()
            ...                                   # assert what your users rely on

        squall_world.run(main, until=600)

- ``squall_world``: a fresh `sim.World` seeded with the test's seed, the embedded broker
  already spawned on host ``"broker"`` (``squall_broker.url`` is ``mqtt://broker:1883``).
- ``squall_broker``: that broker (`SimBroker`); ``await squall_broker.ready()`` before connecting.
- ``squall_seed``: the seed. ``@pytest.mark.squall_seeds(n)`` runs the test for seeds 1..n
  (or a list, or ``"1-5,9"``); ``--squall-seeds A-B`` overrides every marker.
- ``@pytest.mark.squall_broker(flavor="amqtt", durable=False, users=..., acl=...)`` picks the
  broker (stock amqtt shows its spec bugs; durable: sessions survive a crash of host "broker",
  the default, as in scenarios); ``squall_broker(None)`` spawns none. ``@pytest.mark.squall_world(latency=...)``
  passes options to `World`. Parametrize ``squall_flavor`` to run both flavors.
- A failing seed's report has a ``squall`` section: the seed, the world's virtual time and
  task errors, and the one command that replays exactly that seed.
- ``squall_scenario(path)``: runs a scenario file (your ``[[services]]``) with the test's
  seed and fails the test, naming each failed check and the replay command, unless every
  check holds (``check=False`` returns the `RunOutcome` instead; ``out=DIR`` keeps the run
  directory). ``run_scenario_file(path, seed)`` is the same without a fixture.
- Hypothesis strategies for fault schedules are re-exported here (`schedules`, `toxics`, ...);
  inside ``@given`` make a world per example with `world_with_broker(seed)`.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

# Re-exported: the fault-schedule strategies are part of the testing vocabulary.
from sim.faults.strategies import (
    crashes,
    downs,
    partitions,
    schedules,
    skews,
    toxic_faults,
    toxics,
)

if TYPE_CHECKING:
    from sim import World
    from system.broker import EmbeddedBroker

__all__ = [
    "SimBroker",
    "crashes",
    "downs",
    "partitions",
    "run_scenario_file",
    "schedules",
    "skews",
    "toxic_faults",
    "toxics",
    "world_with_broker",
]

BROKER_HOST = "broker"
BROKER_PORT = 1883
DEFAULT_SEEDS = (1,)
DEFAULT_TIMEOUT = 120  # wall seconds per test: a simulated world that hangs is a finding, not a CI stall

_world_key = pytest.StashKey["World"]()
_broker_key = pytest.StashKey["SimBroker | None"]()


@dataclass
class SimBroker:
    """The embedded broker running on host ``"broker"`` of a simulated world.

    ``durable`` (the default, as in scenarios): after ``world.crash("broker")`` and
    ``world.restart("broker")`` the squall flavor finds its sessions and retained messages
    again, as a broker with durable storage would; otherwise it restarts empty.
    """

    flavor: str = "squall"
    durable: bool = True
    host: str = BROKER_HOST
    port: int = BROKER_PORT
    options: dict[str, Any] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    _up: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def ready(self, timeout: float = 30.0) -> str:
        """Wait (virtual seconds) until the broker listens, and return its URL.

        Right after ``world.restart("broker")`` this waits for the restarted broker.
        """
        await asyncio.sleep(
            0
        )  # let a broker restarted just now begin, so it is not mistaken for the old one
        await asyncio.wait_for(self._up.wait(), timeout)
        return self.url

    async def _serve(self) -> None:
        # The host's entry point, run again by each restart: one EmbeddedBroker object stands
        # for the broker's disk, the same way the scenario runner models it.
        from system.broker import EmbeddedBroker

        self._up.clear()
        if self.broker is None:
            self.broker = EmbeddedBroker(
                host="0.0.0.0",
                port=self.port,
                flavor=self.flavor,  # type: ignore[arg-type]  # checked by world_with_broker
                **self.options,
            )
        else:
            self.broker.crashed(durable=self.durable)
        await self.broker.start()
        self._up.set()
        await asyncio.Event().wait()


def world_with_broker(
    seed: int,
    flavor: str | None = "squall",
    *,
    durable: bool = True,
    broker_options: dict[str, Any] | None = None,
    **world_options: Any,
) -> tuple[World, SimBroker | None]:
    """A fresh World(seed) with the embedded broker spawned on host "broker" (none if flavor is None).

    ``broker_options`` go to `EmbeddedBroker` (users, acl, ...), ``world_options`` to `World`.
    """
    from sim import World
    from system.broker.embedded import FLAVORS

    if flavor is not None and flavor not in FLAVORS:
        raise ValueError(
            f"broker flavor must be one of {', '.join(FLAVORS)} or None for no broker (got {flavor!r})"
        )
    world = World(seed=seed, **world_options)
    if flavor is None:
        return world, None
    broker = SimBroker(
        flavor=flavor, durable=durable, options=dict(broker_options or {})
    )
    world.host(broker.host).spawn(broker._serve)
    return world, broker


def _parse_seeds(value: Any, where: str) -> list[int]:
    from sim.errors import BadInput
    from sim.sweep import parse_seeds

    if isinstance(value, bool):
        raise pytest.UsageError(
            f"{where}: give a number of seeds, a list of seeds or a string like '1-5,9' (got {value!r})"
        )
    if isinstance(value, int):
        if value < 1:
            raise pytest.UsageError(
                f"{where}: the number of seeds must be at least 1 (got {value})"
            )
        return list(range(1, value + 1))
    if isinstance(value, str):
        try:
            return parse_seeds(value)
        except BadInput:
            raise pytest.UsageError(
                f"{where} {value!r}: write a range like 1-50, a list like 3,7,9, or both (1-5,9)"
            ) from None
    if (
        isinstance(value, (list, tuple, range))
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        return list(dict.fromkeys(value))
    raise pytest.UsageError(
        f"{where}: give a number of seeds, a list of seeds or a string like '1-5,9' (got {value!r})"
    )


# -- hooks ---------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("squall", "squall simulated worlds")
    parser.addini(
        "squall_timeout",
        "wall seconds each test using squall_world may take, when pytest-timeout is installed and no --timeout or timeout marker says otherwise (0: none)",
        default=str(DEFAULT_TIMEOUT),
    )
    group.addoption(
        "--squall-seeds",
        default=None,
        metavar="SEEDS",
        help="run every test that uses squall_world/squall_seed once per seed: a range 1-50, a list 3,7,9, or both",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "squall_seeds(n_or_seeds): run the test once per seed (1..n, a list, or '1-5,9')",
    )
    config.addinivalue_line(
        "markers",
        "squall_broker(flavor='squall', durable=True, **options): the broker squall_world starts (None: no broker)",
    )
    config.addinivalue_line(
        "markers", "squall_world(**options): keyword arguments for the test's sim.World"
    )
    config.pluginmanager.register(_FailedSeeds(), "squall-failed-seeds")
    text = config.getoption("--squall-seeds")
    if text is not None:
        _parse_seeds(text, "--squall-seeds")  # refuse bad input once, before collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "squall_seed" not in metafunc.fixturenames or _parametrized_by_hand(metafunc):
        return
    text = metafunc.config.getoption("--squall-seeds")
    marker = metafunc.definition.get_closest_marker("squall_seeds")
    if text is not None:
        seeds = _parse_seeds(text, "--squall-seeds")
    elif marker is not None:
        if len(marker.args) != 1 or marker.kwargs:
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: write @pytest.mark.squall_seeds(20), squall_seeds([3, 7]) or squall_seeds('1-5,9')"
            )
        seeds = _parse_seeds(
            marker.args[0], f"{metafunc.definition.nodeid}: squall_seeds"
        )
    else:
        seeds = list(DEFAULT_SEEDS)
    metafunc.parametrize(
        "squall_seed", seeds, indirect=True, ids=[f"seed={s}" for s in seeds]
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A default wall-clock limit for tests in a simulated world (through pytest-timeout)."""
    if not config.pluginmanager.hasplugin("timeout") or config.getoption("timeout", None):
        return
    try:
        limit = float(config.getini("squall_timeout"))
    except ValueError:
        raise pytest.UsageError(f"squall_timeout = {config.getini('squall_timeout')!r}: give wall seconds, e.g. 120 (0: no limit)") from None
    if limit <= 0:
        return
    for item in items:
        names = getattr(item, "fixturenames", ())
        if ("squall_world" in names or "squall_seed" in names) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))


def _parametrized_by_hand(metafunc: pytest.Metafunc) -> bool:
    """The test parametrizes squall_seed itself: its own seeds win."""
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if "squall_seed" in (
            [n.strip() for n in names.split(",")]
            if isinstance(names, str)
            else list(names)
        ):
            return True
    return False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    callspec = getattr(item, "callspec", None)
    seed = callspec.params.get("squall_seed") if callspec is not None else None
    if report.failed and seed is not None:
        report.sections.append(("squall", _failure_text(item, int(seed))))
        report.user_properties.append(
            ("squall_seed", int(seed))
        )  # travels to the xdist controller
    return report


class _FailedSeeds:
    """Per-session list of failing seeds, printed at the end (fed by reports, so it works under xdist)."""

    def __init__(self) -> None:
        self.failed: dict[str, list[int]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        seed = (
            dict(report.user_properties).get("squall_seed") if report.failed else None
        )
        if isinstance(seed, int):
            self.failed.setdefault(report.nodeid.split("[", 1)[0], []).append(int(seed))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.failed:
            return
        terminalreporter.section("squall failing seeds")
        for base, seeds in self.failed.items():
            listed = ",".join(map(str, sorted(set(seeds))))
            terminalreporter.write_line(f"{base}: seeds {listed}")
            terminalreporter.write_line(
                f"  replay: python -m pytest {shlex.quote(base)} --squall-seeds {listed}"
            )


def _base_id(item: pytest.Item) -> str:
    return item.nodeid.split("[", 1)[0]


def _failure_text(item: pytest.Item, seed: int) -> str:
    lines = [
        f"seed {seed} failed",
        f"replay this seed:  python -m pytest {shlex.quote(item.nodeid)}",
        f"             or:  python -m pytest {shlex.quote(_base_id(item))} --squall-seeds {seed}",
    ]
    world = item.stash.get(_world_key, None)
    if world is not None:
        lines.append(
            f"world: virtual time {world.now:g}s, trace hash {world.trace.hash[:16]}"
        )
        for err in world.errors[:5]:
            lines.append(f"  task error: {err}")
        if len(world.errors) > 5:
            lines.append(f"  ... {len(world.errors) - 5} more task errors")
    return "\n".join(lines)


# -- scenario files ------------------------------------------------------------------------------


def run_scenario_file(path: Any, seed: int, *, out: Any = None, check: bool = True) -> Any:
    """Run a scenario file for one seed; with ``check``, raise AssertionError unless all checks hold."""
    from pathlib import Path

    from sim.runner import run_scenario
    from sim.scenario import load_scenario

    ref = str(path)
    outcome = run_scenario(load_scenario(ref), seed, out=Path(out) if out is not None else None, scenario_ref=ref, plots=out is not None)
    if check and not outcome.ok:
        failed = [c for c in outcome.report["checks"] if not c["ok"]]
        lines = [f"{ref} seed {seed}: {len(failed)} check(s) failed"] + [f"  {c['name']}: {c['detail']}" for c in failed]
        lines.append(f"  replay: {outcome.report['replay']}")
        raise AssertionError("\n".join(lines))
    return outcome


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def squall_scenario(squall_seed: int) -> Any:
    """``squall_scenario(path, check=True, out=None)``: run a scenario file with this test's seed."""

    def run(path: Any, *, check: bool = True, out: Any = None) -> Any:
        return run_scenario_file(path, squall_seed, out=out, check=check)

    return run



@pytest.fixture
def squall_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this test run (parametrized: see the squall_seeds marker and --squall-seeds)."""
    return int(getattr(request, "param", DEFAULT_SEEDS[0]))


@pytest.fixture
def squall_flavor(request: pytest.FixtureRequest) -> str | None:
    """The broker flavor: the squall_broker marker's, else "squall". Parametrize it to run several."""
    marker = request.node.get_closest_marker("squall_broker")
    if marker is None:
        return "squall"
    if marker.args:
        return marker.args[0]
    return marker.kwargs.get("flavor", "squall")


@pytest.fixture
def squall_world(
    request: pytest.FixtureRequest, squall_seed: int, squall_flavor: str | None
) -> Generator[World, None, None]:
    """A fresh simulated world seeded with the test's seed, the embedded broker on host "broker"."""
    broker_marker = request.node.get_closest_marker("squall_broker")
    broker_options = {
        k: v
        for k, v in (broker_marker.kwargs if broker_marker else {}).items()
        if k not in ("flavor", "durable")
    }
    durable = bool(broker_marker.kwargs.get("durable", True)) if broker_marker else True
    world_marker = request.node.get_closest_marker("squall_world")
    world_options = dict(world_marker.kwargs) if world_marker else {}
    try:
        world, broker = world_with_broker(
            squall_seed,
            squall_flavor,
            durable=durable,
            broker_options=broker_options,
            **world_options,
        )
    except (TypeError, ValueError) as exc:
        pytest.fail(
            f"squall_world: bad squall_world/squall_broker marker options: {exc}",
            pytrace=False,
        )
    request.node.stash[_world_key] = world
    request.node.stash[_broker_key] = broker
    yield world
    # The failure report has been written (it reads the world in makereport); let go of the
    # world now, so a failed seed's hosts, tasks and trace do not stay alive with its
    # traceback (pytest keeps the last one for post-mortem debugging) while other seeds run.
    del request.node.stash[_world_key]
    if not world.running:
        world.release()


@pytest.fixture
def squall_broker(request: pytest.FixtureRequest, squall_world: World) -> SimBroker:
    """The embedded broker of squall_world; ``await squall_broker.ready()`` before connecting."""
    broker = request.node.stash[_broker_key]
    if broker is None:
        pytest.fail(
            "squall_broker: this test's squall_broker marker asked for no broker (flavor None)",
            pytrace=False,
        )
    return broker
