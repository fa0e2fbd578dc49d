"""An asyncio event loop whose clock is a simpy Environment.

What is virtual: ``loop.time()`` is ``env.now``; the selector never waits on the OS but
advances the environment (all simpy events due at the current instant in one go; when
nothing is ready it jumps the clock to the next simpy event or asyncio timer, whichever is
first). TCP (``create_connection``, ``create_server`` and so ``asyncio.open_connection`` /
``asyncio.start_server``) goes over the simulated network. ``run_in_executor`` and
``asyncio.to_thread`` run the function inline in zero virtual time.

What is refused, each with a message naming the way out: raw sockets, fd watchers,
subprocesses, UDP, Unix sockets, TLS, signal handlers.

When nothing at all is scheduled while a task still waits, that is a deadlock: the loop
raises `sim.errors.Deadlock` naming every waiting task and where it waits.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
from asyncio import events
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any, Callable

from sim._network import _RefusedUnsupported
from sim.errors import Deadlock, Livelock

if TYPE_CHECKING:
    from sim._world import World

log = logging.getLogger("sim.loop")
_INF = float("inf")


class _Selector:
    """Stands where the OS selector would: advancing virtual time is our only I/O."""

    def __init__(self, loop: "SimLoop") -> None:
        self._loop = loop
        self._env = loop._world.env

    def select(self, timeout: float | None) -> list[Any]:
        env = self._env
        queue = env._queue
        now = env._now
        ready = self._loop._ready
        # Everything due now, in one go: this is where the spike of this design lost its time.
        while queue and queue[0][0] <= now:
            self._step(queue)
        if ready or timeout == 0:
            return []
        if timeout is None:
            deadline = _INF
        else:
            scheduled = self._loop._scheduled
            deadline = scheduled[0]._when if scheduled and timeout < 86400 else now + timeout
        while True:
            if not queue:
                if deadline == _INF:
                    raise self._loop._deadlock()
                env._now = deadline
                return []
            t = queue[0][0]
            if t > deadline:
                env._now = deadline
                return []
            while queue and queue[0][0] <= t:
                self._step(queue)
            if ready:
                return []

    def _step(self, queue: list[Any]) -> None:
        env = self._env
        env._now, _, _, event = heappop(queue)
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc

    def close(self) -> None:
        pass


class _Handle(events.Handle):
    """asyncio's Handle, built by `SimLoop.call_soon` itself without the debug bookkeeping."""

    __slots__ = ()


class _TimerHandle(events.TimerHandle):
    """A timer that orders ties by scheduling order, as stock asyncio's do in effect.

    On a real clock two call_later(0) calls get different deadlines (the clock moved between
    them), so they fire in call order. In virtual time they share one deadline, and a heap
    alone would fire them in an order that depends on its shape.
    """

    __slots__ = ("_seq",)

    def __lt__(self, other: "events.TimerHandle") -> bool:
        when, other_when = self._when, other._when
        return when < other_when or (when == other_when and self._seq < other._seq)  # type: ignore[attr-defined]


_new = object.__new__
_copy_context = contextvars.copy_context


