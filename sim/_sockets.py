"""Simulated sockets: the `socket` module's API over the simulated network, during a run.

paho-mqtt (and so aiomqtt) opens its connection with ``socket.create_connection`` and drives
it with non-blocking ``recv``/``send`` and ``loop.add_reader``/``add_writer``. While a world
runs, code on a simulated host gets a `SimSocket` from ``socket.create_connection``,
``socket.socket`` and ``socket.socketpair``; code anywhere else (another thread, or outside
any host) gets the real thing.

- Names resolve as the loop's ``create_connection`` resolves them: world hosts, and
  ``localhost``/``127.0.0.1`` for the caller's own host; any other name is
  ``socket.gaierror`` (a real connection would leave the simulation).
- A connect completes in virtual time, so ``create_connection`` returns a socket whose
  connection is under way, as a non-blocking connect would: it turns writable when
  established, and a refusal or timeout surfaces at the next ``send``/``recv`` (or
  ``getsockopt(SO_ERROR)``).
- The single thread never blocks: a call on a blocking socket that would have to wait
  raises `sim.Unsupported` naming the way out.
- ``fileno()`` is a fake descriptor above any the OS hands out (Linux caps them below 2**30),
  unique within the run; ``loop.add_reader``/``add_writer`` on it are level-triggered, as a
  selector's are: the callback runs on every loop iteration while the socket is ready.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import threading
import time
from asyncio import events
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sim._network import _LOCAL_NAMES, RECEIVE_WINDOW
from sim.errors import Unsupported

if TYPE_CHECKING:
    from sim._loop import SimLoop
    from sim._network import Endpoint
    from sim._world import Host, World

FD_BASE = 1 << 30
SEND_BUFFER = 256 * 1024  # bytes queued beyond the peer's window before send() says EAGAIN
SPIN = 0.001  # virtual seconds one poll of a ready watcher that moves no bytes costs
_real_socket = socket.socket
_real_create_connection = socket.create_connection
_real_socketpair = socket.socketpair
_real_select = select.select
_real_thread_start = threading.Thread.start
_real_sleep = time.sleep
_WAY_OUT = (
    "call sock.setblocking(False) and wait with loop.add_reader/add_writer (paho-mqtt: drive it from asyncio "
    "as aiomqtt does, not with loop(), loop_start() or loop_forever()), or run this code in chaos mode"
)


def _would_block(what: str) -> Unsupported:
    return Unsupported(f"{what} on a blocking simulated socket would block the simulation's only thread: {_WAY_OUT}")


class _Protocol(asyncio.Protocol):
    """Carries one simulated connection's events into its socket."""

    def __init__(self, sock: SimSocket) -> None:
        self.sock = sock

    def connection_made(self, transport: Any) -> None:
        self.sock._attached(transport)

    def data_received(self, data: bytes) -> None:
        sock = self.sock
        sock._rx += data
        if len(sock._rx) >= RECEIVE_WINDOW and sock._ep is not None:
            sock._ep.pause_reading()  # a full receive buffer: the sender's window closes
        sock._changed()

    def eof_received(self) -> bool:
        self.sock._eof = True
        self.sock._changed()
        return True  # half-closed: our side stays open until close(), as a socket's does

    def connection_lost(self, exc: BaseException | None) -> None:
        sock = self.sock
        if exc is not None and sock._error is None:
            sock._error = exc
        sock._eof = True
        sock._changed()

    def pause_writing(self) -> None:
        self.sock._send_paused = True

    def resume_writing(self) -> None:
        self.sock._send_paused = False
        self.sock._changed()


