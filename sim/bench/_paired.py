"""How a ratio is read off a noisy machine: paired rounds, the median of their ratios.

A shared 2-core machine changes speed by a third within seconds. Keeping each side's best
round compares two lucky moments that need not coincide; a ratio taken within one round
compares the two sides under the same conditions, and the median of those ratios ignores
the rounds a neighbour spoiled.
"""

from __future__ import annotations

import statistics
from typing import Sequence


def in_turn(sides: Sequence[str], r: int) -> tuple[str, ...]:
    """The order of the sides in round ``r``: rotated each round, so that no side always goes
    first while the machine speeds up or slows down."""
    k = r % len(sides)
    return tuple(sides[k:]) + tuple(sides[:k])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median over rounds of numerator / denominator, to three places."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError("paired rounds need as many numerators as denominators, and at least one")
    return round(median([n / d for n, d in zip(numerators, denominators, strict=True)]), 3)
