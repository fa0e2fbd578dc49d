"""The simulated TCP network: listeners, connections and the pipes that carry their bytes.

Model, in one paragraph: a connection is two endpoints (asyncio transports) joined by two
pipes, one per direction. A pipe carries segments (data, EOF, RST, SYN-ACK) in order,
exactly once, each after the link's latency; writes made in the same virtual instant
coalesce into one segment, as a real TCP stack would coalesce them. A sender's unacked
bytes (in flight or buffered unread at a paused receiver) beyond the receive window count as
its write buffer, which drives pause_writing/resume_writing, so StreamReader limits and
drain() behave as on a real socket. Faults (issue: faults) hook in at the pipe.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections import deque
from heapq import heappush
from typing import TYPE_CHECKING, Any, Callable

from sim.errors import Unsupported

if TYPE_CHECKING:
    from sim._world import Host, World

_DATA, _EOF, _RST, _SYNACK = 0, 1, 2, 3
_KIND = {_DATA: "data", _EOF: "eof", _RST: "rst", _SYNACK: "synack"}
RECEIVE_WINDOW = 256 * 1024
_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""})


class _Segment:
    __slots__ = ("kind", "data", "sent_at", "callbacks", "_ok", "pipe")

    def __init__(self, pipe: "_Pipe", kind: int, data: bytearray | None, sent_at: float) -> None:
        self.pipe = pipe
        self.kind = kind
        self.data = data
        self.sent_at = sent_at
        # simpy's step() calls these; a segment is its own (already triggered) event.
        self.callbacks = [pipe._arrive]
        self._ok = True

    def clone(self, data: bytearray | None) -> "_Segment":
        """A segment like this one carrying other bytes (toxics that cut or trim use it)."""
        return _Segment(self.pipe, self.kind, data, self.sent_at)


class _Pipe:
    """One direction of one connection: src endpoint to dst endpoint."""

    __slots__ = ("conn", "src", "dst", "_last", "_next_free", "world", "rng", "toxics", "held_by_toxics")

    def __init__(self, conn: "_Connection", src: "Endpoint", dst: "Endpoint") -> None:
        self.conn = conn
        self.src = src
        self.dst = dst
        self.world = conn.world
        self.rng = self.world.streams(f"net.pipe:{conn.id}:{src.host.name}->{dst.host.name}")
        self._last: _Segment | None = None  # last segment scheduled and not yet arrived
        self._next_free = 0.0  # segments never overtake one another
        self.toxics: Any = None  # set by the fault layer
        self.held_by_toxics: list[_Segment] = []  # segments a toxic delayed, until they arrive

    def send(self, kind: int, data: bytes | None = None) -> None:
        env = self.world.env
        now = env._now
        last = self._last
        if kind == _DATA and last is not None and last.kind == _DATA and last.sent_at == now:
            last.data += data  # type: ignore[operator]
            return
        seg = _Segment(self, kind, bytearray(data) if data is not None else None, now)
        self._last = seg
        self.world.net.transmit(self, seg)

    def make(self, kind: int) -> _Segment:
        """A control segment that skips coalescing and toxics (the network itself sends it)."""
        return _Segment(self, kind, None, self.world.env._now)

    def schedule(self, seg: _Segment, at: float) -> None:
        """Put seg on the wire to arrive at virtual time ``at`` (never before an earlier one)."""
        if at < self._next_free:
            at = self._next_free
        self._next_free = at
        env = self.world.env
        heappush(env._queue, (at, 1, next(env._eid), seg))

    def _arrive(self, seg: _Segment) -> None:
        if self._last is seg:
            self._last = None
        self.world.net.arrive(self, seg)


class _Connection:
    __slots__ = ("id", "world", "client", "server", "port", "up", "down", "severed")

    def __init__(self, world: "World", cid: int, port: int) -> None:
        self.id = cid
        self.world = world
        self.port = port
        self.up: _Pipe | None = None
        self.down: _Pipe | None = None
        self.severed = False


class Endpoint(asyncio.Transport):
    """One end of a simulated TCP connection, as an asyncio transport."""

    def __init__(self, conn: _Connection, host: "Host", local: tuple[str, int], remote: tuple[str, int]) -> None:
        super().__init__()
        self.conn = conn
        self.host = host
        self.world = host.world
        self.local = local
        self.remote = remote
        self.protocol: asyncio.BaseProtocol | None = None
        self.out: _Pipe | None = None
        self.peer: Endpoint | None = None
        self._closing = False  # close() or abort() called, or reset received
        self._lost = False  # connection_lost delivered
        self._eof_sent = False
        self._eof_received = False
        self._dead = False  # the host crashed: silently gone, no FIN, no RST
        self._paused = False
        self._inbox: deque[bytes] = deque()  # arrived while reading was paused
        self._inbox_eof = False
        self._unacked = 0  # bytes we sent that the peer has not consumed
        self._writing_paused = False
        self._high = 64 * 1024
        self._low = 16 * 1024

    # -- asyncio.Transport -------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.remote
        if name == "sockname":
            return self.local
        if name == "socket":
            return None
        return default

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol  # type: ignore[return-value]

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._inbox or self._inbox_eof:
            self.world.loop.call_soon(self._drain_inbox, context=self.host.context.copy())

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        self._high, self._low = high, low
        self._maybe_pause_writing()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def get_write_buffer_size(self) -> int:
        return max(0, self._unacked - RECEIVE_WINDOW)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self._closing:
            return  # also a crashed host's sockets: they are closing, silently
        data = bytes(data)
        self._unacked += len(data)
        self.world.net.note_send(self, data)
        self.out.send(_DATA, data)  # type: ignore[union-attr]
        self._maybe_pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._eof_sent or self._closing:
            return
        self._eof_sent = True
        self.out.send(_EOF)  # type: ignore[union-attr]

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.world.trace.add(self.world.env._now, "close", self.conn.id, self.host.name)
        if not self._eof_sent:
            self._eof_sent = True
            self.out.send(_EOF)  # type: ignore[union-attr]
        self._lose(None)

    def abort(self) -> None:
        if self._lost:
            return
        self._closing = True
        self.world.trace.add(self.world.env._now, "abort", self.conn.id, self.host.name)
        self.out.send(_RST)  # type: ignore[union-attr]
        self._lose(None)

    # -- internals ------------------------------------------------------------------------
    def _lose(self, exc: BaseException | None) -> None:
        """Deliver connection_lost once, from the loop, on our host."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._inbox.clear()
        self.world.net.forget(self)
        if self.protocol is not None and not self._dead:
            self.world.loop.call_soon(self.protocol.connection_lost, exc, context=self.host.context.copy())

    def _maybe_pause_writing(self) -> None:
        size = self._unacked - RECEIVE_WINDOW
        if not self._writing_paused and size > self._high:
            self._writing_paused = True
            self._call_protocol("pause_writing")
        elif self._writing_paused and size <= self._low:
            self._writing_paused = False
            self._call_protocol("resume_writing")

    def _call_protocol(self, method: str, *args: Any) -> Any:
        try:
            return self.host.call(getattr(self.protocol, method), *args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # a protocol bug must not take the whole world down
            self.world.loop.call_exception_handler(
                {"message": f"protocol.{method}() failed on host {self.host.name!r}", "exception": exc, "transport": self, "protocol": self.protocol}
            )
            return None

    def _receive(self, data: bytes) -> None:
        if self._paused:
            self._inbox.append(data)
            return
        self._consume(data)

    def _consume(self, data: bytes) -> None:
        protocol = self.protocol
        if isinstance(protocol, asyncio.BufferedProtocol):
            self.host.call(asyncio.protocols._feed_data_to_buffered_proto, protocol, data)  # type: ignore[attr-defined]
        else:
            self._call_protocol("data_received", data)
        peer = self.peer
        if peer is not None:
            peer._unacked -= len(data)
            if peer._writing_paused:
                peer._maybe_pause_writing()

    def _drain_inbox(self) -> None:
        while self._inbox and not self._paused and not self._lost:
            self._consume(self._inbox.popleft())
        if self._inbox_eof and not self._inbox and not self._paused:
            self._inbox_eof = False
            self._on_eof()

    def _receive_eof(self) -> None:
        if self._paused or self._inbox:
            self._inbox_eof = True
            return
        self._on_eof()

    def _on_eof(self) -> None:
        if self._eof_received or self._lost:
            return
        self._eof_received = True
        keep_open = self._call_protocol("eof_received")
        if not keep_open:
            self.close()
        elif self._eof_sent and self._closing:
            self._lose(None)

    def _receive_reset(self, exc: OSError | None = None) -> None:
        if self._lost:
            return
        self._closing = True
        self.world.trace.add(self.world.env._now, "reset", self.conn.id, self.host.name)
        self._lose(exc or ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))

    def __repr__(self) -> str:
        return f"<sim TCP {self.local[0]}:{self.local[1]} -> {self.remote[0]}:{self.remote[1]} conn={self.conn.id}>"


