"""Toxics acting on one direction of one simulated connection, in virtual time.

Each active toxic transforms the segments passing through it: a list of (arrival time,
segment) in, a list out. The arithmetic (how long, how big) comes from the shared toxic
model in `sim.faults.toxics`, so a toxic means the same here as in the chaos proxy; this
module only decides when things happen on the virtual clock, which makes the results
exact instead of tolerance-based.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable

from sim.faults.toxics import Toxic

if TYPE_CHECKING:
    from sim._network import _Pipe, _Segment

_DATA, _EOF, _RST = 0, 1, 2
Items = list[tuple[float, "_Segment"]]


class ToxicState:
    """One toxic attached to one pipe; ``active`` is the toxicity draw for this pipe."""

    def __init__(self, toxic: Toxic, pipe: "_Pipe", active: bool, sever: Callable[[str, str], None]) -> None:
        self.toxic = toxic
        self.pipe = pipe
        self.active = active
        self._sever = sever  # (how: "fin"|"rst", why) -> close the whole connection
        self._last = 0.0
        self._bytes = 0
        self._armed = False
        self._removed = False
        self._heard: list[float] = []  # timeout: arrival times of data not yet seen by the clock
        self._clock = False  # timeout: a check of the clock is scheduled
        self.parked: Items = []  # bandwidth at rate 0: what it holds until updated or removed
        if active:
            self._start()

    @property
    def name(self) -> str:
        return self.toxic.name

    # -- lifecycle ------------------------------------------------------------------------
    def _start(self) -> None:
        t = self.toxic
        world = self.pipe.world
        if t.type == "timeout" and t.attributes.timeout > 0:
            self._clock = True
            world.after(t.attributes.timeout / 1000.0, self._timeout_due, world.env._now)

    def _timeout_due(self, since: float) -> None:
        """The clock ran out unless data arrived meanwhile: then it restarts from the last arrival."""
        now = self.pipe.world.env._now
        heard = [t for t in self._heard if t <= now]
        self._heard = [t for t in self._heard if t > now]
        last = max(heard, default=since)
        if self.toxic.attributes.timeout <= 0:  # updated to "never"
            self._clock = False
            return
        due = last + self.toxic.attributes.timeout / 1000.0
        if due > now:
            self.pipe.world.after(due - now, self._timeout_due, last)
        else:
            self._fire("fin", f"timeout toxic {self.toxic.name}")

    def _fire(self, how: str, why: str) -> None:
        if not self._removed and self.active:
            self._sever(how, why)

    def update(self, toxic: Toxic) -> None:
        self.toxic = toxic
        if toxic.type == "timeout" and self.active:  # Toxiproxy restarts an updated toxic, and its clock
            if self._clock:
                self._heard.append(self.pipe.world.env._now)
            else:
                self._start()

    def take_parked(self) -> Items:
        """What a stopped bandwidth toxic held; it goes on when the toxic is updated or removed."""
        parked, self.parked = self.parked, []
        return parked

    def remove(self) -> None:
        self._removed = True
        if self.active and self.toxic.type == "timeout":
            # Toxiproxy closes a connection whose data the timeout toxic swallowed.
            self._sever("fin", f"timeout toxic {self.toxic.name} removed")

    # -- the transformation ------------------------------------------------------------------
    def apply(self, items: Items, rng: random.Random) -> Items:
        if not self.active:
            return items
        kind = self.toxic.type
        attrs: Any = self.toxic.attributes
        out: Items = []
        for t, seg in items:
            if kind == "latency":
                t = max(t + attrs.delay(rng), self._last)
                self._last = t
                out.append((t, seg))
            elif kind == "bandwidth":
                if attrs.stopped and (seg.kind == _DATA or self.parked):
                    self.parked.append((t, seg))  # Toxiproxy at rate 0: nothing passes
                    continue
                elif seg.kind == _DATA:
                    t = max(t, self._last) + attrs.seconds_for(len(seg.data))
                    self._last = t
                else:
                    t = max(t, self._last)
                out.append((t, seg))
            elif kind == "slow_close":
                if seg.kind == _EOF:
                    t = t + attrs.delay / 1000.0
                out.append((t, seg))
            elif kind == "timeout":
                if seg.kind == _DATA:  # swallowed, but heard: it restarts the clock
                    self._heard.append(t)
                else:
                    out.append((t, seg))
            elif kind == "reset_peer":
                if not self._armed and seg.kind in (_DATA, _EOF):
                    self._armed = True
                    self.pipe.world.after(max(t - self.pipe.world.env._now, 0.0) + attrs.timeout / 1000.0, self._fire, "rst", f"reset_peer toxic {self.toxic.name}")
                out.append((t, seg))
            elif kind == "slicer":
                if seg.kind == _DATA and len(seg.data) > 1 and attrs.average_size > 0:
                    gap = attrs.delay / 1e6
                    for i, piece in enumerate(attrs.slices(bytes(seg.data), rng)):
                        out.append((t + i * gap, seg.clone(bytearray(piece))))
                else:
                    out.append((t, seg))
            elif kind == "limit_data":
                if seg.kind == _DATA:
                    room = attrs.bytes - self._bytes
                    if room <= 0:
                        continue
                    data = seg.data if len(seg.data) <= room else seg.data[:room]
                    self._bytes += len(data)
                    out.append((t, seg.clone(bytearray(data))))
                    if self._bytes >= attrs.bytes:
                        self.pipe.world.after(max(t - self.pipe.world.env._now, 0.0), self._fire, "fin", f"limit_data toxic {self.toxic.name}")
                else:
                    out.append((t, seg))
            else:  # noop
                out.append((t, seg))
        return out
