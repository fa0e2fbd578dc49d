"""The simulated world: named hosts on one virtual clock, and the verbs that run it.

    world = World(seed=1)
    world.host("broker").spawn(run_broker)
    result = world.run(main=client, until=60)
    result.trace_hash, result.now, result.value

Code runs *on* a host: a contextvar set when a task is spawned there, inherited by its
child tasks. A host listens on its own name and reaches others by name.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import shutil
import tempfile
import time
import weakref
from asyncio import events
from dataclasses import dataclass, field
from heapq import heappush
from pathlib import Path
from typing import Any, Awaitable, Callable

import simpy

from sim._crash import bury, drop, tracked_sqlite
from sim._links import Links
from sim._loop import SimLoop
from sim._network import Network
from sim._pins import pinned
from sim._rng import Streams
from sim._trace import Trace
from sim.errors import SimulationError

log = logging.getLogger("sim.world")
CoroFn = Callable[..., Awaitable[Any]]
DEFAULT_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: wall clocks in a run start here


class _Call:
    """A simpy event that calls a function: the cheapest thing simpy's queue can hold."""

    __slots__ = ("callbacks", "_ok")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.callbacks = [lambda _ev: fn(*args)]
        self._ok = True


@dataclass
class RunResult:
    """What ``World.run`` returns."""

    trace_hash: str
    now: float
    value: Any = None
    completed: bool = True  # main returned (False when `until` came first)
    wall_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    trace: Trace | None = None

    @property
    def compression(self) -> float:
        """Virtual seconds per wall second."""
        return self.now / self.wall_seconds if self.wall_seconds else float("inf")


class Host:
    """A named machine in the world. Get one with ``world.host(name)``."""

    def __init__(self, world: "World", name: str) -> None:
        self.world = world
        self.name = name
        self.up = True
        self.context = contextvars.Context()
        self.context.run(world._host_var.set, self)
        self._spawned: dict[asyncio.Task[Any], None] = {}
        # Every task created on this host, in creation order, weakly (see World._adopt).
        self._tasks: list[weakref.ref[asyncio.Task[Any]]] = []
        self._prune_at = 1024
        self._entries: list[tuple[CoroFn, tuple[Any, ...]]] = []
        self._listeners: list[Any] = []
        self.skew = 0.0  # seconds added to wall-clock reads on this host
        self.drift = 0.0  # seconds of skew gained per virtual second

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call fn(*args) as code on this host (contexts cannot be entered twice, so check)."""
        if self.world._host_var.get(None) is self:
            return fn(*args)
        return self.context.run(fn, *args)

    def clock_offset(self, now: float) -> float:
        return self.skew + self.drift * now

    def spawn(self, coro_fn: CoroFn, *args: Any, name: str | None = None) -> asyncio.Task[Any] | None:
        """Run ``coro_fn(*args)`` on this host; it is also the host's entry point on restart.

        Before ``world.run`` starts, the task is created when the run starts, and on a host
        that is down, when it restarts (both return None).
        """
        self._entries.append((coro_fn, args))
        return self._start(coro_fn, args, name)

    def _start(self, coro_fn: CoroFn, args: tuple[Any, ...], name: str | None = None) -> asyncio.Task[Any] | None:
        loop = self.world.loop
        if not self.world._running:
            self.world._pending.append((self, coro_fn, args, name))
            return None
        if not self.up:
            return None  # an entry point: it starts when the host restarts
        task_name = name or f"{self.name}:{getattr(coro_fn, '__name__', 'task')}"
        ctx = self.context.copy()
        task = loop.create_task(ctx.run(coro_fn, *args), name=task_name, context=ctx)
        self.world._watch(task, self)
        return task

    @property
    def disk(self) -> Path:
        """A directory that survives this host's crashes (for sqlite files and the like)."""
        path = self.world._disk_root() / self.name
        path.mkdir(exist_ok=True)
        return path

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """The host's unfinished tasks, in creation order (so crashes cancel deterministically)."""
        return [t for r in self._tasks if (t := r()) is not None and not t.done()]

    def _prune(self) -> None:
        self._tasks = [weakref.ref(t) for t in self.tasks]
        self._prune_at = max(1024, 2 * len(self._tasks))

    def __repr__(self) -> str:
        return f"<Host {self.name} {'up' if self.up else 'down'}>"


