"""Periodic calls on the event loop's clock, drift-free (tick n is at start + n * interval)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

_log = logging.getLogger("system.app")

Interval = float | str | Callable[[], float]
"""Seconds, a function giving them, or (in an App) the name of a config field holding them;
read again each time the periodic work (re)starts, e.g. after a config reload."""


def interval_of(interval: Interval) -> float:
    value = interval() if callable(interval) else interval
    if value <= 0:
        raise ValueError(f"a periodic interval must be > 0 seconds, got {value}")
    return float(value)


async def run_periodic(
    interval: Interval,
    tick: Callable[[], Awaitable[Any] | Any],
    *,
    immediate: bool = False,
) -> None:
    """Call ``tick`` every ``interval`` seconds until cancelled. A tick that overruns skips
        the ticks it missed rather than bunching them. Callers contain and report failures
    (devices do); one that slips through is logged and the ticking goes on."""
    loop = asyncio.get_running_loop()
    period = interval_of(interval)
    start = loop.time()
    n = 0 if immediate else 1
    while True:
        delay = start + n * period - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            result = tick()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the last line of defence: periodic work never dies of one tick
            _log.exception(
                "periodic tick %r failed; the next tick runs as planned", tick
            )
        n = max(n + 1, int((loop.time() - start) // period) + 1)
