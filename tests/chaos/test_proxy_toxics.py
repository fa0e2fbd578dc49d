"""Each toxic on real loopback traffic, through the proxy to an echo server, as clients observe it.

Timing assertions are lower bounds (a toxic holds data at least this long): a loaded machine
only makes things slower. Precise timing is the simulated world's business.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Awaitable, Callable

import pytest
from proxy_helpers import TIMEOUT, EchoServer, connect, read_exactly, read_to_end

from chaos.proxy import Proxy, ProxyServer
from sim.faults.toxics import LatencyAttrs

Test = Callable[[EchoServer, ProxyServer, Proxy], Awaitable[None]]


def run(test: Test, seed: int = 0) -> None:
    async def main() -> None:
        async with EchoServer() as echo, ProxyServer(port=0, rng=random.Random(seed)) as server:
            proxy = await server.create("echo", upstream=echo.address)
            await test(echo, server, proxy)

    asyncio.run(main())


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> float:
    start = time.perf_counter()
    writer.write(data)
    assert await read_exactly(reader, len(data)) == data
    return time.perf_counter() - start


async def until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), TIMEOUT)


# -- latency --------------------------------------------------------------------------------------


def test_latency_delays_each_round_trip_and_removal_restores() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        reader, writer = await connect(proxy.listen)
        await round_trip(reader, writer, b"warm")
        proxy.add_toxic({"type": "latency", "attributes": {"latency": 200}})  # on the open connection
        assert await round_trip(reader, writer, b"hello") >= 0.19
        proxy.add_toxic({"type": "latency", "stream": "upstream", "attributes": {"latency": 100}})
        assert await round_trip(reader, writer, b"both ways") >= 0.29
        proxy.remove_toxic("latency_downstream")
        proxy.remove_toxic("latency_upstream")
        assert await round_trip(reader, writer, b"fast again") >= 0
        writer.close()

    run(test)


def test_latency_is_per_chunk_not_cumulative() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "latency", "attributes": {"latency": 300}})
        reader, writer = await connect(proxy.listen)
        start = time.perf_counter()
        for i in range(5):
            writer.write(b"%d" % i)
            await asyncio.sleep(0.02)  # shapes the traffic into separate chunks
        assert await read_exactly(reader, 5) == b"01234"
        elapsed = time.perf_counter() - start
        # Five chunks each held 300 ms: together about 0.4 s, not 5 x 0.3 s.
        assert 0.29 <= elapsed < 1.5
        writer.close()

    run(test)


def test_jitter_draws_each_delay_from_the_seeded_rng() -> None:
    seed, attrs = 7, LatencyAttrs(latency=200, jitter=180)
    rng = random.Random(seed)
    expected = [attrs.delay(rng) for _ in range(6)]

    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "latency", "attributes": attrs.model_dump()})
        reader, writer = await connect(proxy.listen)
        measured = [await round_trip(reader, writer, b"ping %d" % i) for i in range(6)]
        for got, want in zip(measured, expected):
            assert got >= want - 0.005
        assert max(measured) - min(measured) >= 0.5 * (max(expected) - min(expected))
        writer.close()

    assert max(expected) - min(expected) > 0.15, "pick a seed whose delays differ"
    run(test, seed=seed)


# -- bandwidth ------------------------------------------------------------------------------------


def test_bandwidth_limits_throughput() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "bandwidth", "attributes": {"rate": 50}})  # 50 KB/s
        reader, writer = await connect(proxy.listen)
        payload = bytes(range(256)) * 100  # 25,600 bytes: at least 0.5 s at 50 KB/s
        elapsed = await round_trip(reader, writer, payload)
        assert elapsed >= 0.45
        writer.close()

    run(test)


def test_bandwidth_rate_zero_holds_everything_until_the_toxic_changes() -> None:
    """Toxiproxy 2.12, measured: rate 0 is a stopped link (the old squall let it all through)."""

    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 0}})
        reader, writer = await connect(proxy.listen)
        writer.write(b"held")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(100), 0.5)
        assert echo.reads == []
        proxy.update_toxic("bandwidth_upstream", {"attributes": {"rate": 1000}})
        assert await read_exactly(reader, 4) == b"held"
        writer.close()

    run(test)


# -- timeout --------------------------------------------------------------------------------------


def test_timeout_restarts_whenever_data_arrives() -> None:
    """Toxiproxy 2.12, measured: the clock restarts on each chunk, so a talking peer is never cut off."""

    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "timeout", "stream": "upstream", "attributes": {"timeout": 1000}})
        reader, writer = await connect(proxy.listen)
        for _ in range(25):  # 2.5 s of talking, never 1 s of silence
            writer.write(b"x")
            last_write = time.perf_counter()
            await asyncio.sleep(0.1)
            assert not reader.at_eof()
        assert await read_to_end(reader) == b""  # swallowed, then closed after the silence
        assert time.perf_counter() - last_write >= 0.95  # the last byte restarted the clock
        assert echo.reads == []
        writer.close()

    run(test)



def test_timeout_swallows_data_then_closes() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "timeout", "attributes": {"timeout": 300}})
        reader, writer = await connect(proxy.listen)
        start = time.perf_counter()
        writer.write(b"anyone there?")
        assert await read_to_end(reader) == b""  # the echo was swallowed; then end of stream
        assert time.perf_counter() - start >= 0.29
        await until(lambda: echo.ended.is_set())
        writer.close()

    run(test)


def test_timeout_zero_holds_the_connection_until_the_toxic_goes() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "timeout", "attributes": {"timeout": 0}})
        reader, writer = await connect(proxy.listen)
        writer.write(b"lost")
        await until(lambda: b"".join(echo.reads) == b"lost")  # the server answered; the toxic ate it
        assert not echo.ended.is_set()
        proxy.remove_toxic("timeout_downstream")  # as in Toxiproxy: the connection it spoiled is closed
        assert await read_to_end(reader) == b""
        writer.close()

    run(test)


# -- reset_peer -----------------------------------------------------------------------------------


def test_reset_peer_resets_both_ends() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}})
        reader, writer = await connect(proxy.listen)
        writer.write(b"knock knock")
        with pytest.raises(ConnectionResetError):
            await read_to_end(reader)
        await asyncio.wait_for(echo.ended.wait(), TIMEOUT)
        assert echo.endings == ["reset"]
        assert echo.reads == []  # the data that lit the fuse never reached the server
        writer.close()

    run(test)


def test_reset_peer_after_timeout() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "reset_peer", "attributes": {"timeout": 300}})
        reader, writer = await connect(proxy.listen)
        start = time.perf_counter()
        writer.write(b"ping")
        with pytest.raises(ConnectionResetError):
            await read_to_end(reader)
        assert time.perf_counter() - start >= 0.29
        writer.close()

    run(test)


# -- limit_data -----------------------------------------------------------------------------------


def test_limit_data_downstream_delivers_exactly_the_limit_then_closes() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "limit_data", "attributes": {"bytes": 10}})
        reader, writer = await connect(proxy.listen)
        writer.write(b"0123456")
        assert await read_exactly(reader, 7) == b"0123456"
        writer.write(b"789abcdef")
        assert await read_to_end(reader) == b"789"
        writer.close()

    run(test)


def test_limit_data_upstream_cuts_what_the_server_gets() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "limit_data", "stream": "upstream", "attributes": {"bytes": 5}})
        reader, writer = await connect(proxy.listen)
        writer.write(b"abcdefghij")
        # The proxy closes the server's socket outright (Toxiproxy has no half-close), so the
        # echo of those bytes finds it gone; the client sees the end of the connection.
        assert await read_to_end(reader) == b""
        await asyncio.wait_for(echo.ended.wait(), TIMEOUT)
        assert b"".join(echo.reads) == b"abcde"
        writer.close()

    run(test)


# -- slicer ---------------------------------------------------------------------------------------


def test_slicer_cuts_into_small_pieces_and_keeps_every_byte() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic(
            {"type": "slicer", "stream": "upstream", "attributes": {"average_size": 16, "size_variation": 8, "delay": 500}}
        )
        proxy.add_toxic({"type": "slicer", "attributes": {"average_size": 100, "size_variation": 50, "delay": 0}})
        reader, writer = await connect(proxy.listen)
        payload = random.Random(1).randbytes(8192)
        writer.write(payload)
        assert await read_exactly(reader, len(payload)) == payload
        assert b"".join(echo.reads) == payload
        assert len(echo.reads) >= 20  # ~500 slices, 0.5 ms apart: the server reads many pieces
        writer.close()

    run(test)


def test_slicer_halves_each_chunk_as_toxiproxy_does() -> None:
    """1000 B at 100 +- 0: 16 pieces of 62/63 B (Toxiproxy's halving), 20 ms apart; never a 100 B piece."""

    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "slicer", "stream": "upstream", "attributes": {"average_size": 100, "delay": 20000}})
        reader, writer = await connect(proxy.listen)
        writer.write(bytes(1000))
        assert await read_exactly(reader, 1000) == bytes(1000)
        ends = set(itertools.accumulate(len(r) for r in echo.reads))
        # A busy server may read two pieces at once, never half of one: every read ends on a cut.
        assert ends <= set(range(0, 1001, 125)) | {i * 125 + 62 for i in range(8)}
        writer.close()

    run(test)


