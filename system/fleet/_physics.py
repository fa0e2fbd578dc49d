"""The simulated rooms: temperature drifts towards the outside and a heater warms it.

Newton's law of cooling, solved exactly between events, so the temperature at a time does
not depend on how often anyone looked: ``T' = (target - T) / tau`` with ``target`` the
heater's equilibrium when on and the outside when off. Time is the event loop's clock.
"""

from __future__ import annotations

import asyncio
import math


class Room:
    """One room's true temperature, shared by its sensors (who read it) and its heater (who warms it)."""

    def __init__(
        self,
        name: str,
        *,
        initial: float,
        outside: float,
        heated: float = 30.0,
        tau: float = 1800.0,
    ) -> None:
        self.name = name
        self.outside = outside
        self.heated = heated
        self.tau = tau
        self.heater = False
        self._temperature = initial
        self._at: float | None = None

    def temperature(self) -> float:
        self._advance()
        return self._temperature

    def set_heater(self, on: bool) -> None:
        self._advance()
        self.heater = on

    def _advance(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._at is not None and now > self._at:
            target = self.heated if self.heater else self.outside
            self._temperature = target + (self._temperature - target) * math.exp(
                -(now - self._at) / self.tau
            )
        self._at = now if self._at is None else max(self._at, now)
