"""How long one connection waits for the broker's answers, against brokers that misbehave.

On a slow link an answer may be late by any amount (test_bus_sim shows the fleet riding it
out); these pin the other side: an answer the broker will never send is still given up on,
so a broker that read a request and dropped it cannot stall the client forever. The broker
here is a few lines of MQTT in squall's simulated world, so the timing is exact.
"""

from __future__ import annotations

import asyncio

import pytest

from system import BusSettings
from system.bus._link import Link, LinkClosed

sim = pytest.importorskip("sim", reason="squall's simulated world (sim.World) is not available")

ACK_TIMEOUT = 4.0
CONNACK = bytes([0x20, 0x02, 0x00, 0x00])
PINGRESP = bytes([0xD0, 0x00])


async def _packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one MQTT packet; return its type (the high nibble of the first byte) and body."""
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first >> 4, await reader.readexactly(length)


def _broker(pings: bool, suback_after: float | None = None) -> object:
    """Accepts the connection; answers PINGREQ only if ``pings``; answers SUBSCRIBE only
    after ``suback_after`` seconds (never if None), PUBLISH never."""

    async def suback(writer: asyncio.StreamWriter, packet_id: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        writer.write(bytes([0x90, 0x03]) + packet_id + bytes([0x01]))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        late: set[asyncio.Task[None]] = set()
        try:
            while True:
                kind, body = await _packet(reader)
                if kind == 1:  # CONNECT
                    writer.write(CONNACK)
                elif kind == 12 and pings:  # PINGREQ
                    writer.write(PINGRESP)
                elif kind == 8 and suback_after is not None:  # SUBSCRIBE
                    late.add(asyncio.create_task(suback(writer, body[:2], suback_after)))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        await asyncio.start_server(serve, "broker", 1883)
        await asyncio.Event().wait()

    return run


def _ask(pings: bool, request: str, suback_after: float | None = None) -> tuple[BaseException | None, float, Link]:
    world = sim.World(seed=1)
    out: dict[str, object] = {}

    async def main() -> None:
        await asyncio.sleep(0.1)
        settings = BusSettings(host="broker", port=1883, client_id="dev", ack_timeout=ACK_TIMEOUT)
        link = Link(settings, will_topic="squall/availability/dev", will_payload=b"{}")
        await link.open()
        started = asyncio.get_running_loop().time()
        try:
            if request == "subscribe":
                await link.subscribe([("a/#", 1)])
            else:
                await link.publish("a/b", b"{}", 1, False)
        except (TimeoutError, LinkClosed) as exc:
            out["error"] = exc
        out["after"] = asyncio.get_running_loop().time() - started
        out["link"] = link
        await link.close()

    world.host("broker").spawn(_broker(pings, suback_after))
    result = world.run(main, until=600)
    assert result.completed, result.errors
    return out.get("error"), out["after"], out["link"]  # type: ignore[return-value]


def test_a_subscribe_the_broker_read_and_dropped_times_out_although_it_answers_pings() -> None:
    error, after, _ = _ask(pings=True, request="subscribe")
    assert isinstance(error, TimeoutError) and "later PINGREQ" in str(error)
    # ack_timeout for the answer, a PINGREQ barrier answered at once, ack_timeout more.
    assert 2 * ACK_TIMEOUT <= after < 2 * ACK_TIMEOUT + 1


def test_a_silent_broker_times_a_subscribe_out() -> None:
    error, after, _ = _ask(pings=False, request="subscribe")
    assert isinstance(error, TimeoutError) and "nothing at all" in str(error)
    assert 2 * ACK_TIMEOUT <= after < 2 * ACK_TIMEOUT + 1


def test_a_publish_the_broker_never_acknowledges_drops_the_connection() -> None:
    # MQTT 3.1.1 resends a QoS 1 message only on a new connection, so this one must go.
    error, after, link = _ask(pings=True, request="publish")
    assert isinstance(error, LinkClosed) and "PUBACK" in str(error)
    assert 2 * ACK_TIMEOUT <= after < 2 * ACK_TIMEOUT + 1
    assert not link.is_open


def test_an_answer_after_the_barrier_but_within_the_grace_is_taken_at_once() -> None:
    late = 1.5 * ACK_TIMEOUT  # after the barrier PINGRESP, before the grace runs out
    error, after, _ = _ask(pings=True, request="subscribe", suback_after=late)
    assert error is None
    assert late <= after < late + 0.1