class _FakeSocket:
    """What ``server.sockets`` holds: enough of a socket for code that reads its address."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM

    def __init__(self, address: tuple[str, int]) -> None:
        self._address = address

    def getsockname(self) -> tuple[str, int]:
        return self._address

    def fileno(self) -> int:
        return -1

    def __repr__(self) -> str:
        return f"<sim socket {self._address[0]}:{self._address[1]}>"


class Listener(asyncio.AbstractServer):
    """A listening port on a simulated host (what ``create_server`` returns)."""

    def __init__(self, net: "Network", host: "Host", port: int, protocol_factory: Callable[[], asyncio.BaseProtocol], serving: bool) -> None:
        self._net = net
        self.host = host
        self.port = port
        self.protocol_factory = protocol_factory
        self._serving = serving
        self._closed = False
        self._serve_forever: asyncio.Future[None] | None = None

    @property
    def sockets(self) -> tuple[_FakeSocket, ...]:
        return () if self._closed else (_FakeSocket((self.host.name, self.port)),)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._net.world.loop

    def is_serving(self) -> bool:
        return self._serving and not self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        self._net.unlisten(self)
        if self._serve_forever is not None and not self._serve_forever.done():
            self._serve_forever.cancel()

    async def start_serving(self) -> None:
        self._serving = True

    async def serve_forever(self) -> None:
        self._serving = True
        self._serve_forever = self.get_loop().create_future()
        try:
            await self._serve_forever
        finally:
            self.close()

    async def wait_closed(self) -> None:
        return None

    def close_clients(self) -> None:
        pass

    def abort_clients(self) -> None:
        pass


class Network:
    """Every listener and connection of a world, and the links between its hosts."""

    def __init__(self, world: "World") -> None:
        self.world = world
        self._listeners: dict[tuple[str, int], Listener] = {}
        self._endpoints: dict[tuple[str, int, str, int], Endpoint] = {}
        self._next_conn = 0
        self._next_port: dict[str, int] = {}
        self._trace = world.trace
        self.trace_bytes = True

    # -- names and ports ----------------------------------------------------------------
    def resolve(self, name: str | None, here: "Host") -> "Host":
        if name is None or name in _LOCAL_NAMES or name == here.name:
            return here
        host = self.world.hosts.get(name)
        if host is None:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {name!r} is not a host of this world (hosts: {', '.join(sorted(self.world.hosts))})")
        return host

    def ephemeral_port(self, host: "Host") -> int:
        port = self._next_port.get(host.name, 49152)
        while (host.name, port) in self._listeners:
            port += 1
        self._next_port[host.name] = port + 1
        return port

    # -- listeners ------------------------------------------------------------------------
    def listen(self, host: "Host", port: int | None, factory: Callable[[], asyncio.BaseProtocol], serving: bool) -> Listener:
        port = int(port or 0) or self.ephemeral_port(host)
        key = (host.name, port)
        if key in self._listeners:
            raise OSError(errno.EADDRINUSE, f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address ('{host.name}', {port}): address already in use")
        listener = Listener(self, host, port, factory, serving)
        self._listeners[key] = listener
        host._listeners.append(listener)
        self._trace.add(self.world.env._now, "listen", 0, f"{host.name}:{port}")
        return listener

    def unlisten(self, listener: Listener) -> None:
        key = (listener.host.name, listener.port)
        if self._listeners.get(key) is listener:
            del self._listeners[key]
            self._trace.add(self.world.env._now, "unlisten", 0, f"{listener.host.name}:{listener.port}")
        if listener in listener.host._listeners:
            listener.host._listeners.remove(listener)

    # -- connections ----------------------------------------------------------------------
    async def connect(self, here: "Host", factory: Callable[[], asyncio.BaseProtocol], name: str | None, port: int | None) -> tuple[Endpoint, asyncio.BaseProtocol]:
        client = self.open(here, factory, name, port)
        waiter: asyncio.Future[None] = client._connect_waiter  # type: ignore[attr-defined]
        try:
            await waiter
        except BaseException:
            if not waiter.done():
                waiter.cancel()
            client._closing = True
            client._lost = True
            raise
        return client, client.protocol  # type: ignore[return-value]

    def open(self, here: "Host", factory: Callable[[], asyncio.BaseProtocol], name: str | None, port: int | None) -> Endpoint:
        """Send the SYN; ``endpoint._connect_waiter`` resolves when the connection is up or fails."""
        if port is None:
            raise ValueError("port is required to connect in the simulated world")
        target = self.resolve(name, here)
        port = int(port)
        self._next_conn += 1
        conn = _Connection(self.world, self._next_conn, port)
        local = (here.name, self.ephemeral_port(here))
        client = Endpoint(conn, here, local, (target.name, port))
        conn.client = client
        waiter: asyncio.Future[None] = self.world.loop.create_future()
        client._connect_waiter = waiter  # type: ignore[attr-defined]
        client._factory = factory  # type: ignore[attr-defined]
        self._trace.add(self.world.env._now, "connect", conn.id, f"{local[0]}:{local[1]}->{target.name}:{port}")
        self.world.links.syn(self, client, target, port)
        return client

    def deliver_syn(self, client: Endpoint, target: "Host", port: int) -> None:
        """A SYN arrives at target: accept it, or answer with a refusal."""
        conn = client.conn
        now = self.world.env._now
        listener = self._listeners.get((target.name, port)) if target.up else None
        if listener is None or not listener.is_serving():
            if not target.up:
                return  # nobody answers: the connect times out
            self._trace.add(now, "refused", conn.id, f"{target.name}:{port}")
            self.world.links.reply(self, client.host, target, lambda: self._refuse(client))
            return
        server = Endpoint(conn, target, (target.name, port), client.local)
        conn.server = server
        client.peer, server.peer = server, client
        conn.up = client.out = _Pipe(conn, client, server)
        conn.down = server.out = _Pipe(conn, server, client)
        self.world.links.attach(self, conn)
        self._endpoints[(client.host.name, client.local[1], target.name, port)] = client
        self._endpoints[(target.name, port, client.host.name, client.local[1])] = server
        self._trace.add(now, "accept", conn.id, f"{target.name}:{port}<-{client.local[0]}:{client.local[1]}")
        try:
            protocol = target.call(listener.protocol_factory)
        except Exception as exc:  # a broken factory costs its connection, never the listener
            self.world.loop.call_exception_handler({"message": f"protocol factory failed on {target.name}:{port}", "exception": exc})
            server.abort()
            return
        server.protocol = protocol
        server._call_protocol("connection_made", server)
        server.out.send(_SYNACK)

    def _refuse(self, client: Endpoint) -> None:
        waiter: asyncio.Future[None] = client._connect_waiter  # type: ignore[attr-defined]
        if not waiter.done():
            host, port = client.remote
            waiter.set_exception(ConnectionRefusedError(errno.ECONNREFUSED, f"[Errno {errno.ECONNREFUSED}] Connect call failed ('{host}', {port})"))

    def _established(self, client: Endpoint) -> None:
        waiter: asyncio.Future[None] = client._connect_waiter  # type: ignore[attr-defined]
        if waiter.done():  # the connecting task gave up: tell the server
            client._lost = True
            client._closing = True
            client.out.send(_RST)  # type: ignore[union-attr]
            return
        try:
            protocol = client.host.call(client._factory)  # type: ignore[attr-defined]
        except BaseException as exc:
            client.out.send(_RST)  # type: ignore[union-attr]
            waiter.set_exception(exc)
            return
        client.protocol = protocol
        client._call_protocol("connection_made", client)
        waiter.set_result(None)

    def timed_out(self, client: Endpoint) -> None:
        waiter: asyncio.Future[None] = client._connect_waiter  # type: ignore[attr-defined]
        if not waiter.done():
            host, port = client.remote
            self._trace.add(self.world.env._now, "connect-timeout", client.conn.id, f"{host}:{port}")
            waiter.set_exception(TimeoutError(errno.ETIMEDOUT, f"[Errno {errno.ETIMEDOUT}] Connect call failed ('{host}', {port}): timed out"))

    def forget(self, ep: Endpoint) -> None:
        self._endpoints.pop((ep.host.name, ep.local[1], ep.remote[0], ep.remote[1]), None)

    def endpoints_of(self, host: "Host") -> list[Endpoint]:
        return [ep for ep in self._endpoints.values() if ep.host is host]

    def all_endpoints(self) -> list[Endpoint]:
        return list(self._endpoints.values())

    # -- bytes ------------------------------------------------------------------------------
    def note_send(self, ep: Endpoint, data: bytes) -> None:
        if self.trace_bytes:
            self._trace.add_bytes(self.world.env._now, "send", ep.conn.id, ep.host.name, data)

    def transmit(self, pipe: _Pipe, seg: _Segment) -> None:
        """Hand a segment to the fault layer, which puts it on the wire (or holds or drops it)."""
        self.world.links.transmit(pipe, seg)

    def arrive(self, pipe: _Pipe, seg: _Segment) -> None:
        if self.world.links.intercept(pipe, seg):
            return
        self.arrive_now(pipe, seg)

    def arrive_now(self, pipe: _Pipe, seg: _Segment) -> None:
        dst = pipe.dst
        kind = seg.kind
        if dst._dead or dst._lost:
            # A socket that is closed (or a host that restarted and never heard of this
            # connection) answers data with a reset; an EOF or RST needs no answer.
            if kind == _DATA or (kind == _EOF and dst._dead):
                if not pipe.src._lost:
                    self._trace.add(self.world.env._now, "rst-reply", pipe.conn.id, dst.host.name)
                    dst.out.send(_RST)  # type: ignore[union-attr]
            return
        if kind == _DATA:
            data = bytes(seg.data)  # type: ignore[arg-type]
            if self.trace_bytes:
                self._trace.add_bytes(self.world.env._now, "recv", pipe.conn.id, dst.host.name, data)
            dst._receive(data)
        elif kind == _EOF:
            self._trace.add(self.world.env._now, "eof", pipe.conn.id, dst.host.name)
            dst._receive_eof()
        elif kind == _RST:
            dst._receive_reset()
        elif kind == _SYNACK:
            self._established(dst)


class _RefusedUnsupported:
    """Names of loop features the simulated world refuses, with the way out."""

    REASONS = {
        "sock": "raw socket operations (loop.sock_*) touch the OS; use asyncio streams or loop.create_connection",
        "subprocess": "subprocesses run in real time outside the simulation; run that part in chaos mode",
        "datagram": "UDP is not simulated yet; MQTT and squall use TCP only",
        "unix": "Unix sockets are not simulated; connect to a host name and port",
        "tls": "TLS is not simulated; use plain TCP in simulation and TLS in chaos",
        "signal": "signal handlers would fire in real time; simulate a crash with world.crash(host)",
    }

    @classmethod
    def error(cls, feature: str, what: str) -> Unsupported:
        return Unsupported(f"{what} is not available in the simulated world: {cls.REASONS[feature]}")
