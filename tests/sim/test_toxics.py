"""Toxiproxy's toxic semantics, in virtual time: exact where Toxiproxy's own tests need tolerances."""

from __future__ import annotations

import asyncio

import pytest

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sim import World
from sim.faults import Toxic
from sim.faults.toxics import SlicerAttrs

from echo_world import LAT, connect, round_trip, world_with_acker, world_with_echo


def test_latency_adds_latency_within_jitter_and_keeps_order():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "latency", "attributes": {"latency": 100, "jitter": 10}})

    async def main():
        reader, writer = await connect()
        rtts = [await round_trip(reader, writer, b"x%d" % i) for i in range(30)]
        writer.write(b"".join(b"%03d" % i for i in range(50)))
        got = await reader.readexactly(150)
        return rtts, got

    rtts, got = world.run(main).value
    for rtt in rtts:
        assert 0.090 + 2 * LAT - 1e-9 <= rtt <= 0.110 + 2 * LAT + 1e-9
    assert len(set(round(r, 6) for r in rtts)) > 1  # jitter actually varies
    assert got == b"".join(b"%03d" % i for i in range(50))


def test_stream_is_kept_as_written_and_acts_in_any_case():
    """Toxiproxy 2.12 keeps "UPSTREAM" as written (and names the toxic latency_UPSTREAM) but acts upstream."""
    world = world_with_echo()
    toxic = world.add_toxic("srv:7", {"type": "latency", "stream": "UPSTREAM", "attributes": {"latency": 50}})
    assert (toxic.stream, toxic.name, toxic.direction) == ("UPSTREAM", "latency_UPSTREAM", "upstream")
    with pytest.raises(ValueError, match="stream was invalid"):
        Toxic.model_validate({"type": "latency", "stream": "sideways"})

    async def main():
        reader, writer = await connect()
        return await round_trip(reader, writer, b"ping")

    assert world.run(main).value == pytest.approx(0.050 + 2 * LAT)


def test_upstream_latency_applies_only_client_to_server():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "latency", "stream": "upstream", "attributes": {"latency": 50}})

    async def main():
        reader, writer = await connect()
        return await round_trip(reader, writer, b"ping")

    assert world.run(main).value == pytest.approx(0.050 + 2 * LAT)


def test_bandwidth_480kb_at_1000kbs_takes_480ms():
    size = 480_000
    world = world_with_acker(size)
    world.add_toxic("srv:7", {"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 1000}})

    async def main():
        reader, writer = await connect()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        writer.write(bytes(size))
        await reader.readexactly(2)
        return loop.time() - t0

    assert world.run(main).value == pytest.approx(0.48 + 2 * LAT, rel=1e-6)


def test_timeout_drops_data_and_closes_after_timeout():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 1000}})

    async def main():
        reader, writer = await connect()
        loop = asyncio.get_running_loop()
        writer.write(b"hello")
        data = await reader.read(100)  # nothing comes back; then the connection closes
        return data, loop.time()

    data, closed_at = world.run(main).value
    assert data == b""
    # Connected after the handshake (2 LAT), "hello" reaches the toxic one LAT later and
    # restarts its clock; 1 s of silence later the FIN takes one LAT back to the client.
    assert closed_at == pytest.approx(0.01 + 2 * LAT + LAT + 1.0 + LAT, abs=1e-6)


def test_timeout_restarts_whenever_data_arrives_and_fires_after_silence():
    """Toxiproxy 2.12, measured: a peer that keeps talking into a timeout toxic is never cut off."""
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 1000}})

    async def main():
        reader, writer = await connect()
        loop = asyncio.get_running_loop()
        for _ in range(10):  # 5 s of talking, never 1 s of silence
            writer.write(b"x")
            await asyncio.sleep(0.5)
            assert not reader.at_eof()
        last_write = loop.time() - 0.5
        assert await reader.read(100) == b""  # dropped, then closed after 1 s of silence
        return loop.time() - last_write

    assert world.run(main).value == pytest.approx(LAT + 1.0 + LAT, abs=1e-6)


def test_updating_a_timeout_restarts_its_clock_and_zero_stops_it():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "timeout", "name": "t", "stream": "upstream", "attributes": {"timeout": 0}})

    async def main():
        reader, writer = await connect()
        loop = asyncio.get_running_loop()
        await asyncio.sleep(5)
        world.update_toxic("srv:7", "t", {"attributes": {"timeout": 1000}})  # from never to 1 s, from now
        since = loop.time()
        assert await reader.read(100) == b""
        closed_after = loop.time() - since
        reader2, _ = await connect()
        world.update_toxic("srv:7", "t", {"attributes": {"timeout": 0}})  # back to never
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader2.read(100), timeout=30)
        return closed_after

    assert world.run(main).value == pytest.approx(1.0 + LAT, abs=1e-6)


