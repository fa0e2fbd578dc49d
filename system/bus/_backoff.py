"""Reconnect delays: capped exponential backoff with full jitter (pure, seeded)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before attempt ``n`` (1-based) is uniform in ``[0, min(maximum, initial * 2**(n-1))]``.

    Full jitter spreads a crowd of clients that lost the same broker; ``rng`` is injectable
    so a simulation replays the same delays.
    """

    initial: float = 0.1
    maximum: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum, got initial={self.initial}, maximum={self.maximum}"
            )

    def ceiling(self, attempt: int) -> float:
        # Cap the exponent so huge attempt counts cannot overflow a float.
        return min(self.maximum, self.initial * 2 ** min(max(attempt - 1, 0), 62))

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, self.ceiling(attempt))
