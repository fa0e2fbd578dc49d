"""A hard crash: a host's code stops where it stands, as a SIGKILL stops a process.

`World.crash(host)` (graceful) cancels the host's tasks, so ``finally:`` blocks, ``except
CancelledError`` and ``async with`` exits still run and may write state. `drop(world, host)`
runs none of it: every callback the host had scheduled is cancelled and every task is
detached from the future it waits on, so nothing of it is ever stepped again. The tasks are
held by the world until the run ends (`bury`), so the garbage collector cannot close them at
a moment that depends on memory rather than on the seed.

Disk: what the host committed is on disk; its open sqlite connections are closed without a
commit (sqlite rolls back what was not committed, as it does when the process dies), so the
restarted host reads exactly what a real one would. Unflushed Python file buffers stay in
the dead host's memory, never reaching the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from sim._world import Host, World


class _TrackedConnection(sqlite3.Connection):
    """A sqlite connection a crash can find (the base class takes no weak references)."""


def drop(world: "World", host: "Host") -> list[asyncio.Task[Any]]:
    """Stop everything ``host`` runs without running any more of its code; returns its tasks."""
    var = world._host_var
    loop = world.loop
    tasks = host.tasks
    for handle in [*loop._ready, *loop._scheduled]:
        ctx = handle._context
        if not handle._cancelled and ctx is not None and ctx.get(var) is host:
            handle.cancel()
    for task in tasks:
        waiter = task._fut_waiter  # type: ignore[attr-defined]
        if waiter is not None:
            for callback, _ctx in list(waiter._callbacks or ()):
                if getattr(callback, "__self__", None) is task:
                    waiter.remove_done_callback(callback)
        task._log_destroy_pending = False  # type: ignore[attr-defined]
    for conn in world._sqlite.pop(host.name, {}):
        with contextlib.suppress(sqlite3.Error):
            conn.close()  # uncommitted work is rolled back, as when the process dies
    host._tasks = []
    return tasks


def bury(tasks: list[asyncio.Task[Any]]) -> None:
    """Reclaim dead tasks once the run is over (the loop closed, the history sealed).

    Closing a coroutine runs its ``finally:`` blocks; here they find the loop closed and the
    history deaf, so nothing they do reaches the run. What they leave half-done (a coroutine
    never awaited, a write to a closed loop) is the dead host's, not the user's to hear of.
    """
    if not tasks:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for task in tasks:
            coro = task.get_coro()
            with contextlib.suppress(BaseException):
                coro.close()  # type: ignore[union-attr]
        del task, coro
        gc.collect(0)


@contextlib.contextmanager
def tracked_sqlite(world: "World") -> Iterator[None]:
    """While a run is active, remember which host opened each sqlite connection."""
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        host = world._host_var.get(None)
        if host is None or "factory" in kwargs or len(args) > 5:
            return real(*args, **kwargs)
        conn = real(*args, factory=_TrackedConnection, **kwargs)
        world._sqlite.setdefault(host.name, weakref.WeakSet()).add(conn)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = real  # type: ignore[assignment]
