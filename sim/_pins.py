"""Pin what could differ between two runs of one seed, only while a run is active.

- Wall clock (``time.time``, ``time.time_ns``, ``datetime.now``, ``date.today``, ...):
  time-machine patches them at the C level; our traveller answers with the world's epoch
  plus virtual now, plus the skew of the host the calling code runs on.
- ``random``'s module-level functions, and any ``random.Random()`` made without a seed
  during the run, draw from the run's seed.
- ``os.urandom`` and so ``uuid.uuid4``, ``secrets`` and ``random.SystemRandom`` draw from the
  run's seed.

- ``time.monotonic``, ``time.perf_counter`` and their ``_ns`` variants: virtual time (plus a
  fixed uptime), for code on the run's thread; other threads (a progress bar's) read the
  real clocks. References taken at import (paho's ``time_func = time.monotonic``) are
  swapped too, in every module outside the standard library and squall itself.
- The ``socket`` module, for code on a simulated host (`sim._sockets`).

Not pinned: hash randomisation (set PYTHONHASHSEED to compare runs across processes;
squall's own trace never depends on it).
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import time_machine

from sim._sockets import patched as sockets_patched

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


UPTIME = 1000.0  # what the virtual monotonic clock reads at virtual time 0
_CLOCKS = {name: getattr(time, name) for name in ("monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns")}
_REAL = {id(fn): name for name, fn in _CLOCKS.items()}
wall_clock = _CLOCKS["perf_counter"]  # the real perf_counter, for code that times a run from inside it
_SKIP = frozenset(sys.stdlib_module_names) | {"sim", "squall", "chaos", "_pytest", "pytest", "pluggy", "rich", "tqdm", "typer", "click", "time_machine"}
_captured: list[tuple[dict, str, str]] = []  # (module dict, attribute, clock name) bound at import
_scanned: set[str] = set()
_modules_seen = 0


def _find_captured(virtual: dict[int, str]) -> list[tuple[dict, str, str]]:
    """Module globals bound to a clock function, real or this run's virtual one (a module
    imported during the run binds the virtual one); modules not seen before only (cheap)."""
    global _modules_seen
    if len(sys.modules) == _modules_seen:
        return _captured  # no module imported since the last look
    _modules_seen = len(sys.modules)
    for name, module in list(sys.modules.items()):
        if name in _scanned:
            continue
        _scanned.add(name)
        if name.partition(".")[0] in _SKIP or module is None:
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            clock = _REAL.get(id(value)) if value is _CLOCKS.get(_REAL.get(id(value), ""), None) else virtual.get(id(value))
            if clock is not None:
                _captured.append((namespace, attr, clock))
    return _captured


def _virtual_clocks(world: "World") -> dict[str, object]:
    env = world.env
    owner = threading.get_ident()
    get_ident = threading.get_ident
    real_mono, real_mono_ns = _CLOCKS["monotonic"], _CLOCKS["monotonic_ns"]
    real_perf, real_perf_ns = _CLOCKS["perf_counter"], _CLOCKS["perf_counter_ns"]

    def monotonic() -> float:
        return env._now + UPTIME if get_ident() == owner else real_mono()

    def monotonic_ns() -> int:
        return int(round((env._now + UPTIME) * 1e9)) if get_ident() == owner else real_mono_ns()

    def perf_counter() -> float:
        return env._now + UPTIME if get_ident() == owner else real_perf()

    def perf_counter_ns() -> int:
        return int(round((env._now + UPTIME) * 1e9)) if get_ident() == owner else real_perf_ns()

    return {"monotonic": monotonic, "monotonic_ns": monotonic_ns, "perf_counter": perf_counter, "perf_counter_ns": perf_counter_ns}


@contextmanager
def _clocks_pinned(world: "World") -> Iterator[None]:
    virtual = _virtual_clocks(world)
    by_id = {id(fn): name for name, fn in virtual.items()}
    for name, fn in virtual.items():
        setattr(time, name, fn)
    for namespace, attr, clock in _find_captured(by_id):
        if namespace.get(attr) is _CLOCKS[clock]:
            namespace[attr] = virtual[clock]
    try:
        yield
    finally:
        for name, fn in _CLOCKS.items():
            setattr(time, name, fn)
        for namespace, attr, clock in _find_captured(by_id):
            if namespace.get(attr) is virtual[clock]:
                namespace[attr] = _CLOCKS[clock]


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
        with _clocks_pinned(world), sockets_patched(world):
            yield
    finally:
        os.urandom = saved_urandom
        random._urandom = saved_random_urandom  # type: ignore[attr-defined]
        random.Random.seed = original_seed  # type: ignore[method-assign]
        random.setstate(saved_state)
        travel.stop()