class _PairEnd:
    """One end of ``socket.socketpair()``: an in-memory transport to the other end."""

    def __init__(self, sock: SimSocket) -> None:
        self.sock = sock
        self.peer: _PairEnd | None = None
        self._dead = False
        self._closing = False
        self._eof_sent = False

    def write(self, data: bytes) -> None:
        self.sock._loop.call_soon(self.peer.sock._protocol.data_received, bytes(data))  # type: ignore[union-attr]

    def write_eof(self) -> None:
        if not self._eof_sent:
            self._eof_sent = True
            self.sock._loop.call_soon(self.peer.sock._protocol.eof_received)  # type: ignore[union-attr]

    def close(self) -> None:
        self.write_eof()
        self._closing = True

    abort = close

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class SimSocket(_real_socket):
    """A TCP socket on a simulated host. A subclass of `socket.socket` with no OS descriptor."""

    def __init__(self, world: World, host: Host, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> None:
        # socket.socket.__init__ would open a real descriptor: never called.
        self._world = world
        self._host = host
        self._loop: SimLoop = world.loop
        table = self._loop._sim_sockets
        self._fd = FD_BASE + len(table.opened)
        table.opened.append(self._fd)
        table.live[self._fd] = self
        self._family, self._type, self._proto = family, type, proto
        self._timeout: float | None = None
        self._protocol = _Protocol(self)
        self._ep: Endpoint | _PairEnd | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._rx = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._send_paused = False
        self._sim_closed = False
        self._bound: tuple[str, int] | None = None
        self._listener: Any = None
        self._backlog: list[SimSocket] = []
        self._options: dict[tuple[int, int], Any] = {}
        self._reader: events.Handle | None = None
        self._writer: events.Handle | None = None
        self._pending: events.Handle | None = None  # the next _fire, if scheduled
        self._moved = 0  # calls that moved bytes or delivered EOF or an error

    # -- what socket.socket's C layer would answer -------------------------------------------
    @property
    def family(self) -> socket.AddressFamily:  # type: ignore[override]
        return socket.AddressFamily(self._family)

    @property
    def type(self) -> socket.SocketKind:  # type: ignore[override]
        return socket.SocketKind(self._type)

    @property
    def proto(self) -> int:  # type: ignore[override]
        return self._proto

    @property
    def timeout(self) -> float | None:  # type: ignore[override]
        return self._timeout

    def fileno(self) -> int:
        return -1 if self._sim_closed else self._fd

    def settimeout(self, value: float | None) -> None:
        self._timeout = None if value is None else float(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        self._options[(level, optname)] = value  # TCP_NODELAY, SO_KEEPALIVE, ...: no effect in the model

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        if (level, optname) == (socket.SOL_SOCKET, socket.SO_ERROR):
            exc, self._error = self._error, None
            return getattr(exc, "errno", None) or (errno.EIO if exc else 0)
        return self._options.get((level, optname), 0)

    def getpeername(self) -> tuple[str, int]:
        if self._ep is None or isinstance(self._ep, _PairEnd):
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self._ep.remote

    def getsockname(self) -> tuple[str, int]:
        if self._ep is not None and not isinstance(self._ep, _PairEnd):
            return self._ep.local
        return self._bound or ("0.0.0.0", 0)

    def __repr__(self) -> str:
        state = "closed" if self._sim_closed else "connecting" if self._waiter is not None and not self._waiter.done() else "open"
        return f"<sim socket fd={self._fd} {state} on {self._host.name}>"

    # -- connecting ---------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        name, port = address[0], int(address[1])
        if name not in _LOCAL_NAMES and name != self._host.name:
            raise OSError(errno.EADDRNOTAVAIL, f"[Errno {errno.EADDRNOTAVAIL}] Cannot assign requested address: {name!r} is not host {self._host.name!r}")
        self._bound = (self._host.name, port)

    def connect(self, address: Any) -> None:
        code = self.connect_ex(address)
        if code == errno.EINPROGRESS:
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
        if code:
            raise OSError(code, os.strerror(code))

    def connect_ex(self, address: Any) -> int:
        if self._ep is not None or self._waiter is not None:
            return errno.EISCONN
        name, port = address[0], address[1]
        ep = self._world.net.open(self._host, lambda: self._protocol, name, port)
        self._ep = ep
        self._waiter = ep._connect_waiter  # type: ignore[attr-defined]
        self._waiter.add_done_callback(self._connect_done)
        if self._timeout != 0.0:
            # Blocking code expects the connection up on return; it comes up in virtual time,
            # so carry on as a non-blocking connect would (paho sets non-blocking next).
            return 0
        return errno.EINPROGRESS

    def _connect_done(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.cancelled() and waiter.exception() is not None and self._error is None:
            self._error = waiter.exception()
            self._eof = True
        self._changed()

    def _attached(self, transport: Any) -> None:
        self._ep = transport
        transport.set_write_buffer_limits(SEND_BUFFER, SEND_BUFFER // 2)

    @property
    def _connected(self) -> bool:
        return self._ep is not None and (self._waiter is None or (self._waiter.done() and not self._waiter.cancelled() and self._waiter.exception() is None))

    def listen(self, backlog: int = 128) -> None:
        if self._listener is None:
            port = self._bound[1] if self._bound else 0
            self._listener = self._world.net.listen(self._host, port, self._accepting, True)
            self._bound = (self._host.name, self._listener.port)

    def _accepting(self) -> _Protocol:
        child = SimSocket(self._world, self._host, self._family, self._type, self._proto)
        self._backlog.append(child)
        self._changed()
        return child._protocol

    def accept(self) -> tuple[SimSocket, tuple[str, int]]:
        if not self._backlog:
            if self._timeout != 0.0:
                raise _would_block("accept()")
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        child = self._backlog.pop(0)
        self._moved += 1
        return child, child.getpeername()

    # -- bytes ------------------------------------------------------------------------------------
    def _take_error(self) -> BaseException:
        exc, self._error = self._error, None
        return exc  # type: ignore[return-value]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        rx = self._rx
        self._moved += 1
        if rx:
            data = bytes(rx[:bufsize])
            del rx[:bufsize]
            ep = self._ep
            if ep is not None and len(rx) < RECEIVE_WINDOW // 2:
                ep.resume_reading()
            return data
        if self._error is not None:
            raise self._take_error()
        if self._eof or self._sim_closed:
            return b""
        self._moved -= 1
        if self._timeout != 0.0:
            raise _would_block("recv()")
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def send(self, data: Any, flags: int = 0) -> int:
        if self._error is not None:
            self._moved += 1
            raise self._take_error()
        if self._sim_closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        ep = self._ep
        if ep is not None and self._connected and (ep._closing or ep._eof_sent):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        room = SEND_BUFFER - ep.get_write_buffer_size() if ep is not None else 0
        if not self._connected or self._send_paused or room <= 0:
            if self._timeout != 0.0:
                raise _would_block("send()")
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        chunk = bytes(memoryview(data).cast("B")[:room])
        self._moved += 1
        ep.write(chunk)  # type: ignore[union-attr]
        return len(chunk)

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data)
        while view:
            sent = self.send(view)
            view = view[sent:]

    def shutdown(self, how: int) -> None:
        ep = self._ep
        if ep is None or not self._connected:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            ep.write_eof()
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._eof = True
            self._changed()

    def close(self) -> None:
        if self._sim_closed:
            return
        self._sim_closed = True
        self._reader = self._writer = None
        self._loop._sim_sockets.live.pop(self._fd, None)
        if self._listener is not None:
            self._listener.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()  # the network answers a late SYN-ACK with a reset
        elif self._connected:
            self._ep.close()  # type: ignore[union-attr]

    def detach(self) -> int:
        raise Unsupported("detach() on a simulated socket: it has no OS descriptor to hand over")

    def dup(self) -> SimSocket:
        raise Unsupported("dup() on a simulated socket: it has no OS descriptor to duplicate")

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        raise _would_block("makefile()")

    def __del__(self) -> None:  # the real socket's finaliser would warn about an unclosed descriptor
        pass

    # -- readiness, for loop.add_reader / add_writer ------------------------------------------------
    @property
    def _readable(self) -> bool:
        return bool(self._rx) or self._eof or self._error is not None or bool(self._backlog)

    @property
    def _writable(self) -> bool:
        if self._error is not None:
            return True
        return self._connected and not self._send_paused

    @property
    def _gone(self) -> bool:
        ep = self._ep
        if ep is not None and ep._dead:
            return True
        if not self._host.up and isinstance(ep, _PairEnd):
            ep._dead = True
            return True
        return False

    def _changed(self) -> None:
        if self._reader is None and self._writer is None:
            return
        pending = self._pending
        if pending is not None:
            if not isinstance(pending, events.TimerHandle):
                return
            pending.cancel()  # a spinning watcher gets news: run it now, not after the poll
        self._pending = self._loop.call_soon(self._fire, context=self._host.context.copy())

    def _fire(self) -> None:
        self._pending = None
        if self._sim_closed or self._gone:
            return
        moved = self._moved
        reader = self._reader
        if reader is not None and not reader._cancelled and self._readable:
            reader._run()
        writer = self._writer
        if writer is not None and not writer._cancelled and self._writable and not self._sim_closed:
            writer._run()
        if self._pending is not None or self._sim_closed:
            return
        # Level-triggered, as a selector is: still ready, so the watcher runs again next
        # iteration. One that moved no bytes spins, as a real loop would, but a real spin
        # costs time: poll it once per SPIN seconds, so the clock moves and timers fire
        # (aiomqtt leaves its writer registered until its next write, and spins meanwhile).
        if (self._reader is not None and self._readable) or (self._writer is not None and self._writable):
            if self._moved != moved:
                self._pending = self._loop.call_soon(self._fire, context=self._host.context.copy())
            else:
                self._pending = self._loop.call_later(SPIN, self._fire, context=self._host.context.copy())

    def _changed_if_ready(self) -> None:
        if (self._reader is not None and self._readable) or (self._writer is not None and self._writable):
            self._changed()


def _number(fd: Any) -> int:
    if isinstance(fd, int):
        return fd
    return fd._fd if isinstance(fd, SimSocket) else int(fd.fileno())


class SocketTable:
    """The simulated sockets of one loop, by fake descriptor (numbers are never reused)."""

    def __init__(self) -> None:
        self.live: dict[int, SimSocket] = {}
        self.opened: list[int] = []

    def find(self, fd: Any) -> SimSocket | None:
        return self.live.get(_number(fd))

    def retired(self, fd: Any) -> bool:
        n = _number(fd)
        return n >= FD_BASE and n not in self.live

    def watch(self, loop: SimLoop, kind: str, fd: Any, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        sock = self.find(fd)
        if sock is None:
            if self.retired(fd):
                return  # closed before a call_soon'd add_reader ran: nothing left to watch
            raise Unsupported(
                f"loop.add_{kind}() on descriptor {fd!r}: only simulated sockets (socket.create_connection or "
                "socket.socket to a world host) can be watched in the simulated world; use asyncio streams for the rest"
            )
        handle = events.Handle(callback, args, loop, None)
        old = getattr(sock, f"_{kind}")
        if old is not None:
            old.cancel()
        setattr(sock, f"_{kind}", handle)
        sock._changed_if_ready()

    def unwatch(self, kind: str, fd: Any) -> bool:
        sock = self.find(fd)
        if sock is None:
            return False
        old = getattr(sock, f"_{kind}")
        if old is None:
            return False
        old.cancel()
        setattr(sock, f"_{kind}", None)
        return True


# -- the patches, only while a run is active ---------------------------------------------------------
# Module-level, set up once: a run only fills the slot below (runs do not nest).
_active: tuple[World, int] | None = None  # the running world, and the thread it runs on


def _host() -> Host | None:
    """The simulated host the caller runs on, if it is the run's thread and on a host."""
    active = _active
    if active is None or threading.get_ident() != active[1]:
        return None
    return active[0]._host_var.get(None)


def _check_family(family: int, kind: int) -> None:
    if family == getattr(socket, "AF_UNIX", None):
        raise Unsupported("Unix sockets are not simulated: connect to a host name and port")
    if kind & socket.SOCK_DGRAM:
        raise Unsupported("UDP is not simulated yet: MQTT and squall use TCP only")


class _SocketMeta(type):
    # While patched in, ``socket.socket`` is this class; real and simulated sockets are both
    # instances of it, as they are of the real class.
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _real_socket)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _real_socket)


class _PatchedSocket(_real_socket, metaclass=_SocketMeta):
    def __new__(cls, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> Any:
        host = _host()
        if host is None or fileno is not None:
            return _real_socket(family, type, proto, fileno)
        family = socket.AF_INET if family == -1 else family
        type = socket.SOCK_STREAM if type == -1 else type
        _check_family(family, type)
        return SimSocket(host.world, host, family, type, max(proto, 0))


def _create_connection(address: Any, timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT, source_address: Any = None, **kwargs: Any) -> Any:  # type: ignore[attr-defined]
    host = _host()
    if host is None:
        return _real_create_connection(address, timeout, source_address, **kwargs)
    sock = SimSocket(host.world, host)
    if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
        sock.settimeout(timeout)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _socketpair(family: Any = None, type: int = socket.SOCK_STREAM, proto: int = 0) -> Any:
    host = _host()
    if host is None:
        return _real_socketpair(family, type, proto)
    a, b = SimSocket(host.world, host, socket.AF_UNIX, type, proto), SimSocket(host.world, host, socket.AF_UNIX, type, proto)
    a._ep, b._ep = _PairEnd(a), _PairEnd(b)
    a._ep.peer, b._ep.peer = b._ep, a._ep
    return a, b


def _select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
    if _host() is not None and any(isinstance(s, SimSocket) for s in (*rlist, *wlist, *xlist)):
        raise _would_block("select.select()")
    return _real_select(rlist, wlist, xlist, timeout)


def _thread_start(self: threading.Thread) -> None:
    if _host() is not None:
        raise Unsupported(
            f"starting thread {self.name!r} inside the simulated world: a thread runs in real time, outside the "
            "virtual clock (paho-mqtt's loop_start()/loop_forever(): drive paho from asyncio with "
            "loop.add_reader/add_writer and loop_misc(), as aiomqtt does, or run it in chaos mode)"
        )
    _real_thread_start(self)


def _sleep(seconds: float) -> None:
    if seconds > 0 and _host() is not None:
        raise Unsupported(
            f"time.sleep({seconds!r}) on a simulated host would stop the whole world for real time and none of "
            "virtual time: await asyncio.sleep() instead (paho-mqtt's loop_forever() sleeps between reconnects: "
            "drive paho from asyncio as aiomqtt does, or run it in chaos mode)"
        )
    _real_sleep(seconds)


_PATCHES = (
    (socket, "socket", _PatchedSocket),
    (socket, "create_connection", _create_connection),
    (socket, "socketpair", _socketpair),
    (select, "select", _select),
    (threading.Thread, "start", _thread_start),
    (time, "sleep", _sleep),
)


@contextmanager
def patched(world: World) -> Iterator[None]:
    global _active
    _active = (world, threading.get_ident())
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in _PATCHES]
    for owner, name, replacement in _PATCHES:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        _active = None
        for owner, name, original in saved:
            setattr(owner, name, original)