class World:
    """A deterministic world of hosts on a simpy clock. Same seed, same run, byte for byte."""

    def __init__(
        self,
        seed: int = 0,
        *,
        latency: float = 0.0005,
        jitter: float = 0.0002,
        local_latency: float = 0.00002,
        connect_timeout: float = 60.0,
        tick: float = 0.0005,
        user_timeout: float = 30.0,
        trace: bool = True,
        trace_bytes: bool = True,
        epoch: float = DEFAULT_EPOCH,
    ) -> None:
        self.seed = int(seed)
        self.env = simpy.Environment()
        self.streams = Streams(self.seed)
        self.trace = Trace(keep=trace)
        self.epoch_ns = int(epoch * 1e9)
        self.hosts: dict[str, Host] = {}
        self._host_var: contextvars.ContextVar[Host] = contextvars.ContextVar("sim_host")
        self._pending: list[tuple[Host, CoroFn, tuple[Any, ...], str | None]] = []
        self._running = False
        self._ran = False
        self._disk: Path | None = None
        self._skewed = False
        self._lingering: list[asyncio.Task[Any]] = []
        self._dead: dict[asyncio.Task[Any], None] = {}  # hard-crashed hosts' tasks, never run again
        self._sqlite: dict[str, Any] = {}  # host name -> its open sqlite connections (see sim._crash)
        self._at_end: list[Callable[[], Any]] = []
        self.errors: list[str] = []
        self.links = Links(self, latency, jitter, local_latency, connect_timeout, tick, user_timeout)
        self.net = Network(self)
        self.net.trace_bytes = trace_bytes
        self.loop = SimLoop(self)

    # -- hosts --------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        """The host called ``name`` (created on first use)."""
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = Host(self, name)
        return host

    @property
    def now(self) -> float:
        return self.env._now

    @property
    def running(self) -> bool:
        """True from the start of ``run`` until its teardown ends."""
        return self._running

    def current_host(self) -> Host | None:
        """The host the calling code runs on (None outside any host)."""
        return self._host_var.get(None)

    def _current_host(self, what: str) -> Host:
        host = self._host_var.get(None)
        if host is None:
            raise SimulationError(f"{what} called outside any host: run the code on one with world.host(name).spawn(...)")
        return host

    def _adopt(self, task: asyncio.Task[Any], context: contextvars.Context | None) -> None:
        # Called for every task the loop creates (16 per message in the amqtt burst), so it is
        # lean: a plain list of weak references, pruned when it doubles. A strong reference
        # would keep finished tasks alive and the garbage collector's extra passes over them
        # cost a quarter of the burst benchmark; a WeakValueDictionary cost 6% in its Python
        # bookkeeping.
        host = context.get(self._host_var) if context is not None else self._host_var.get(None)
        if host is not None:
            refs = host._tasks
            refs.append(weakref.ref(task))
            if len(refs) > host._prune_at:
                host._prune()

    def _watch(self, task: asyncio.Task[Any], host: Host) -> None:
        """Record a spawned task's failure in the trace and the run's errors."""

        host._spawned[task] = None  # the host owns what it spawned, as a process table would

        def done(t: asyncio.Task[Any]) -> None:
            host._spawned.pop(t, None)
            if t.cancelled() or t.exception() is None:
                return
            exc = t.exception()
            self.trace.add(self.env._now, "task-error", 0, f"{host.name} {t.get_name()} {type(exc).__name__}")
            self.errors.append(f"t={self.env._now:.6f} task {t.get_name()} on {host.name}: {type(exc).__name__}: {exc}")

        task.add_done_callback(done)

    def _host_of(self, task: asyncio.Task[Any]) -> str | None:
        for host in self.hosts.values():
            if any(r() is task for r in host._tasks):
                return host.name
        return None

    def _record_error(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        msg = context.get("message", "error")
        text = f"t={self.env._now:.6f} {msg}" + (f": {type(exc).__name__}: {exc}" if exc else "")
        self.errors.append(text)
        log.debug("%s", text, exc_info=exc)

    def _disk_root(self) -> Path:
        if self._disk is None:
            self._disk = Path(tempfile.mkdtemp(prefix=f"squall-world-{self.seed}-"))
        return self._disk

    # -- faults: the verbs ------------------------------------------------------------------------
    def partition(self, a: str | list[str], b: str | list[str], *, oneway: bool = False) -> None:
        """Cut the network between host sets a and b (only a->b when oneway). Bytes are held."""
        self.links.partition([a] if isinstance(a, str) else a, [b] if isinstance(b, str) else b, oneway)

    def heal(self, a: str | list[str] | None = None, b: str | list[str] | None = None) -> None:
        """Heal the partition between a and b (all partitions when none given); held bytes flow."""
        self.links.heal(None if a is None else ([a] if isinstance(a, str) else a), None if b is None else ([b] if isinstance(b, str) else b))

    def add_toxic(self, target: str, toxic: Any) -> Any:
        """Add a Toxiproxy toxic (a `Toxic` or its JSON dict) on "hostA<->hostB" or "host:port"."""
        from sim.faults.toxics import Toxic

        return self.links.add_toxic(target, toxic if isinstance(toxic, Toxic) else Toxic.model_validate(toxic))

    def update_toxic(self, target: str, name: str, patch: dict[str, Any]) -> Any:
        return self.links.update_toxic(target, name, patch)

    def remove_toxic(self, target: str, name: str) -> None:
        self.links.remove_toxic(target, name)

    def disable(self, target: str) -> None:
        """Toxiproxy's enabled=false: close the target's connections and refuse new ones."""
        self.links.set_enabled(target, False)

    def enable(self, target: str) -> None:
        self.links.set_enabled(target, True)

    def skew(self, host: str, offset: float, drift: float = 0.0) -> None:
        """Offset wall-clock reads on host by offset seconds, plus drift seconds per second."""
        h = self.host(host)
        h.skew, h.drift = offset, drift
        self._skewed = any(x.skew or x.drift for x in self.hosts.values())
        self.trace.add(self.env._now, "fault", 0, f"skew {host} {offset!r} {drift!r}")

    def crash(self, host: str, *, hard: bool = False) -> None:
        """Crash a host: connections gone without FIN, listeners closed, and its code stopped.

        Graceful (the default here, for compatibility): its tasks are cancelled, so ``finally:``
        blocks and ``except CancelledError`` still run, as in an orderly shutdown. ``hard=True``:
        a SIGKILL, none of its code runs again (see `sim._crash`); what it committed to disk
        stays, what it did not is lost. Scenarios and swarms crash hard unless told otherwise.
        """
        h = self.host(host)
        if not h.up:
            return
        h.up = False
        self.trace.add(self.env._now, "crash", 0, host)
        for ep in self.net.endpoints_of(h):
            ep._dead = ep._closing = ep._lost = True
            self.net.forget(ep)
        for listener in list(h._listeners):
            listener.close()
        if hard:
            for task in drop(self, h):
                self._dead[task] = None
        else:
            for task in h.tasks:
                task.cancel()
                # Code that swallows its cancellation lingers; hold it so the garbage collector
                # does not destroy it mid-run at a moment that depends on memory, not on the seed.
                self._lingering.append(task)
        h._spawned.clear()

    def kill(self, host: str) -> None:
        """A hard crash: ``crash(host, hard=True)``."""
        self.crash(host, hard=True)

    def stop(self, host: str) -> None:
        """A graceful stop: ``crash(host)``, its tasks cancelled and their cleanup run."""
        self.crash(host)

    def restart(self, host: str) -> None:
        """Restart a crashed host: its entry points run again, with fresh memory (disk survives)."""
        h = self.host(host)
        if h.up:
            return
        h.up = True
        self.trace.add(self.env._now, "restart", 0, host)
        for coro_fn, args in h._entries:
            h._start(coro_fn, args)
        self.links.wake()

    def at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call fn(*args) at virtual time ``when`` (for fault schedules)."""
        self.after(max(0.0, when - self.env._now), fn, *args)

    def release(self) -> None:
        """Let go of what a finished run still holds (hosts and their tasks, connections, queued
        events, the kept trace's events), keeping what a report reads: ``seed``, ``now``,
        ``errors``, ``trace.hash``. The pytest plugin calls it after every test, so a failed
        (say livelocked) world does not stay alive with the failure's traceback."""
        if self._running:
            raise SimulationError("world.release() is for a finished run; this world is still running")
        dead, self._dead = list(self._dead), {}
        bury(dead)
        self.hosts.clear()
        self._pending.clear()
        self._lingering.clear()
        self._at_end.clear()
        self._sqlite.clear()
        self.env._queue.clear()
        self.net._listeners.clear()
        self.net._endpoints.clear()
        self.links._toxics.clear()
        self.loop._ready.clear()
        self.loop._scheduled.clear()
        self.trace.events = []

    def at_end(self, fn: Callable[[], Any]) -> None:
        """Call ``fn()`` once the run is over, before hard-crashed hosts' memory is reclaimed
        (their ``finally:`` blocks then run against a closed loop: seal what records the run)."""
        self._at_end.append(fn)

    # -- scheduling ------------------------------------------------------------------------------
    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` from the simulation kernel ``delay`` virtual seconds from now."""
        env = self.env
        heappush(env._queue, (env._now + delay, 1, next(env._eid), _Call(fn, args)))

    # -- running -----------------------------------------------------------------------------------
    def run(self, main: CoroFn | None = None, until: float | None = None) -> RunResult:
        """Run until ``main`` (run on host "main") returns or ``until`` virtual seconds pass."""
        if main is None and until is None:
            raise SimulationError("world.run needs main (a coroutine function) or until (virtual seconds)")
        if self._ran:
            raise SimulationError("a World runs once: make a new World(seed) for another run")
        self._ran = True
        loop = self.loop
        outer = events._get_running_loop()  # e.g. Jupyter's: we run synchronously inside it
        events._set_running_loop(None)
        old_loop = getattr(getattr(asyncio.get_event_loop_policy(), "_local", None), "_loop", None)
        asyncio.set_event_loop(loop)
        wall = time.perf_counter()
        try:
            with pinned(self), tracked_sqlite(self):
                try:
                    value, completed = loop.run_until_complete(self._drive(main, until))
                    end = self.env._now
                finally:
                    self._teardown()
        finally:
            asyncio.set_event_loop(old_loop)
            events._set_running_loop(outer)
            loop.close()
            for fn in self._at_end:
                fn()
            dead, self._dead = list(self._dead), {}
            bury(dead)
        return RunResult(
            trace_hash=self.trace.hash,
            now=end,
            value=value,
            completed=completed,
            wall_seconds=time.perf_counter() - wall,
            errors=list(self.errors),
            trace=self.trace,
        )

    async def _drive(self, main: CoroFn | None, until: float | None) -> tuple[Any, bool]:
        self._running = True
        self._start_pending()  # in a frame of its own: a traceback through _drive holds no host
        if main is None:
            await asyncio.sleep(until)  # type: ignore[arg-type]
            return None, False
        self.host("main")._entries.append((main, ()))
        task = self.host("main")._start(main, ())
        assert task is not None
        if until is None:
            return await task, True
        done, _ = await asyncio.wait({task}, timeout=until)
        if task in done:
            return task.result(), True
        task.cancel()
        return None, False

    def _start_pending(self) -> None:
        pending, self._pending = self._pending, []
        for host, coro_fn, args, name in pending:
            host._start(coro_fn, args, name)

    def _settle(self, coro: Any) -> None:
        try:
            self.loop.run_until_complete(coro)
        except SimulationError:  # still stuck: give up on cleanup, quietly
            coro.close()

    def _teardown(self) -> None:
        """Cancel what is still running, give it a virtual moment to clean up, then stop."""
        loop = self.loop
        loop._spins = 0  # a livelocked run still gets its cleanup
        # In host order, then creation order: all_tasks() iterates in memory-address order.
        tasks = [t for host in self.hosts.values() for t in host.tasks]
        known = set(tasks) | self._dead.keys()
        tasks += sorted((t for t in asyncio.all_tasks(loop) if not t.done() and t not in known), key=lambda t: t.get_name())
        for t in tasks:
            t.cancel()
        if tasks:
            self._settle(asyncio.wait(tasks, timeout=5.0))
        self._settle(loop.shutdown_asyncgens())
        self._running = False
        if self._disk is not None:
            shutil.rmtree(self._disk, ignore_errors=True)
