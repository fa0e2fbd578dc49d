"""What each toxic does to one direction of one live connection.

A stage is one toxic's runtime on one pipe. The pipe hands chunks to its stages one at a
time, in the order the toxics were added; a stage passes what it lets through on with
``emit`` and may hold it first. The arithmetic (how long, how to cut) comes from the
shared model in ``sim.faults.toxics``, so a toxic means the same here and in the simulation.

Chunks carry the time they were read. Latency waits until ``read time + delay`` rather than
``now + delay``, so chunks queued behind one another are delayed once each, not cumulatively,
as in Toxiproxy's concurrent pipeline.

Every wait is interruptible: updating or removing a toxic wakes the stage, which then lets
the chunk it holds through at once. Nothing on the API side ever waits for a stage, so
removing a toxic under load cannot hang.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Awaitable, Callable, Optional

from sim.faults.toxics import (
    BandwidthAttrs,
    LatencyAttrs,
    LimitDataAttrs,
    ResetPeerAttrs,
    SlicerAttrs,
    SlowCloseAttrs,
    TimeoutAttrs,
    Toxic,
)

if TYPE_CHECKING:
    from chaos.proxy._link import Pipe

# A chunk of bytes, or None for end of stream, and the loop time it was read.
Emit = Callable[[Optional[bytes], float], Awaitable[None]]


def _wake(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class Stage:
    """One toxic on one pipe. Subclasses override ``handle`` and, if they keep timers, the hooks."""

    def __init__(self, toxic: Toxic, pipe: "Pipe", rng: random.Random) -> None:
        self.toxic = toxic
        self.pipe = pipe
        self.rng = rng
        self.removed = False
        self.active = toxic.applies(rng)
        self._waiting: asyncio.Future[bool] | None = None

    @property
    def name(self) -> str:
        return self.toxic.name

    # -- lifecycle, driven by the proxy when the API changes the toxic ---------------------

    def started(self) -> None:
        """The stage joined a live pipe (a new connection, or a toxic added to an open one)."""

    def update(self, toxic: Toxic) -> None:
        self.toxic = toxic
        self.active = toxic.applies(self.rng)
        self._interrupt()
        self.started()

    def remove(self) -> None:
        was_active = self.active
        self.removed = True
        self.active = False
        self._interrupt()
        self.stopped(was_active)

    def stopped(self, was_active: bool) -> None:
        """The toxic was removed from a live connection: clean up."""

    def detach(self) -> None:
        """The connection closed: stop waiting and cancel timers, without side effects."""
        self.removed = True
        self.active = False
        self._interrupt()

    # -- data --------------------------------------------------------------------------------

    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        await emit(data, read_at)

    async def _sleep(self, seconds: float) -> bool:
        """Wait; False when an update or removal cut the wait short."""
        if seconds <= 0:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(seconds, _wake, fut, True) if seconds != float("inf") else None
        self._waiting = fut
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._waiting = None

    def _interrupt(self) -> None:
        if self._waiting is not None:
            _wake(self._waiting, False)


class Noop(Stage):
    pass


class Latency(Stage):
    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        if data is None:
            await emit(None, read_at)
            return
        attrs: LatencyAttrs = self.toxic.attributes
        due = read_at + attrs.delay(self.rng)
        now = asyncio.get_running_loop().time()
        if due > now and not await self._sleep(due - now):
            due = asyncio.get_running_loop().time()
        await emit(data, max(due, read_at))


class Bandwidth(Stage):
    """The link is busy for ``seconds_for(n)`` per chunk; a chunk leaves once it has been sent."""

    def __init__(self, toxic: Toxic, pipe: "Pipe", rng: random.Random) -> None:
        super().__init__(toxic, pipe, rng)
        self._free_at = 0.0

    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        attrs: BandwidthAttrs = self.toxic.attributes
        if data is None:
            await emit(data, read_at)
            return
        if attrs.stopped:
            # Toxiproxy at rate 0: the chunk waits until the toxic is updated or removed.
            await self._sleep(float("inf"))
            await emit(data, read_at)
            return
        loop = asyncio.get_running_loop()
        # Cut big chunks into 100 ms worth of bytes so a slow link trickles instead of bursting.
        piece = max(attrs.rate * 100, 1)
        for start in range(0, len(data), piece):
            part = data[start : start + piece]
            self._free_at = max(self._free_at, loop.time()) + attrs.seconds_for(len(part))
            if not await self._sleep(self._free_at - loop.time()):
                self._free_at = loop.time()
                await emit(data[start:], read_at)
                return
            await emit(part, read_at)


class SlowClose(Stage):
    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        if data is None:
            attrs: SlowCloseAttrs = self.toxic.attributes
            await self._sleep(attrs.delay / 1000.0)
        await emit(data, read_at)


class Timeout(Stage):
    """Swallows data; closes the connection after ``timeout`` ms without data (never when <= 0).

    Each chunk that reaches the toxic restarts the clock, as Toxiproxy's does: a client that
    keeps talking into a timeout toxic is never cut off, one that falls silent is.

    As in Toxiproxy, removing the toxic closes the connections it acted on: the bytes it
    dropped are gone, so the stream cannot continue meaningfully.
    """

    def __init__(self, toxic: Toxic, pipe: "Pipe", rng: random.Random) -> None:
        super().__init__(toxic, pipe, rng)
        self._timer: asyncio.TimerHandle | None = None

    def started(self) -> None:
        self._cancel_timer()
        attrs: TimeoutAttrs = self.toxic.attributes
        if self.active and attrs.timeout > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(attrs.timeout / 1000.0, self.pipe.close_connection)

    def stopped(self, was_active: bool) -> None:
        self._cancel_timer()
        if was_active:
            self.pipe.close_connection()

    def detach(self) -> None:
        super().detach()
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        if data is None:
            await emit(None, read_at)
            return
        if self._timer is not None:
            self.started()  # data restarts the clock, and is dropped on the floor


class ResetPeer(Stage):
    """The first chunk (or end of stream) starts a ``timeout`` ms fuse; then both ends get a RST."""

    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        attrs: ResetPeerAttrs = self.toxic.attributes
        await self._sleep(attrs.timeout / 1000.0)
        if not self.removed:
            self.pipe.reset_connection()
            return
        await emit(data, read_at)


class Slicer(Stage):
    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        if data is None:
            await emit(None, read_at)
            return
        attrs: SlicerAttrs = self.toxic.attributes
        slices = attrs.slices(data, self.rng)
        sent = 0
        for i, piece in enumerate(slices):
            await emit(piece, read_at)
            sent += len(piece)
            if i + 1 < len(slices) and not await self._sleep(attrs.delay / 1_000_000.0):
                await emit(data[sent:], read_at)
                return


class LimitData(Stage):
    """Forwards ``bytes`` bytes in total on this direction, then closes the connection."""

    def __init__(self, toxic: Toxic, pipe: "Pipe", rng: random.Random) -> None:
        super().__init__(toxic, pipe, rng)
        self.transmitted = 0

    async def handle(self, data: bytes | None, read_at: float, emit: Emit) -> None:
        if data is None:
            await emit(None, read_at)
            return
        attrs: LimitDataAttrs = self.toxic.attributes
        remaining = max(attrs.bytes - self.transmitted, 0)
        part = data[:remaining]
        if part:
            self.transmitted += len(part)
            await emit(part, read_at)
        if self.transmitted >= attrs.bytes:
            await emit(None, read_at)


STAGES: dict[str, type[Stage]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
    "noop": Noop,
}


def stage_for(toxic: Toxic, pipe: "Pipe", rng: random.Random) -> Stage:
    return STAGES[toxic.type](toxic, pipe, rng)
