"""Retry with capped exponential backoff and full jitter, on the event loop's clock."""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Backoff:
    """Delay before retry ``n`` (1-based) is uniform in ``[0, min(maximum, initial * 2**(n-1))]``;
    without jitter it is the ceiling itself. ``rng`` is injectable so a simulation replays."""

    initial: float = 0.1
    maximum: float = 10.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum, got initial={self.initial}, maximum={self.maximum}"
            )

    def ceiling(self, attempt: int) -> float:
        return min(self.maximum, self.initial * 2 ** min(max(attempt - 1, 0), 62))

    def delay(self, attempt: int) -> float:
        top = self.ceiling(attempt)
        return self.rng.uniform(0, top) if self.jitter else top


async def retry(
    fn: Callable[[], Awaitable[T] | T],
    *,
    attempts: int = 3,
    backoff: Backoff | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, at most ``attempts`` times, sleeping a backoff delay
    between tries. Only the last failure propagates; ``on_retry(attempt, exc, delay)`` sees
    the others (for logging), so a flaky read that works on the second try is no error."""
    if attempts < 1:
        raise ValueError(f"retry needs attempts >= 1, got {attempts}")
    backoff = backoff or Backoff()
    for attempt in range(1, attempts + 1):
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
            return result  # type: ignore[return-value]
        except retry_on as exc:
            if attempt == attempts:
                raise
            delay = backoff.delay(attempt)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def retrying(
    *,
    attempts: int = 3,
    backoff: Backoff | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorator form of ``retry`` for an async function."""

    def wrap(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await retry(
                lambda: fn(*args, **kwargs),
                attempts=attempts,
                backoff=backoff,
                retry_on=retry_on,
            )

        return wrapper

    return wrap
