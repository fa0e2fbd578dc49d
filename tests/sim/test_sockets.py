"""The socket module on a simulated host: what paho-mqtt and blocking-style code rely on."""

from __future__ import annotations

import asyncio
import errno
import resource
import select
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim import World
from sim._sockets import FD_BASE


def echo_world(seed: int = 1) -> World:
    world = World(seed=seed)

    async def echo():
        async def handle(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.start_server(handle, "0.0.0.0", 7)
        await asyncio.Event().wait()

    world.host("srv").spawn(echo)
    return world


async def readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(sock, ready.set_result, None)
    try:
        await ready
    finally:
        loop.remove_reader(sock)


def test_create_connection_is_nonblocking_and_echoes_through_add_reader():
    world = echo_world()

    async def main():
        await asyncio.sleep(1)
        sock = socket.create_connection(("srv", 7), timeout=5)
        assert isinstance(sock, socket.socket)
        assert sock.fileno() >= FD_BASE > resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(10)  # nothing yet, and the connection is still under way
        loop = asyncio.get_running_loop()
        writable = loop.create_future()
        loop.add_writer(sock.fileno(), lambda: writable.done() or writable.set_result(world.now))
        connected_at = await writable
        loop.remove_writer(sock.fileno())
        sent = sock.send(b"hello" * 1000)
        got = bytearray()
        while len(got) < sent:
            await readable(sock)
            buf = bytearray(4096)
            got += buf[: sock.recv_into(buf)]
        peer, me = sock.getpeername(), sock.getsockname()
        sock.shutdown(socket.SHUT_WR)
        await readable(sock)
        eof = sock.recv(10)
        sock.close()
        return connected_at, bytes(got), peer, me, eof, sock.fileno()

    connected_at, got, peer, me, eof, closed_fd = world.run(main).value
    assert connected_at > 1.0  # a round trip of virtual time
    assert got == b"hello" * 1000
    assert peer == ("srv", 7) and me[0] == "main"
    assert eof == b"" and closed_fd == -1


def test_blocking_calls_that_would_wait_are_refused_with_the_way_out():
    world = echo_world()

    async def main():
        await asyncio.sleep(1)
        sock = socket.create_connection(("srv", 7))
        with pytest.raises(sim.Unsupported, match=r"recv\(\) on a blocking simulated socket.*setblocking\(False\).*add_reader.*chaos mode"):
            sock.recv(10)
        with pytest.raises(sim.Unsupported, match=r"select.select\(\)"):
            select.select([sock], [], [], 1.0)
        with pytest.raises(sim.Unsupported, match=r"add_reader\(\) on descriptor 0: only simulated sockets"):
            asyncio.get_running_loop().add_reader(0, lambda: None)
        with pytest.raises(sim.Unsupported, match=r"time.sleep\(0.5\).*asyncio.sleep"):
            time.sleep(0.5)  # noqa: ASYNC251 - the point: it is refused

    result = world.run(main)
    assert result.completed


def test_refused_and_unknown_names_fail_as_a_socket_does():
    world = echo_world()

    async def main():
        await asyncio.sleep(1)
        with pytest.raises(socket.gaierror, match="not a host of this world"):
            socket.create_connection(("example.com", 80))
        sock = socket.create_connection(("srv", 9))  # nobody listens on 9
        sock.setblocking(False)
        await readable(sock)
        with pytest.raises(ConnectionRefusedError):
            sock.recv(1)
        sock.close()
        s2 = socket.socket()
        s2.setblocking(False)
        with pytest.raises(BlockingIOError):
            s2.connect(("srv", 9))
        await readable(s2)
        return s2.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    assert world.run(main).value == errno.ECONNREFUSED


def test_listen_accept_and_socketpair_on_a_host():
    world = World(seed=4)
    up = asyncio.Event()

    async def server():
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("0.0.0.0", 5000))
        lsock.listen()
        lsock.setblocking(False)
        up.set()
        await readable(lsock)
        conn, addr = lsock.accept()
        conn.setblocking(False)
        await readable(conn)
        conn.send(conn.recv(100).upper())
        return addr

    async def main():
        task = world.host("srv").spawn(server)
        await up.wait()
        sock = socket.create_connection(("srv", 5000))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        w = loop.create_future()
        loop.add_writer(sock, w.set_result, None)
        await w
        loop.remove_writer(sock)
        sock.send(b"ping")
        await readable(sock)
        reply = sock.recv(100)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        a.send(b"wake")
        await readable(b)
        return reply, b.recv(10), await task

    reply, woke, addr = world.run(main).value
    assert reply == b"PING" and woke == b"wake" and addr[0] == "main"


