"""Bounded two-band queues with per-topic-pattern overflow policies.

``FlowQueue`` is pure (no I/O, no clock): ``offer`` says what happened, ``pop`` returns the
next item, control band first. ``AsyncFlowQueue`` adds waiting for the ``block`` policy.

Policies act only when the item's band is full:

- ``block``: the offer waits until there is room; nothing is lost (backpressure).
- ``drop``: the new item is discarded (reason ``overflow``).
- ``latest``: keep the newest. The oldest pending item on the same topic is evicted, or
  failing that the oldest pending item under the same pattern (reason ``superseded``); if
  the band holds nothing of that pattern, the new item is discarded (``overflow``).
- ``coalesce(merge)``: the newest pending item on the same topic is replaced in place by
  ``merge(pending, new)`` (reason ``coalesced`` for the pending one), so order by topic
  holds; with no pending item on that topic it waits like ``block``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from system.bus._topics import matches, validate_filter

T = TypeVar("T")
Mode = Literal["block", "drop", "latest", "coalesce"]


@dataclass(frozen=True)
class OverflowPolicy:
    """What to do with a message when its queue is full. Build with the class methods."""

    mode: Mode
    merge: Callable[[Any, Any], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("block", "drop", "latest", "coalesce"):
            raise ValueError(f"unknown overflow policy {self.mode!r}; use block, drop, latest or coalesce")
        if (self.mode == "coalesce") != (self.merge is not None):
            raise ValueError("a merge function goes with 'coalesce' and only with it: OverflowPolicy.coalesce(fn)")

    @classmethod
    def block(cls) -> OverflowPolicy:
        return cls("block")

    @classmethod
    def drop(cls) -> OverflowPolicy:
        return cls("drop")

    @classmethod
    def latest(cls) -> OverflowPolicy:
        return cls("latest")

    @classmethod
    def coalesce(cls, merge: Callable[[Any, Any], Any]) -> OverflowPolicy:
        """``merge(pending, new)`` returns the item that replaces ``pending``."""
        return cls("coalesce", merge)


BANDS = ("control", "data")
"""Band names by band number (``FlowQueue`` pops band 0 first)."""


@dataclass(frozen=True)
class Evicted(Generic[T]):
    """An item the queue discarded: ``band`` and ``policy`` say where and why; ``replaced_by``
    is the item that took its place (``superseded``: the newer item; ``coalesced``: the merge)."""

    topic: str
    value: T
    reason: Literal["overflow", "superseded", "coalesced"]
    band: str = "data"
    policy: Mode = "block"
    replaced_by: T | None = None


@dataclass(frozen=True)
class Offer(Generic[T]):
    """Outcome of ``FlowQueue.offer``: ``accepted`` (queued or merged), or ``wait`` (block: retry
    when there is room), and the items that were discarded to make it so."""

    accepted: bool
    wait: bool = False
    evicted: tuple[Evicted[T], ...] = ()


@dataclass
class _Entry(Generic[T]):
    topic: str
    value: T
    rule: int


class FlowQueue(Generic[T]):
    """Two bounded FIFO bands; ``pop`` always empties the control band first.

    ``policies`` is a sequence of ``(topic filter, OverflowPolicy)``; the first matching
    filter wins, else ``default``. ``control`` lists filters whose items go in the control
    band (an ``offer(control=...)`` argument overrides). ``merge`` adapts a coalesce policy's
    function to the queued values (default: call it on the values themselves).
    """

    def __init__(
        self,
        capacity: int,
        *,
        control_capacity: int | None = None,
        policies: Sequence[tuple[str, OverflowPolicy]] = (),
        default: OverflowPolicy | None = None,
        control: Iterable[str] = (),
        merge: Callable[[OverflowPolicy, T, T], T] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.control_capacity = control_capacity if control_capacity is not None else capacity
        if self.control_capacity < 1:
            raise ValueError(f"control band capacity must be at least 1, got {self.control_capacity}")
        self._rules = [(validate_filter(p), pol) for p, pol in policies]
        self._default = default or OverflowPolicy.block()
        self._control = [validate_filter(p) for p in control]
        self._merge = merge or (lambda policy, old, new: policy.merge(old, new))  # type: ignore[misc]
        self._bands: tuple[deque[_Entry[T]], deque[_Entry[T]]] = (deque(), deque())
        # topic -> (control?, rule, policy): every message asks, and topics repeat.
        self._classes: dict[str, tuple[bool, int, OverflowPolicy]] = {}

    def policy_for(self, topic: str) -> tuple[int, OverflowPolicy]:
        _, rule, policy = self._classify(topic)
        return rule, policy

    def is_control(self, topic: str) -> bool:
        return self._classify(topic)[0]

    def band_of(self, topic: str, control: bool | None = None) -> str:
        """``control`` or ``data``: where an offer of ``topic`` goes."""
        return BANDS[0 if (self._classify(topic)[0] if control is None else control) else 1]

    def _classify(self, topic: str) -> tuple[bool, int, OverflowPolicy]:
        found = self._classes.get(topic)
        if found is None:
            rule, policy = next(((i, pol) for i, (pat, pol) in enumerate(self._rules) if matches(pat, topic)), (-1, self._default))
            found = (any(matches(p, topic) for p in self._control), rule, policy)
            if len(self._classes) >= 4096:  # topics may be unbounded (per-request replies)
                self._classes.clear()
            self._classes[topic] = found
        return found

    def offer(self, topic: str, value: T, *, control: bool | None = None) -> Offer[T]:
        is_control, rule, policy = self._classify(topic)
        band_no = 0 if (is_control if control is None else control) else 1
        band = self._bands[band_no]
        entry = _Entry(topic, value, rule)
        if len(band) < (self.control_capacity if band_no == 0 else self.capacity):
            band.append(entry)
            return Offer(True)
        mode, where = policy.mode, BANDS[band_no]
        if mode == "block":
            return Offer(False, wait=True)
        if mode == "drop":
            return Offer(False, evicted=(Evicted(topic, value, "overflow", where, mode),))
        if mode == "latest":
            victim = self._oldest(band, lambda e: e.topic == topic) or self._oldest(band, lambda e: e.rule == rule)
            if victim is None:
                return Offer(False, evicted=(Evicted(topic, value, "overflow", where, mode),))
            band.remove(victim)
            band.append(entry)
            return Offer(True, evicted=(Evicted(victim.topic, victim.value, "superseded", where, mode, value),))
        pending = next((e for e in reversed(band) if e.topic == topic), None)
        if pending is None:
            return Offer(False, wait=True)
        old = pending.value
        pending.value = self._merge(policy, old, value)
        return Offer(True, evicted=(Evicted(topic, old, "coalesced", where, mode, pending.value),))

    def pop(self) -> tuple[str, T] | None:
        for band in self._bands:
            if band:
                entry = band.popleft()
                return entry.topic, entry.value
        return None

    def push_front(self, topic: str, value: T, *, control: bool | None = None) -> None:
        """Put back an item that was popped but not handled (e.g. the connection dropped);
        it goes first in its band, even past capacity, because it was already admitted."""
        band_no = 0 if (self.is_control(topic) if control is None else control) else 1
        self._bands[band_no].appendleft(_Entry(topic, value, self.policy_for(topic)[0]))

    def drain(self) -> list[tuple[str, T]]:
        """Remove and return everything, control band first."""
        items = [(e.topic, e.value) for band in self._bands for e in band]
        for band in self._bands:
            band.clear()
        return items

    def depth(self) -> tuple[int, int]:
        """(control, data) items pending."""
        return len(self._bands[0]), len(self._bands[1])

    def __len__(self) -> int:
        return len(self._bands[0]) + len(self._bands[1])

    @staticmethod
    def _oldest(band: deque[_Entry[T]], pred: Callable[[_Entry[T]], bool]) -> _Entry[T] | None:
        return next((e for e in band if pred(e)), None)


class Pulse:
    """Wakes every waiter on ``fire()``; unlike ``asyncio.Condition`` it can fire from sync code."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        """Until the next ``fire()``."""
        await self._event.wait()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()


class AsyncFlowQueue(Generic[T]):
    """``FlowQueue`` for tasks: ``put`` waits under ``block``, ``get`` waits for an item.

    ``on_evict`` is called for every discarded item (the bus reports them as drops).
    """

    def __init__(self, queue: FlowQueue[T], on_evict: Callable[[Evicted[T]], None]) -> None:
        self.queue = queue
        self._on_evict = on_evict
        self._changed = Pulse()
        self._closed: Exception | None = None

    def close(self, error: Exception) -> None:
        """From now on ``put`` raises ``error``, including puts already waiting for room."""
        self._closed = error
        self._changed.fire()

    async def put(self, topic: str, value: T, *, control: bool | None = None) -> bool:
        """Queue ``value``; True if it (or a merge of it) is queued, False if it was discarded."""
        while True:
            if self._closed is not None:
                raise self._closed
            result = self.put_nowait(topic, value, control=control)
            if result is not None:
                return result
            await self._changed.wait()

    def put_nowait(self, topic: str, value: T, *, control: bool | None = None) -> bool | None:
        """Like ``put`` but returns None instead of waiting when the policy says ``block``."""
        result = self.queue.offer(topic, value, control=control)
        for ev in result.evicted:
            self._on_evict(ev)
        if result.wait:
            return None
        self._changed.fire()
        return result.accepted

    async def get(self) -> tuple[str, T]:
        while (item := self.queue.pop()) is None:
            await self._changed.wait()
        self._changed.fire()
        return item

    def push_front(self, topic: str, value: T, *, control: bool | None = None) -> None:
        self.queue.push_front(topic, value, control=control)
        self._changed.fire()

    def __len__(self) -> int:
        return len(self.queue)