def test_bandwidth_rate_zero_passes_nothing_until_updated():
    """Toxiproxy 2.12, measured: rate 0 is a stopped link, not an unlimited one."""
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "bandwidth", "name": "bw", "stream": "upstream", "attributes": {"rate": 0}})

    async def main():
        reader, writer = await connect()
        writer.write(b"held")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(100), timeout=60)
        world.update_toxic("srv:7", "bw", {"attributes": {"rate": 1000}})
        return await asyncio.wait_for(reader.readexactly(4), timeout=5)

    assert world.run(main).value == b"held"


def test_timeout_zero_never_closes_but_removing_it_does():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "timeout", "name": "t0", "attributes": {"timeout": 0}})

    async def main():
        reader, writer = await connect()
        writer.write(b"lost")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(100), timeout=60)
        world.remove_toxic("srv:7", "t0")
        return await asyncio.wait_for(reader.read(100), timeout=5)

    assert world.run(main).value == b""


def test_reset_peer_resets_after_timeout_from_first_data():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 500}})

    async def main():
        reader, writer = await connect()
        loop = asyncio.get_running_loop()
        await asyncio.sleep(2)  # idle: nothing happens before the first data
        t0 = loop.time()
        writer.write(b"first")
        await reader.readexactly(5)  # echo still arrives before the reset
        with pytest.raises(ConnectionResetError):
            await reader.read(100)
        return loop.time() - t0

    assert world.run(main).value == pytest.approx(LAT + 0.5 + LAT, abs=1e-6)


def test_slicer_cuts_chunks_but_keeps_every_byte():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 5, "delay": 100}})
    chunks: list[bytes] = []

    async def main():
        reader, writer = await connect()
        payload = bytes(range(256)) * 4
        writer.write(payload)
        got = b""
        while len(got) < len(payload):
            chunk = await reader.read(65536)
            chunks.append(chunk)
            got += chunk
        return payload, got

    payload, got = world.run(main).value
    assert got == payload
    assert len(chunks) > 20


def test_limit_data_counts_per_direction_then_closes():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "limit_data", "attributes": {"bytes": 100}})

    async def main():
        reader, writer = await connect()
        writer.write(bytes(60))
        first = await reader.readexactly(60)
        writer.write(bytes(60))
        rest = await reader.read()  # 40 more bytes, then EOF
        return len(first), len(rest)

    assert world.run(main).value == (60, 40)


def test_slow_close_holds_the_close_back():
    world = World(seed=1, latency=LAT, jitter=0.0, tick=0)

    async def closer(reader, writer):
        writer.close()

    async def server():
        await (await asyncio.start_server(closer, "0.0.0.0", 7)).serve_forever()

    world.host("srv").spawn(server)
    world.add_toxic("srv:7", {"type": "slow_close", "attributes": {"delay": 2000}})

    async def main():
        reader, _ = await connect()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await reader.read() == b""
        return loop.time() - t0

    assert world.run(main).value == pytest.approx(2.0 + LAT, abs=2e-3)


def test_down_closes_connections_and_refuses_new_ones_until_enabled():
    world = world_with_echo()

    async def main():
        reader, writer = await connect()
        world.disable("srv:7")
        closed = await reader.read()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("srv", 7)
        world.enable("srv:7")
        r2, w2 = await asyncio.open_connection("srv", 7)
        return closed, await round_trip(r2, w2, b"back")

    closed, rtt = world.run(main).value
    assert closed == b"" and rtt == pytest.approx(2 * LAT)


def test_toxicity_zero_never_applies_and_toxics_change_open_connections():
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "latency", "toxicity": 0.0, "attributes": {"latency": 1000}})

    async def main():
        reader, writer = await connect()
        clean = await round_trip(reader, writer, b"a")
        world.add_toxic("srv:7", {"type": "latency", "name": "late", "attributes": {"latency": 300}})
        slowed = await round_trip(reader, writer, b"b")
        world.update_toxic("srv:7", "late", {"attributes": {"latency": 700}})
        slower = await round_trip(reader, writer, b"c")
        world.remove_toxic("srv:7", "late")
        back = await round_trip(reader, writer, b"d")
        return clean, slowed, slower, back

    clean, slowed, slower, back = world.run(main).value
    assert clean == pytest.approx(2 * LAT)
    assert slowed == pytest.approx(0.3 + 2 * LAT)
    assert slower == pytest.approx(0.7 + 2 * LAT)
    assert back == pytest.approx(2 * LAT)


