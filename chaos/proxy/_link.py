"""One proxied connection: a client socket, an upstream socket, and a pipe each way.

Without toxics on a direction, bytes go straight from one transport to the other inside
``data_received`` (no task, no copy), which keeps the proxy cheap next to what it carries.
With toxics, a pipe queues chunks with their read time and one task per pipe walks each
chunk through the stages in the order the toxics were added. Back-pressure holds both
ways: a pipe stops reading its source while its destination's buffer is full or while
too much is queued.

Closing follows Toxiproxy: the end of one direction's stream closes the other socket
(after what is in flight is delivered), and that end then closes the first socket, so a
half-close becomes a close of the whole connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Iterable

from chaos.proxy._stages import Stage, stage_for
from sim.faults.toxics import Toxic

if TYPE_CHECKING:
    from chaos.proxy._proxy import Proxy

log = logging.getLogger(__name__)

# Bytes queued in one pipe before it stops reading its source; it reads again below a quarter.
HIGH_WATER = 256 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)


class Pipe:
    """One direction of one connection: bytes read from ``src`` go through the stages to ``dst``."""

    def __init__(self, link: "Link", direction: str, counts: list[int]) -> None:
        self.link = link
        self.direction = direction
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.stages: list[Stage] = []
        self.done = False  # end of stream delivered, or the connection torn down
        self._counts = counts  # [received, sent], shared by every pipe of this proxy and direction
        self._inbox: deque[tuple[bytes | None, float]] = deque()
        self._queued = 0
        self._task: asyncio.Task[None] | None = None
        self._eof = False
        self._dst_paused = False
        self._reading = True

    # -- input, from the source socket's protocol -------------------------------------------

    def feed(self, data: bytes) -> None:
        self._counts[0] += len(data)
        if self.done:
            return
        if self._task is None and not self.stages:
            self._counts[1] += len(data)
            self.dst.write(data)  # type: ignore[union-attr]
            return
        self._inbox.append((data, self.link.loop.time()))
        self._queued += len(data)
        if self._queued > HIGH_WATER:
            self._update_reading()
        self._kick()

    def feed_eof(self) -> None:
        if self._eof or self.done:
            return
        self._eof = True
        if self._task is None and not self.stages:
            self._finish()
            return
        self._inbox.append((None, self.link.loop.time()))
        self._kick()

    def set_dst_paused(self, paused: bool) -> None:
        self._dst_paused = paused
        self._update_reading()

    # -- the stages ---------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._task is None:
            self._task = self.link.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._inbox and not self.done:
                data, read_at = self._inbox.popleft()
                if data is not None:
                    self._queued -= len(data)
                    if not self._reading:
                        self._update_reading()
                await self._through(tuple(self.stages), 0, data, read_at)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one stage must not take the proxy down: drop this connection
            log.exception("proxy %s: %s pipe failed; closing the connection", self.link.proxy.name, self.direction)
            self.link.close()
        finally:
            self._task = None
            if self.done:
                self._inbox.clear()
                self._queued = 0

    async def _through(self, stages: tuple[Stage, ...], i: int, data: bytes | None, read_at: float) -> None:
        while i < len(stages):
            stage = stages[i]
            i += 1
            if stage.active:
                await stage.handle(data, read_at, functools.partial(self._through, stages, i))
                return
        self._deliver(data)

    def _deliver(self, data: bytes | None) -> None:
        if self.done:
            return
        if data is None:
            self._finish()
            return
        dst = self.dst
        if dst is None or dst.is_closing():
            self.done = True
            return
        self._counts[1] += len(data)
        dst.write(data)

    def _finish(self) -> None:
        """End of stream reached the destination: close it (Toxiproxy has no half-close)."""
        self.done = True
        if self.dst is not None and not self.dst.is_closing():
            self.dst.close()

    def _update_reading(self) -> None:
        limit = HIGH_WATER if self._reading else HIGH_WATER // 4
        want = not self._dst_paused and self._queued <= limit
        if want == self._reading:
            return
        self._reading = want
        src = self.src
        if src is None or src.is_closing():
            return
        if want:
            src.resume_reading()
        else:
            src.pause_reading()

    # -- called by stages -------------------------------------------------------------------

    def close_connection(self) -> None:
        self.link.close()

    def reset_connection(self) -> None:
        self.link.reset()

    def stop(self) -> None:
        self.done = True
        for stage in self.stages:
            stage.detach()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()


class _Side(asyncio.Protocol):
    """One socket of the connection: what it reads feeds one pipe; the other pipe writes to it."""

    def __init__(self, link: "Link", feeds: Pipe, drains: Pipe) -> None:
        self.link = link
        self.feeds = feeds
        self.drains = drains
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.feeds.src = transport
        self.drains.dst = transport
        self.link.side_made(self)

    def data_received(self, data: bytes) -> None:
        self.feeds.feed(data)

    def eof_received(self) -> bool:
        self.feeds.feed_eof()
        return True  # keep writing what the other direction still carries; the pipe closes us

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.drains.done = True
        self.feeds.feed_eof()
        self.link.side_lost()

    def pause_writing(self) -> None:
        self.drains.set_dst_paused(True)

    def resume_writing(self) -> None:
        self.drains.set_dst_paused(False)


class Link:
    """A client connection accepted by a proxy, and its connection to the upstream."""

    def __init__(self, proxy: "Proxy", rng: random.Random) -> None:
        self.proxy = proxy
        self.rng = rng
        self.loop = asyncio.get_running_loop()
        self.upstream = Pipe(self, "upstream", proxy.counts("upstream"))
        self.downstream = Pipe(self, "downstream", proxy.counts("downstream"))
        self.client = _Side(self, feeds=self.upstream, drains=self.downstream)
        self.server = _Side(self, feeds=self.downstream, drains=self.upstream)
        self.connected = False
        self.closed = False
        self._connecting: asyncio.Task[None] | None = None
        for toxic in proxy.toxics():
            self.add_toxic(toxic)

    def pipe(self, stream: str) -> Pipe:
        return self.upstream if stream == "upstream" else self.downstream

    def pipes(self) -> Iterable[Pipe]:
        return (self.upstream, self.downstream)

    # -- lifecycle ------------------------------------------------------------------------------

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            # Hold the client's bytes in the kernel until the upstream answers.
            side.transport.pause_reading()  # type: ignore[union-attr]
            self.proxy.link_opened(self)
            self._connecting = self.loop.create_task(self._connect_upstream())

    async def _connect_upstream(self) -> None:
        host, port = self.proxy.upstream_address()
        try:
            await self.loop.create_connection(lambda: self.server, host, port)
        except (OSError, ValueError) as exc:
            log.info("proxy %s: upstream %s unreachable (%s); closing client", self.proxy.name, self.proxy.upstream, exc)
            self.close()
            return
        finally:
            self._connecting = None
            if self.client.lost and self.server.transport is None:
                self._forget()
        if self.closed or self.client.lost:
            if self.server.transport is not None:
                self.server.transport.abort()
            return
        self.connected = True
        for pipe in self.pipes():
            for stage in pipe.stages:
                stage.started()
        client = self.client.transport
        if client is not None and not client.is_closing():
            client.resume_reading()

    def side_lost(self) -> None:
        client_gone = self.client.lost
        server_gone = self.server.lost or (self.server.transport is None and self._connecting is None)
        if client_gone and server_gone:
            self._forget()
        elif client_gone and self._connecting is not None:
            self._connecting.cancel()

    def _forget(self) -> None:
        self.closed = True
        for pipe in self.pipes():
            pipe.stop()
        self.proxy.link_closed(self)

    def close(self) -> None:
        """Close both sockets now (the peers see an orderly end of stream)."""
        self._teardown(reset=False)

    def reset(self) -> None:
        """Close both sockets with SO_LINGER 0, so both peers see a connection reset."""
        self._teardown(reset=True)

    def _teardown(self, reset: bool) -> None:
        self.closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        for pipe in self.pipes():
            pipe.stop()
        for side in (self.client, self.server):
            transport = side.transport
            if transport is None or side.lost:
                continue
            if reset:
                sock = transport.get_extra_info("socket")
                try:
                    if sock is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                except OSError:  # the OS refused: the peer sees a plain close instead
                    pass
            transport.abort()
        self.proxy.link_closed(self)

    # -- toxics, as the API changes them -----------------------------------------------------

    def add_toxic(self, toxic: Toxic) -> None:
        pipe = self.pipe(toxic.direction)
        stage = stage_for(toxic, pipe, self.rng)
        pipe.stages.append(stage)
        if self.connected:
            stage.started()

    def update_toxic(self, toxic: Toxic) -> None:
        for stage in self.pipe(toxic.direction).stages:
            if stage.name == toxic.name:
                stage.update(toxic)

    def remove_toxic(self, name: str) -> None:
        for pipe in self.pipes():
            for stage in list(pipe.stages):
                if stage.name == name:
                    pipe.stages.remove(stage)
                    stage.remove()
