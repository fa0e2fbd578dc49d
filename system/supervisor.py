"""The supervisor: starts services in dependency order, restarts a crashed one with backoff,
stops them in reverse order within a timeout, and reports every transition to the observer.

A service is a ``ServiceSpec``: a name, the names it depends on, and an async entry point
``run(observer, data_dir)`` that serves until cancelled. Returning or raising counts as a
crash. Transitions (``ServiceChanged`` events)::

    starting -> running -> crashed -> backoff -> starting -> ...
                running -> stopping -> stopped
"""

from __future__ import annotations

import asyncio
import graphlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from system._lifecycle import StartStop
from system.app._events import ServiceChanged
from system.app._retry import Backoff
from system.observer import LoggingObserver, Observer

__all__ = ["DependencyError", "ServiceSpec", "Supervisor", "start_order"]

_log = logging.getLogger("system.supervisor")


@dataclass(frozen=True)
class ServiceSpec:
    """One service: ``name`` (also its MQTT client id and, in a harness, its host),
    ``kind`` (what it is, e.g. ``sensor``), ``depends_on`` (names started before it) and
    ``run(observer, data_dir)``, which serves until cancelled; ``data_dir`` survives restarts."""

    name: str
    kind: str
    depends_on: tuple[str, ...]
    run: Callable[[Observer, Path], Awaitable[None]] = field(compare=False)


class DependencyError(ValueError):
    """The services' dependencies cannot be satisfied: a cycle, a missing or a duplicate name."""


def start_order(specs: Sequence[ServiceSpec]) -> list[str]:
    """Names in an order where each service comes after everything it depends on; among
    services ready together, the order they were given. Raises ``DependencyError``."""
    index: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in index:
            raise DependencyError(
                f"two services are named {spec.name!r}; service names must be unique"
            )
        index[spec.name] = i
    for spec in specs:
        missing = [d for d in spec.depends_on if d not in index]
        if missing:
            raise DependencyError(
                f"service {spec.name!r} depends on {', '.join(map(repr, missing))}, which is not among the services; "
                "add it or drop the dependency"
            )
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for spec in specs:
        sorter.add(spec.name, *spec.depends_on)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(reversed(exc.args[1]))
        raise DependencyError(
            f"services depend on each other in a cycle: {cycle}; break the cycle"
        ) from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=index.__getitem__)
        order += ready
        sorter.done(*ready)
    return order


class Supervisor(StartStop):
    """Runs ``specs`` on the current event loop.

    ``data_root / <name>`` is each service's data directory. A crashed service is started
    again after a backoff delay (capped exponential, full jitter from ``rng``) that grows
    with consecutive crashes and resets once a run lasted ``stable_after`` seconds.
    ``stop()`` cancels services in reverse start order, waiting up to ``stop_timeout`` each.
    The dependency graph is checked in the constructor, before anything starts.
    """

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        *,
        data_root: Path,
        observer: Observer | None = None,
        rng: random.Random | None = None,
        restart_initial: float = 1.0,
        restart_max: float = 30.0,
        stable_after: float = 60.0,
        stop_timeout: float = 5.0,
        name: str = "supervisor",
    ) -> None:
        self.order = start_order(specs)
        self.specs = {s.name: s for s in specs}
        self.data_root = Path(data_root)
        self.observer: Observer = (
            observer if observer is not None else LoggingObserver()
        )
        self.backoff = Backoff(restart_initial, restart_max, rng=rng or random.Random())
        self.stable_after = stable_after
        self.stop_timeout = stop_timeout
        self.name = name
        self.states: dict[str, str] = {n: "new" for n in self.order}
        self.starts: dict[str, int] = {n: 0 for n in self.order}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def restarts(self) -> dict[str, int]:
        return {n: max(0, c - 1) for n, c in self.starts.items()}

    async def start(self) -> None:
        """Start every service in dependency order; returns once all are running."""
        if self._watchers:
            raise RuntimeError("this supervisor was already started")
        for name in self.order:
            self._launch(name)
            self._watchers[name] = asyncio.create_task(
                self._watch(name), name=f"supervise-{name}"
            )
            await asyncio.sleep(
                0
            )  # let it take its first step before its dependents start

    async def stop(self) -> None:
        """Stop services in reverse dependency order, each within ``stop_timeout``."""
        self._stopping = True
        for name in reversed(self.order):
            watcher = self._watchers.pop(name, None)
            if watcher is not None:
                watcher.cancel()
            task = self._running.pop(name, None)
            if self.states[name] in ("new", "stopped"):
                continue
            self._set(name, "stopping")
            error = None
            if task is not None and not task.done():
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=self.stop_timeout)
                if not done:
                    error = f"did not stop within {self.stop_timeout}s; abandoned"
            self._set(name, "stopped", error=error)

    # -- internals -----------------------------------------------------------------------

    def _launch(self, name: str) -> None:
        spec = self.specs[name]
        self.starts[name] += 1
        self._set(name, "starting")
        data_dir = self.data_root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        self._running[name] = asyncio.create_task(
            _call(spec, self.observer, data_dir), name=f"service-{name}"
        )
        self._set(name, "running")

    async def _watch(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        crashes = 0
        while True:
            task = self._running[name]
            began = loop.time()
            await asyncio.wait({task})
            if self._stopping:
                return
            if task.cancelled():
                error = "cancelled"
            elif task.exception() is not None:
                exc = task.exception()
                error = f"{type(exc).__name__}: {exc}"
            else:
                error = "returned (a service must run until cancelled)"
            crashes = 1 if loop.time() - began >= self.stable_after else crashes + 1
            delay = self.backoff.delay(crashes)
            self._set(name, "crashed", error=error, delay=delay, policy=True)
            self._set(name, "backoff", delay=delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self._launch(name)

    def _set(
        self,
        name: str,
        new: str,
        *,
        error: str | None = None,
        delay: float | None = None,
        policy: bool = False,
    ) -> None:
        old, self.states[name] = self.states[name], new
        try:
            at = asyncio.get_running_loop().time()
        except RuntimeError:
            at = 0.0
        event = ServiceChanged(
            client=self.name,
            at=at,
            service=name,
            old=old,
            new=new,
            attempt=self.starts[name],
            delay=delay,
            error=error,
            **(
                {
                    "initial": self.backoff.initial,
                    "maximum": self.backoff.maximum,
                    "stable_after": self.stable_after,
                }
                if policy
                else {}
            ),
        )
        try:
            self.observer(event)
        except Exception:  # noqa: BLE001 - an observer must never break the supervisor
            _log.exception(
                "observer failed on a service transition; the supervisor carries on"
            )


async def _call(spec: ServiceSpec, observer: Observer, data_dir: Path) -> None:
    try:
        await spec.run(observer, data_dir)
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("service %s crashed", spec.name)
        raise
