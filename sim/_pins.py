"""Pin what could differ between two runs of one seed, only while a run is active.

- Wall clock (``time.time``, ``time.time_ns``, ``datetime.now``, ``date.today``, ...):
  time-machine patches them at the C level; our traveller answers with the world's epoch
  plus virtual now, plus the skew of the host the calling code runs on.
- ``random``'s module-level functions, and any ``random.Random()`` made without a seed
  during the run, draw from the run's seed.
- ``os.urandom`` and so ``uuid.uuid4``, ``secrets`` and ``random.SystemRandom`` draw from the
  run's seed.

Not pinned: ``time.monotonic`` and ``time.perf_counter`` (code that measures durations
should use ``loop.time()``, which is virtual), and hash randomisation (set
PYTHONHASHSEED to compare runs across processes; squall's own trace never depends on it).
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import time_machine

if TYPE_CHECKING:
    from sim._world import World


class _VirtualTraveller(time_machine.Traveller):
    def __init__(self, world: "World") -> None:
        super().__init__(world.epoch_ns, None, False)
        self._world = world

    def time_ns(self) -> int:
        # On the hot path (amqtt stamps every packet): skip the host lookup unless some host is skewed.
        world = self._world
        now = world.env._now
        if world._skewed:
            host = world._host_var.get(None)
            if host is not None:
                now += host.clock_offset(now)
        return world.epoch_ns + int(round(now * 1e9))


_PLUMBING = frozenset(m.__file__ for m in (os, random, uuid, secrets) if m.__file__) | {__file__}


def _consumer() -> str:
    """The module that asked for randomness, past the standard library's plumbing."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename in _PLUMBING:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame is not None else "?"


@contextmanager
def pinned(world: "World") -> Iterator[None]:
    # One stream per consuming module: a library that draws once, lazily, the first time it
    # is used in a process (crypt does, at import) must not shift everybody else's draws, or
    # the first run of a seed in a process would differ from the next.
    streams = world.streams
    seeds = streams("pins.random")

    def urandom(n: int) -> bytes:
        return streams(f"pins.urandom:{_consumer()}").randbytes(n)

    original_seed = random.Random.seed

    def seed(self: random.Random, a: object = None, version: int = 2) -> None:
        if a is None:
            a = streams(f"pins.random:{_consumer()}").getrandbits(64)
        original_seed(self, a, version)  # type: ignore[arg-type]

    saved_state = random.getstate()
    saved_urandom, saved_random_urandom = os.urandom, random._urandom  # type: ignore[attr-defined]
    travel = time_machine.travel(world.epoch_ns / 1e9, tick=False)
    travel.start()
    time_machine.traveller_stack[-1] = _VirtualTraveller(world)
    try:
        random.seed(seeds.getrandbits(64))
        random.Random.seed = seed  # type: ignore[method-assign]
        os.urandom = urandom
        random._urandom = urandom  # type: ignore[attr-defined]
        yield
    finally:
        os.urandom = saved_urandom
        random._urandom = saved_random_urandom  # type: ignore[attr-defined]
        random.Random.seed = original_seed  # type: ignore[method-assign]
        random.setstate(saved_state)
        travel.stop()