def test_toxic_json_matches_toxiproxy_shape_and_rejects_unknown_types():
    toxic = Toxic.model_validate({"type": "bandwidth", "attributes": {"rate": 5}})
    assert toxic.to_json() == {"name": "bandwidth_downstream", "type": "bandwidth", "stream": "downstream", "toxicity": 1.0, "attributes": {"rate": 5}}
    with pytest.raises(ValueError):
        Toxic.model_validate({"type": "explode"})


def test_writes_in_one_instant_through_a_slicer_all_arrive():
    """Regression: bytes written in the same instant as a sliced chunk were appended to it after slicing, and lost."""
    world = world_with_echo()
    world.add_toxic("srv:7", {"type": "slicer", "stream": "upstream", "attributes": {"average_size": 3, "delay": 10}})

    async def main():
        reader, writer = await connect()
        for i in range(20):
            writer.write(b"<%02d>" % i)  # 20 writes, one virtual instant
        return await reader.readexactly(80)

    assert world.run(main).value == b"".join(b"<%02d>" % i for i in range(20))


def test_removing_a_bandwidth_toxic_flushes_what_it_was_holding():
    """As Toxiproxy does: a removed toxic's queue goes on at once instead of trickling out."""
    size = 100_000
    world = world_with_acker(size)
    world.add_toxic("srv:7", {"type": "bandwidth", "name": "slow", "stream": "upstream", "attributes": {"rate": 1}})

    async def main():
        reader, writer = await connect()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(10):
            writer.write(bytes(size // 10))  # 100 s of data at 1 KB/s
        await asyncio.sleep(2)
        world.remove_toxic("srv:7", "slow")
        await reader.readexactly(2)
        return loop.time() - t0

    assert world.run(main).value == pytest.approx(2 + 2 * LAT, abs=1e-6)


def test_slicer_halves_like_toxiproxy():
    """Measured on Toxiproxy 2.12: 10 kB at 100 +- 20 is 128 pieces (~78 B); 1000 B at 100 +- 0 is 16 of 62/63."""
    rng = random.Random(7)
    pieces = SlicerAttrs(average_size=100, size_variation=20).slices(bytes(10_000), rng)
    assert len(pieces) == 128 and sum(map(len, pieces)) == 10_000
    assert sorted(map(len, SlicerAttrs(average_size=100).slices(bytes(1000), rng))) == [62] * 8 + [63] * 8


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(0, 20_000),
    average=st.integers(-5, 300),
    variation=st.integers(-5, 100),
    seed=st.integers(0, 2**32),
)
def test_slicer_pieces_cover_the_chunk_and_stop_halving_near_the_average(size, average, variation, seed):
    attrs = SlicerAttrs(average_size=average, size_variation=variation)
    data = bytes(random.Random(seed).randbytes(size))
    pieces = attrs.slices(data, random.Random(seed))
    assert b"".join(pieces) == data
    if average <= 0 or size <= 1:
        assert pieces == [data]
        return
    # Each piece is a leaf (within the variation of the average, or too small to cut) and half,
    # give or take the variation, of a parent that was too big: halving, not cutting avg-sized pieces.
    smallest = max(1, (average + variation + 1) // 2 - max(variation, 0))
    for piece in pieces:
        assert len(piece) - average <= variation or len(piece) < 2
        assert len(pieces) == 1 or len(piece) >= smallest


def test_toxiproxy_validation_integers_strict_any_sign_any_toxicity():
    """What Toxiproxy 2.12 accepts and refuses, measured on the real server."""
    for attrs in ({"latency": 100.0}, {"latency": 1e2}, {"latency": "100"}, {"latency": True}, {"latency": 2**63}):
        with pytest.raises(ValueError):
            Toxic.model_validate({"type": "latency", "attributes": attrs})
    odd = Toxic.model_validate({"type": "latency", "toxicity": 2, "attributes": {"latency": -5, "jitter": -3}})
    assert odd.toxicity == 2 and odd.attributes.latency == -5
    assert odd.applies(random.Random(1)) and odd.attributes.delay(random.Random(1)) == 0.0
    never = Toxic.model_validate({"type": "latency", "toxicity": -1})
    assert not any(never.applies(random.Random(i)) for i in range(50))