# -- slow_close -----------------------------------------------------------------------------------


def test_slow_close_holds_the_close_back() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "slow_close", "attributes": {"delay": 300}})
        reader, writer = await connect(proxy.listen)
        assert await round_trip(reader, writer, b"bye") >= 0
        start = time.perf_counter()
        writer.write_eof()  # the server sees the end, closes; the proxy holds that close back
        assert await read_to_end(reader) == b""
        assert time.perf_counter() - start >= 0.29
        writer.close()

    run(test)


# -- down, toxicity, upstream trouble -------------------------------------------------------------


def test_down_closes_open_connections_and_refuses_new_ones() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        reader, writer = await connect(proxy.listen)
        await round_trip(reader, writer, b"up")
        await server.update("echo", enabled=False)
        try:
            assert await read_to_end(reader) == b""
        except ConnectionResetError:
            pass  # a close with unread data in flight may reach the client as a reset
        with pytest.raises(ConnectionRefusedError):
            await connect(proxy.listen)
        await server.update("echo", enabled=True)
        reader, writer2 = await connect(proxy.listen)
        await round_trip(reader, writer2, b"up again")
        writer.close()
        writer2.close()

    run(test)


def test_toxicity_zero_never_applies() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"name": "never", "type": "limit_data", "toxicity": 0.0, "attributes": {"bytes": 0}})
        reader, writer = await connect(proxy.listen)
        await round_trip(reader, writer, b"still flowing")
        proxy.update_toxic("never", {"toxicity": 1.0})  # now it applies, to the open connection too
        writer.write(b"cut")
        assert await read_to_end(reader) == b""
        writer.close()

    run(test)


