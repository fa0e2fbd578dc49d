"""Hypothesis fuzz of packet bytes: whatever one client sends, the broker keeps serving everyone.

One broker (in a thread with its own event loop) serves every example, so a thousand examples
stay fast; after each example a fresh client must still connect and get its PINGRESP.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from system.broker import EmbeddedBroker
from system.broker.conformance._wire import (
    CONNECT,
    PINGREQ,
    connect_bytes,
    packet,
    publish_bytes,
    subscribe_bytes,
    varint,
)


async def _cancel_the_rest() -> list[str]:
    """Tasks still running after the broker stopped (their names), cancelled so the loop can close."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [repr(t.get_coro()) for t in tasks]


class _BrokerThread:
    def __init__(self, flavor: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.broker = EmbeddedBroker("127.0.0.1", 0, flavor=flavor)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> _BrokerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.broker.start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(60)
        self.leftover = asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module", params=["squall", "amqtt"])
def served(request: pytest.FixtureRequest) -> Iterator[_BrokerThread]:
    with _BrokerThread(request.param) as b:
        yield b


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def _fresh_client_pings(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(connect_bytes("fuzz-witness"))
        assert _recv_exactly(s, 4)[3] == 0, "CONNACK refused"
        s.sendall(packet(PINGREQ, 0, b""))
        assert _recv_exactly(s, 2) == b"\xd0\x00", "no PINGRESP"


_types = st.integers(0, 15)
_flags = st.integers(0, 15)
_small = st.binary(max_size=64)
_packets = st.one_of(
    st.builds(packet, _types, _flags, _small),  # any type and flags, arbitrary body
    st.builds(lambda t, f, n, b: bytes([(t << 4) | f]) + varint(n) + b, _types, _flags, st.integers(0, 268435455), _small),
    st.builds(lambda t, b: publish_bytes(t, b, qos=1, pid=1), st.binary(max_size=20), _small),
    st.builds(lambda f, q: subscribe_bytes(1, [(f, q)]), st.binary(max_size=20), st.integers(0, 255)),
    st.builds(lambda b: bytes([0x30]) + bytes([0xFF]) * 4 + b, _small),  # remaining length over 4 bytes
    st.binary(max_size=128),
)


@st.composite
def _sessions(draw: st.DrawFn) -> bytes:
    """A client's whole byte stream: usually a valid CONNECT first, then fuzz; sometimes fuzz only."""
    head = connect_bytes("fuzz", keepalive=draw(st.integers(0, 3))) if draw(st.booleans()) else b""
    body = b"".join(draw(st.lists(_packets, max_size=4)))
    mutate = draw(st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=3))
    raw = bytearray(head + body)
    for pos, value in mutate:  # flip bytes, the CONNECT included
        if raw:
            raw[pos % len(raw)] = value
    return bytes(raw)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stream=_sessions())
def test_fuzzed_bytes_never_stop_the_broker(served: _BrokerThread, stream: bytes) -> None:
    port = served.broker.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(stream)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the broker may close first: that is fine
    _fresh_client_pings(port)
    assert served.thread.is_alive()


def test_connect_type_constant_is_what_the_witness_sends() -> None:
    assert connect_bytes("x")[0] >> 4 == CONNECT
