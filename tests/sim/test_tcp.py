"""Simulated TCP: what a socket user relies on, checked in virtual time."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import World


def serve(world: World, host: str, port: int, handler) -> None:
    async def server():
        srv = await asyncio.start_server(handler, "0.0.0.0", port)
        await srv.serve_forever()

    world.host(host).spawn(server)


def test_echo_round_trip_takes_two_link_latencies():
    world = World(seed=1, latency=0.010, jitter=0.0, tick=0)

    async def echo(reader, writer):
        writer.write(await reader.readexactly(5))
        await writer.drain()

    serve(world, "srv", 7, echo)

    async def main():
        await asyncio.sleep(1)
        reader, writer = await asyncio.open_connection("srv", 7)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        writer.write(b"hello")
        data = await reader.readexactly(5)
        return data, loop.time() - t0, writer.get_extra_info("peername"), writer.get_extra_info("sockname")

    data, rtt, peer, sock = world.run(main).value
    assert data == b"hello"
    assert rtt == pytest.approx(0.020)
    assert peer == ("srv", 7)
    assert sock[0] == "main"


def test_connect_to_a_port_nobody_listens_on_is_refused():
    world = World(seed=1)
    world.host("srv")

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("srv", 1883)
        with pytest.raises(socket.gaierror, match="not a host of this world"):
            await asyncio.open_connection("nowhere", 1883)
        return True

    assert world.run(main).value


def test_localhost_means_the_callers_own_host():
    world = World(seed=1)

    async def main():
        async def hello(reader, writer):
            writer.write(b"hi")
            writer.close()

        await asyncio.start_server(hello, "127.0.0.1", 5000)
        reader, _ = await asyncio.open_connection("localhost", 5000)
        return await reader.read()

    assert world.run(main).value == b"hi"


def test_half_close_lets_the_other_side_keep_writing():
    world = World(seed=1)

    async def upper(reader, writer):
        data = await reader.read()  # until the client's EOF
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    serve(world, "srv", 9, upper)

    async def main():
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("srv", 9)
        writer.write(b"abc")
        writer.write_eof()
        return await reader.read()

    assert world.run(main).value == b"ABC"


def test_writing_to_a_peer_that_closed_gets_a_reset():
    world = World(seed=1)

    async def close_at_once(reader, writer):
        writer.close()

    serve(world, "srv", 9, close_at_once)

    async def main():
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("srv", 9)
        assert await reader.read() == b""  # the server's FIN
        writer.write(b"late")
        await asyncio.sleep(0.1)
        with pytest.raises(ConnectionResetError):
            writer.write(b"later")
            await writer.drain()
        return True

    assert world.run(main).value


def test_abort_resets_the_peer():
    world = World(seed=1)

    async def abort(reader, writer):
        await reader.readexactly(1)
        writer.transport.abort()

    serve(world, "srv", 9, abort)

    async def main():
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("srv", 9)
        writer.write(b"x")
        with pytest.raises(ConnectionResetError):
            await reader.read(10)
        return True

    assert world.run(main).value


def test_a_reader_that_stops_reading_pushes_back_on_the_writer():
    """StreamReader's limit pauses reading; the writer's drain() then blocks, nothing is lost."""
    world = World(seed=1)
    got = bytearray()
    total = 4 * 1024 * 1024

    async def slow_reader(reader, writer):
        await asyncio.sleep(5)  # not reading: the window fills, the writer must wait
        while chunk := await reader.read(65536):
            got.extend(chunk)

    async def server():
        srv = await asyncio.start_server(slow_reader, "0.0.0.0", 9, limit=65536)
        await srv.serve_forever()

    world.host("srv").spawn(server)

    async def main():
        await asyncio.sleep(0.1)
        _, writer = await asyncio.open_connection("srv", 9)
        loop = asyncio.get_running_loop()
        blob = bytes(range(256)) * (total // 256)
        t0 = loop.time()
        blocked_until = None
        for i in range(0, total, 65536):
            writer.write(blob[i : i + 65536])
            await writer.drain()
            if blocked_until is None and loop.time() - t0 > 1:
                blocked_until = loop.time()
        writer.close()
        await asyncio.sleep(10)
        return blob, blocked_until

    blob, blocked_until = world.run(main).value
    assert blocked_until is not None and blocked_until >= 5  # drain() waited for the reader
    assert bytes(got) == blob


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.binary(min_size=1, max_size=3000), st.sampled_from([0.0, 0.0, 0.0001, 0.003, 0.5])),
        min_size=0,
        max_size=25,
    ),
    reader_pauses=st.lists(st.floats(min_value=0, max_value=0.2), max_size=5),
    read_size=st.integers(min_value=1, max_value=5000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_writes_arrive_intact_in_order_then_eof(chunks, reader_pauses, read_size, seed):
    world = World(seed=seed)
    received = bytearray()
    eof_after: list[int] = []

    async def sink(reader, writer):
        pauses = list(reader_pauses)
        while True:
            if pauses:
                await asyncio.sleep(pauses.pop())
            chunk = await reader.read(read_size)
            if not chunk:
                eof_after.append(len(received))
                break
            received.extend(chunk)
        writer.close()

    async def server():
        srv = await asyncio.start_server(sink, "0.0.0.0", 9, limit=1024)
        await srv.serve_forever()

    world.host("srv").spawn(server)

    async def main():
        await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("srv", 9)
        for data, gap in chunks:
            writer.write(data)
            if gap:
                await asyncio.sleep(gap)
            await writer.drain()
        writer.write_eof()
        await reader.read()  # the sink closes after our EOF
        return b"".join(c for c, _ in chunks)

    sent = world.run(main).value
    assert bytes(received) == sent
    assert eof_after == [len(sent)]