class SimLoop(asyncio.BaseEventLoop):
    """The event loop of one simulated world; see the module docstring for its semantics."""

    def __init__(self, world: "World") -> None:
        super().__init__()
        self._world = world
        self._selector = _Selector(self)
        self._clock_resolution = 1e-9
        self._instant = -1.0
        self._spins = 0
        self._timer_seq = 0
        self.livelock_limit = 500_000  # callbacks run without virtual time moving

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(enabled)
        # C futures and tasks ask loop.get_debug() at every creation; a bound C method answers
        # without a Python frame.
        self.get_debug = bool(enabled).__bool__  # type: ignore[method-assign]

    # -- time -----------------------------------------------------------------------------
    def time(self) -> float:
        return self._world.env._now

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    # -- the hot path: asyncio's own logic, minus what only matters on a real OS ------------
    # A handle is built here, field by field, rather than by its __init__: 45 handles per
    # message in the amqtt burst make every Python frame saved here count (call_at repeats
    # the fields for timers on purpose: a shared helper measured 5% more instructions).
    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> events.Handle:
        handle = _new(_Handle)
        handle._callback = callback
        handle._args = args
        handle._loop = self
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        handle._context = _copy_context() if context is None else context
        self._ready.append(handle)
        return handle

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> events.TimerHandle:
        timer = _new(_TimerHandle)
        timer._callback = callback
        timer._args = args
        timer._loop = self
        timer._cancelled = False
        timer._repr = None
        timer._source_traceback = None
        timer._context = _copy_context() if context is None else context
        timer._when = when
        timer._scheduled = True
        timer._seq = self._timer_seq = self._timer_seq + 1
        heappush(self._scheduled, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> events.TimerHandle:
        return self.call_at(self._world.env._now + delay, callback, *args, context=context)

    def _run_once(self) -> None:
        ready = self._ready
        scheduled = self._scheduled
        if self._timer_cancelled_count > 64 and self._timer_cancelled_count * 2 > len(scheduled):
            live = []
            for timer in scheduled:
                if timer._cancelled:
                    timer._scheduled = False
                else:
                    live.append(timer)
            heapify(live)
            self._scheduled = scheduled = live
            self._timer_cancelled_count = 0
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1
            heappop(scheduled)._scheduled = False
        if ready or self._stopping:
            timeout: float | None = 0
        elif scheduled:
            timeout = max(0.0, scheduled[0]._when - self._world.env._now)
        else:
            timeout = None
        self._selector.select(timeout)
        now = self._world.env._now
        if now == self._instant:
            self._spins += len(ready)
            if self._spins > self.livelock_limit:
                raise self._livelock()
        else:
            self._instant, self._spins = now, 0
        end = now + 1e-9
        while scheduled and scheduled[0]._when < end:
            timer = heappop(scheduled)
            timer._scheduled = False
            ready.append(timer)
        popleft = ready.popleft
        queue = self._world.env._queue
        while True:
            for _ in range(len(ready)):
                handle = popleft()
                if handle._cancelled:
                    continue
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # noqa: BLE001 - as asyncio's Handle._run does
                    self.call_exception_handler({"message": f"Exception in callback {handle._callback!r}", "exception": exc, "handle": handle})
            # The next iteration would first take the simulation's events due now and the due
            # timers; with none of either it would only run what is ready, so run it here: the
            # same callbacks in the same order, one trip round run_forever saved.
            if not ready or self._stopping or (queue and queue[0][0] <= now) or (scheduled and scheduled[0]._when < end):
                return
            self._spins += len(ready)
            if self._spins > self.livelock_limit:
                handle = None  # the traceback keeps this frame: let it keep no host's callback
                raise self._livelock()

    def _write_to_self(self) -> None:
        pass

    # -- tasks belong to hosts ------------------------------------------------------------
    def create_task(self, coro: Any, *, name: str | None = None, context: Any = None) -> asyncio.Task[Any]:
        if self._task_factory is not None:
            task = super().create_task(coro, name=name, context=context)
        else:
            task = asyncio.Task(coro, loop=self, name=name, context=context)
        self._world._adopt(task, context)
        return task

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self._world._record_error(context)

    def _deadlock(self) -> Deadlock:
        lines = []
        dead = self._world._dead  # hard-crashed: they wait forever by design
        for task in sorted((t for t in asyncio.all_tasks(self) if t not in dead), key=lambda t: t.get_name()):
            host = self._world._host_of(task)
            stack = task.get_stack(limit=1)
            where = f"{stack[0].f_code.co_filename}:{stack[0].f_lineno} in {stack[0].f_code.co_name}" if stack else "?"
            lines.append(f"  {task.get_name()} on host {host!r}: waiting at {where}")
        return Deadlock(
            f"deadlock at virtual time {self.time():.6f}s: no event is scheduled and these tasks wait forever "
            f"(seed {self._world.seed}):\n" + "\n".join(lines)
        )

    def _livelock(self) -> Livelock:
        from collections import Counter

        var = self._world._host_var

        def name(h: Any) -> str:
            cb = h._callback
            ctx = h._context
            host = ctx.get(var, None) if ctx is not None else None
            on = f" on host {host.name!r}" if host is not None else ""
            owner = getattr(cb, "__self__", None)
            if isinstance(owner, asyncio.Task):
                coro = owner.get_coro()
                stack = owner.get_stack(limit=1)
                code = stack[0].f_code if stack else getattr(coro, "cr_code", None)
                line = stack[0].f_lineno if stack else getattr(code, "co_firstlineno", "?")
                at = f" at {code.co_filename}:{line} in {code.co_name}" if code is not None else ""
                return f"task {owner.get_name()}{on} ({getattr(coro, '__qualname__', '?')}){at}"
            fn = getattr(cb, "__func__", cb)
            code = getattr(fn, "__code__", None)
            at = f" at {code.co_filename}:{code.co_firstlineno}" if code is not None else ""
            return f"{getattr(cb, '__qualname__', repr(cb))}{on}{at}"

        busy = Counter(name(h) for h in list(self._ready)[:5000]).most_common(5)
        lines = "\n".join(f"  {n} x {what}" for what, n in busy)
        return Livelock(
            f"livelock at virtual time {self.time():.6f}s: {self._spins:,} callbacks ran without the clock moving "
            f"(seed {self._world.seed}); the busiest:\n{lines}"
        )

    # -- network ----------------------------------------------------------------------------
    async def create_connection(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str | None = None, port: int | None = None, *, ssl: Any = None, sock: Any = None, **_ignored: Any) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        if ssl:
            raise _RefusedUnsupported.error("tls", "create_connection(ssl=...)")
        if sock is not None:
            raise _RefusedUnsupported.error("sock", "create_connection(sock=...)")
        here = self._world._current_host("create_connection")
        return await self._world.net.connect(here, protocol_factory, host, port)

    async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None, port: int | None = None, *, ssl: Any = None, sock: Any = None, start_serving: bool = True, **_ignored: Any) -> asyncio.AbstractServer:
        if ssl:
            raise _RefusedUnsupported.error("tls", "create_server(ssl=...)")
        if sock is not None:
            raise _RefusedUnsupported.error("sock", "create_server(sock=...)")
        here = self._world._current_host("create_server")
        return self._world.net.listen(here, port, protocol_factory, start_serving)

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> list[Any]:
        here = self._world._current_host("getaddrinfo")
        target = self._world.net.resolve(host, here)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (target.name, port))]

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        return (str(sockaddr[0]), str(sockaddr[1]))

    # -- executor: inline, zero virtual time -------------------------------------------------
    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        fut = self.create_future()
        try:
            fut.set_result(func(*args))
        except BaseException as exc:  # noqa: BLE001 - the future carries it to the awaiter
            fut.set_exception(exc)
        return fut

    def set_default_executor(self, executor: Any) -> None:
        pass

    # -- refused, each with the way out -------------------------------------------------------
    def _refuse(feature: str, what: str) -> Callable[..., Any]:  # type: ignore[misc]
        def refused(self: "SimLoop", *args: Any, **kwargs: Any) -> Any:
            raise _RefusedUnsupported.error(feature, what)

        refused.__name__ = what
        return refused

    add_reader = _refuse("reader", "loop.add_reader()")
    add_writer = _refuse("reader", "loop.add_writer()")
    remove_reader = _refuse("reader", "loop.remove_reader()")
    remove_writer = _refuse("reader", "loop.remove_writer()")
    sock_recv = _refuse("sock", "loop.sock_recv()")
    sock_recv_into = _refuse("sock", "loop.sock_recv_into()")
    sock_sendall = _refuse("sock", "loop.sock_sendall()")
    sock_connect = _refuse("sock", "loop.sock_connect()")
    sock_accept = _refuse("sock", "loop.sock_accept()")
    sock_sendfile = _refuse("sock", "loop.sock_sendfile()")
    connect_accepted_socket = _refuse("sock", "loop.connect_accepted_socket()")
    subprocess_exec = _refuse("subprocess", "loop.subprocess_exec()")
    subprocess_shell = _refuse("subprocess", "loop.subprocess_shell()")
    create_datagram_endpoint = _refuse("datagram", "loop.create_datagram_endpoint()")
    create_unix_connection = _refuse("unix", "loop.create_unix_connection()")
    create_unix_server = _refuse("unix", "loop.create_unix_server()")
    start_tls = _refuse("tls", "loop.start_tls()")
    add_signal_handler = _refuse("signal", "loop.add_signal_handler()")
    del _refuse

    def remove_signal_handler(self, sig: int) -> bool:
        return False