def test_clocks_are_virtual_on_the_run_thread_only_and_restored_after():
    import paho.mqtt.client as paho_client

    world = World(seed=1)
    seen: dict[str, float] = {}
    go, done, other = threading.Event(), threading.Event(), []

    def watcher():
        go.wait(10)
        other.append(time.monotonic())
        done.set()

    thread = threading.Thread(target=watcher)
    thread.start()  # before the run: threads are refused only on simulated hosts

    async def main():
        start = time.monotonic(), time.perf_counter(), paho_client.time_func()
        await asyncio.sleep(3600)
        seen["hour"] = time.monotonic() - start[0]
        seen["perf"] = time.perf_counter() - start[1]
        seen["paho"] = paho_client.time_func() - start[2]
        seen["ns"] = time.monotonic_ns() / 1e9 - time.monotonic()
        go.set()
        done.wait(10)  # the other thread reads its clock while the run is on

    before = time.monotonic()
    world.run(main)
    after = time.monotonic()
    thread.join()
    assert seen["hour"] == seen["perf"] == seen["paho"] == 3600.0
    assert abs(seen["ns"]) < 1e-6
    assert before <= other[0] <= after  # a progress bar's thread keeps the real clock
    assert time.monotonic is paho_client.time_func and time.monotonic.__module__ == "time"


def test_real_sockets_work_in_other_threads_during_a_run_and_everywhere_after_it():
    world = World(seed=1)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def real_round_trip() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            s, _ = server.accept()
            with s:
                c.sendall(b"real")
                return s.recv(4)

    go, done, got = threading.Event(), threading.Event(), []

    def other():
        go.wait(10)
        got.append(real_round_trip())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()

    async def main():
        go.set()
        done.wait(10)

    world.run(main)
    thread.join()
    assert got == [b"real"] and real_round_trip() == b"real"
    assert socket.socket.__module__ == "socket" and socket.create_connection.__module__ == "socket"
    server.close()


@settings(max_examples=25, deadline=None)
@given(
    writes=st.lists(st.integers(1, 70_000), min_size=1, max_size=8),
    bufsize=st.integers(1, 100_000),
    seed=st.integers(0, 2**16),
)
def test_bytes_arrive_in_order_exactly_once_whatever_the_chunking(writes, bufsize, seed):
    """Non-blocking sends of any sizes (some past the send buffer) and reads of any size."""
    world = echo_world(seed)
    payload = bytes(i % 251 for i in range(sum(writes)))

    async def main():
        await asyncio.sleep(1)
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(("srv", 7))
        sock.setblocking(False)
        got, pos, chunks = bytearray(), 0, list(writes)
        done = loop.create_future()

        def on_read():
            try:
                while data := sock.recv(bufsize):
                    got.extend(data)
            except BlockingIOError:
                pass
            if len(got) == len(payload) and not done.done():
                done.set_result(None)

        def on_write():
            nonlocal pos
            try:
                while chunks:
                    end = pos + chunks[0]
                    pos += sock.send(payload[pos:end])
                    if pos == end:
                        chunks.pop(0)
            except BlockingIOError:
                return
            loop.remove_writer(sock)

        loop.add_reader(sock, on_read)
        loop.add_writer(sock, on_write)
        await done
        sock.close()
        return bytes(got)

    assert world.run(main).value == payload


def test_a_released_world_lets_go_of_its_open_sockets():
    import gc
    import weakref

    world = echo_world()
    refs = []

    async def main():
        await asyncio.sleep(1)
        sock = socket.create_connection(("srv", 7))  # never closed
        asyncio.get_running_loop().add_reader(sock, lambda: None)
        refs.append(weakref.ref(sock))

    world.run(main)
    world.release()
    gc.collect()
    assert refs[0]() is None
