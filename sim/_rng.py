"""Seeded randomness in independent streams, one per purpose.

A stream is keyed by a purpose string, so adding a host or a link draws from new streams
and leaves every existing stream's sequence untouched.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, purpose: str) -> int:
    digest = hashlib.sha256(f"{seed}\x00{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Streams:
    """A family of ``random.Random`` streams derived from one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def __call__(self, purpose: str) -> random.Random:
        rng = self._streams.get(purpose)
        if rng is None:
            rng = self._streams[purpose] = random.Random(derive_seed(self.seed, purpose))
        return rng