def test_toxicity_splits_connections_by_the_seeded_draw() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 0}})
        outcomes = []
        for _ in range(16):
            reader, writer = await connect(proxy.listen)
            writer.write(b"?")
            outcomes.append(await read_to_end_or_reply(reader))
            writer.close()
        assert set(outcomes) == {b"", b"?"}

    async def read_to_end_or_reply(reader: asyncio.StreamReader) -> bytes:
        return await asyncio.wait_for(reader.read(1), TIMEOUT)

    run(test, seed=3)


def test_removing_a_toxic_releases_the_data_it_holds() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "latency", "attributes": {"latency": 600_000}})
        reader, writer = await connect(proxy.listen)
        writer.write(b"held")
        await until(lambda: b"".join(echo.reads) == b"held")
        proxy.remove_toxic("latency_downstream")
        assert await read_exactly(reader, 4) == b"held"  # within TIMEOUT, not ten minutes
        writer.close()

    run(test)


def test_unreachable_upstream_closes_the_client() -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            port = closed.sockets[0].getsockname()[1]
            closed.close()
            await closed.wait_closed()
            proxy = await server.create("dead", upstream=f"127.0.0.1:{port}")
            reader, writer = await connect(proxy.listen)
            assert await read_to_end(reader) == b""
            writer.close()
            await until(lambda: not proxy.links)

    asyncio.run(main())


def test_connections_are_forgotten_when_both_ends_close() -> None:
    async def test(echo: EchoServer, server: ProxyServer, proxy: Proxy) -> None:
        proxy.add_toxic({"type": "latency", "attributes": {"latency": 10}})
        for _ in range(5):
            reader, writer = await connect(proxy.listen)
            await round_trip(reader, writer, b"x")
            writer.close()
        await until(lambda: not proxy.links)

    run(test)
