"""Receive-side dedup: remembers envelope ids for ``ttl`` seconds, at most ``max_size`` of them."""

from __future__ import annotations

from collections import OrderedDict


class Deduplicator:
    """``seen(id, now)`` is True when ``id`` was offered within the last ``ttl`` (loop) seconds.

    Memory is bounded: beyond ``max_size`` ids the oldest are forgotten first, so a duplicate
    arriving later than that is let through (at-least-once, never unbounded growth).
    """

    def __init__(self, ttl: float = 300.0, max_size: int = 100_000) -> None:
        if ttl <= 0 or max_size <= 0:
            raise ValueError(f"dedup needs ttl > 0 and max_size > 0, got ttl={ttl}, max_size={max_size}")
        self.ttl = ttl
        self.max_size = max_size
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str, now: float) -> bool:
        self._expire(now)
        if key in self._expiry:
            return True
        self._expiry[key] = now + self.ttl
        if len(self._expiry) > self.max_size:
            self._expiry.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._expiry)

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order because ttl is fixed and the clock only moves forward.
        while self._expiry:
            key, deadline = next(iter(self._expiry.items()))
            if deadline > now:
                break
            del self._expiry[key]
