"""A deliberately small MQTT 3.1.1 client over asyncio streams, encoding every packet by hand.

The conformance checks talk to the broker through this and nothing else, so a failure is
the broker's and not a client library's. It does only what a check asks: no automatic
acknowledgement, no retries, no keepalive pings.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
    8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
    14: "DISCONNECT",
}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_bytes(
    client_id: str | bytes,
    *,
    clean: bool = True,
    keepalive: int = 0,
    will: tuple[str, bytes, int, bool] | None = None,
    username: str | None = None,
    password: str | None = None,
    level: int = 4,
    protocol: bytes = b"MQTT",
) -> bytes:
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += utf8(topic) + utf8(message)
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)
    head = utf8(protocol) + bytes([level, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, 0, head + payload)


def publish_bytes(
    topic: str | bytes, payload: bytes, *, qos: int = 0, retain: bool = False, dup: bool = False, pid: int | None = None
) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = utf8(topic) + (struct.pack("!H", pid or 1) if qos else b"") + payload
    return packet(PUBLISH, flags, body)


def subscribe_bytes(pid: int, filters: Sequence[tuple[str | bytes, int]]) -> bytes:
    body = struct.pack("!H", pid) + b"".join(utf8(f) + bytes([q]) for f, q in filters)
    return packet(SUBSCRIBE, 0x02, body)


def ack_bytes(ptype: int, pid: int) -> bytes:
    return packet(ptype, 0x02 if ptype == PUBREL else 0, struct.pack("!H", pid))


@dataclass(frozen=True)
class Packet:
    """One packet as read off the wire."""

    type: int
    flags: int
    body: bytes

    @property
    def name(self) -> str:
        return _NAMES.get(self.type, f"type{self.type}")

    @property
    def pid(self) -> int:
        if self.type == PUBLISH:
            n = struct.unpack("!H", self.body[:2])[0]
            return struct.unpack("!H", self.body[2 + n : 4 + n])[0] if self.qos else 0
        return struct.unpack("!H", self.body[:2])[0]

    # PUBLISH fields
    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 3

    @property
    def retain(self) -> bool:
        return bool(self.flags & 1)

    @property
    def dup(self) -> bool:
        return bool(self.flags & 8)

    @property
    def topic(self) -> str:
        n = struct.unpack("!H", self.body[:2])[0]
        return self.body[2 : 2 + n].decode()

    @property
    def payload(self) -> bytes:
        n = struct.unpack("!H", self.body[:2])[0]
        return self.body[2 + n + (2 if self.qos else 0) :]

    # CONNACK / SUBACK fields
    @property
    def session_present(self) -> bool:
        return bool(self.body[0] & 1)

    @property
    def return_code(self) -> int:
        return self.body[1]

    @property
    def granted(self) -> list[int]:
        return list(self.body[2:])

    def __repr__(self) -> str:
        if self.type == PUBLISH:
            return (
                f"PUBLISH(topic={self.topic!r}, payload={self.payload!r}, qos={self.qos}, "
                f"retain={int(self.retain)}, dup={int(self.dup)}, pid={self.pid})"
            )
        return f"{self.name}({self.body.hex()})"


class Closed(Exception):
    """The broker closed the connection while a packet was expected."""


@dataclass
class RawClient:
    """One TCP connection to the broker, speaking bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    backlog: list[Packet] = field(default_factory=list)
    eof: bool = False
    timeout: float = 10.0  # how long to wait for an expected packet
    session_present: bool = False  # from the last CONNACK
    # what this client leaves on the broker, for Ctx to clear after the check
    persistent_ids: set[str] = field(default_factory=set)
    retained_topics: set[str] = field(default_factory=set)

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 10.0) -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read_one(self) -> Packet | None:
        try:
            first = await self.reader.readexactly(1)
            length, shift = 0, 0
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof = True
            return None
        return Packet(first[0] >> 4, first[0] & 0x0F, body)

    async def recv(self, *types: int, timeout: float | None = None) -> Packet:
        """The next packet of one of ``types`` (any type if none); others wait in the backlog."""
        for i, p in enumerate(self.backlog):
            if not types or p.type in types:
                return self.backlog.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        while True:
            if self.eof:
                raise Closed("connection closed by the broker")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            p = await asyncio.wait_for(self._read_one(), remaining)  # type: ignore[arg-type]
            if p is None:
                raise Closed("connection closed by the broker")
            if not types or p.type in types:
                return p
            self.backlog.append(p)

    async def connect(self, client_id: str | bytes, **kw: object) -> Packet:
        if kw.get("clean", True) is False and isinstance(client_id, str) and client_id:
            self.persistent_ids.add(client_id)
        will = kw.get("will")
        if isinstance(will, tuple) and will[3]:
            self.retained_topics.add(will[0])
        await self.send(connect_bytes(client_id, **kw))  # type: ignore[arg-type]
        ack = await self.recv(CONNACK)
        self.session_present = ack.session_present
        return ack

    async def subscribe(self, filters: list[tuple[str, int]], pid: int = 1) -> list[int]:
        await self.send(subscribe_bytes(pid, filters))
        return (await self.recv(SUBACK)).granted

    async def unsubscribe(self, filters: list[str], pid: int = 1) -> None:
        await self.send(packet(UNSUBSCRIBE, 0x02, struct.pack("!H", pid) + b"".join(utf8(f) for f in filters)))
        await self.recv(UNSUBACK)

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, pid: int = 1) -> None:
        """Publish and complete the QoS flow from the publisher's side."""
        if retain:
            self.retained_topics.add(topic)
        await self.send(publish_bytes(topic, payload, qos=qos, retain=retain, pid=pid))
        if qos == 1:
            await self.recv(PUBACK)
        elif qos == 2:
            await self.recv(PUBREC)
            await self.send(ack_bytes(PUBREL, pid))
            await self.recv(PUBCOMP)

    async def ack(self, p: Packet) -> None:
        """Acknowledge a received PUBLISH as its QoS requires (QoS 2: PUBREC, PUBREL awaited, PUBCOMP)."""
        if p.qos == 1:
            await self.send(ack_bytes(PUBACK, p.pid))
        elif p.qos == 2:
            await self.send(ack_bytes(PUBREC, p.pid))
            rel = await self.recv(PUBREL)
            await self.send(ack_bytes(PUBCOMP, rel.pid))

    async def messages_until(self, marker: bytes, timeout: float | None = None, ack: bool = True) -> list[Packet]:
        """All PUBLISHes up to and including the one whose payload is ``marker``."""
        got: list[Packet] = []
        while True:
            p = await self.recv(PUBLISH, timeout=timeout)
            if ack:
                await self.ack(p)
            got.append(p)
            if p.payload == marker:
                return got

    async def closed(self, timeout: float | None = None) -> bool:
        """True once the broker closes the connection; packets meanwhile go to the backlog."""
        try:
            while True:
                self.backlog.append(await self.recv(255, timeout=timeout))
        except Closed:
            return True
        except TimeoutError:
            return False

    async def ping(self, timeout: float | None = None) -> bool:
        await self.send(packet(PINGREQ, 0, b""))
        try:
            await self.recv(PINGRESP, timeout=timeout)
            return True
        except (Closed, TimeoutError):
            return False

    async def disconnect(self) -> None:
        try:
            await self.send(packet(DISCONNECT, 0, b""))
        except ConnectionError:
            pass
        await self.abort()

    async def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT, as a crashed client would."""
        self.writer.transport.abort()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
