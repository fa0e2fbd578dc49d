"""Input checks amqtt's decoders skip: a malformed packet must close its connection.

amqtt 0.12.1 logs and keeps reading after a bad remaining length, decodes ill-formed UTF-8 to
the ``repr`` of the bytes, and accepts flags, packet ids and will settings the spec calls
malformed. squall's handler reads each packet's body whole, checks it here, and only then hands
it to amqtt's decoders through ``BytesReader``.
"""

from __future__ import annotations

from amqtt.adapters import ReaderAdapter
from amqtt.errors import NoDataError
from amqtt.mqtt.packet import (
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBSCRIBE,
    UNSUBSCRIBE,
    MQTTFixedHeader,
)

MAX_PACKET = 16 * 1024 * 1024  # a larger packet closes the connection rather than filling memory
# packets whose body has a fixed size: anything else is malformed [MQTT-4.8.0-1]
_BODY_LENGTH = {PINGREQ: 0, DISCONNECT: 0, PUBACK: 2, PUBREC: 2, PUBREL: 2, PUBCOMP: 2}
_MQTT_3_1_1 = 4  # protocol level; other levels are refused with CONNACK 0x01 by amqtt [MQTT-3.1.2-2]


def header_violation(header: MQTTFixedHeader) -> str | None:
    """Why a fixed header is malformed, or None. [MQTT-2.2.2-2], [MQTT-3.3.1-4], [MQTT-3.3.1-2]."""
    t, flags = header.packet_type, header.flags
    if t == PUBLISH:
        qos = (flags >> 1) & 3
        if qos == 3:
            return "PUBLISH with QoS 3"
        return "QoS 0 PUBLISH with DUP=1 [MQTT-3.3.1-2]" if qos == 0 and flags & 0x08 else None
    if t in _BODY_LENGTH and header.remaining_length != _BODY_LENGTH[t]:
        return f"packet type {t} with remaining length {header.remaining_length}, must be {_BODY_LENGTH[t]}"
    if t in (SUBSCRIBE, UNSUBSCRIBE, PUBREL):
        return None if flags == 0x02 else f"packet type {t} with flags {flags:04b}, must be 0010"
    return None if flags == 0 else f"packet type {t} with flags {flags:04b}, must be 0000"


class BytesReader(ReaderAdapter):
    """A packet body already read off the wire, handed to amqtt's decoders."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int = -1) -> bytes:
        n = len(self._data) if n < 0 else n
        if n > len(self._data):
            raise NoDataError("packet body shorter than its fields")
        head, self._data = self._data[:n], self._data[n:]
        return head

    def feed_eof(self) -> None:
        pass


def check_body(ptype: int, flags: int, body: bytes) -> None:
    """Raise ValueError for what amqtt's decoders let through: ill-formed UTF-8 or U+0000 in a
    string [MQTT-1.5.3-1, -2] (amqtt turns bad UTF-8 into the ``repr`` of the bytes), a packet
    id of 0 [MQTT-2.3.1-1], SUBSCRIBE/UNSUBSCRIBE without filters [MQTT-3.8.3-3, 3.10.3-2], a
    requested QoS with reserved bits [MQTT-3.8.3-4], CONNECT will flags that contradict
    each other [MQTT-3.1.2-13, -14, -15], and a 3.1.1 CONNECT whose payload lacks a field its
    flags announce [MQTT-3.1.2-9, -19, -21], has bytes after its last field [MQTT-3.1.3-1],
    or names a will topic that is empty or has a wildcard [MQTT-4.7.1-1, 4.7.3-1]."""

    def string(off: int) -> int:
        n = int.from_bytes(body[off : off + 2], "big")
        raw = body[off + 2 : off + 2 + n]
        if off + 2 > len(body) or len(raw) < n:
            raise ValueError("string field runs past the end of the packet")
        if "\x00" in raw.decode("utf-8"):
            raise ValueError("U+0000 in a string field")
        return off + 2 + n

    def binary(off: int) -> int:
        n = int.from_bytes(body[off : off + 2], "big")
        if off + 2 + n > len(body):
            raise ValueError("binary field runs past the end of the packet")
        return off + 2 + n

    def packet_id(off: int) -> None:
        if int.from_bytes(body[off : off + 2], "big") == 0:
            raise ValueError("packet identifier 0")

    if ptype == PUBLISH:
        off = string(0)
        if (flags >> 1) & 3:
            packet_id(off)
    elif ptype in (SUBSCRIBE, UNSUBSCRIBE):
        packet_id(0)
        if len(body) <= 2:
            raise ValueError("SUBSCRIBE/UNSUBSCRIBE without a topic filter")
        off = 2
        while off < len(body):
            off = string(off)
            if ptype == SUBSCRIBE:
                if off >= len(body) or body[off] > 2:
                    raise ValueError("SUBSCRIBE requested QoS missing or with reserved bits set")
                off += 1
    elif ptype == CONNECT:
        off = string(0)
        level = body[off] if off < len(body) else 0
        connect_flags = body[off + 1] if off + 1 < len(body) else 0
        will, will_qos = connect_flags & 0x04, (connect_flags >> 3) & 3
        if will_qos == 3 or (not will and connect_flags & 0x38):
            raise ValueError("CONNECT will QoS/retain inconsistent with the will flag")
        off = string(off + 4)  # client id
        if level != _MQTT_3_1_1:  # another protocol's layout: amqtt refuses it with CONNACK 0x01
            return
        if will:
            end = string(off)
            topic = body[off + 2 : end]
            if not topic or b"+" in topic or b"#" in topic:
                raise ValueError(f"CONNECT will topic {topic!r} is not a valid topic name")
            off = binary(end)  # will message
        if connect_flags & 0x80:
            off = string(off)  # user name
        if connect_flags & 0x40:
            off = binary(off)  # password: binary data
        if off != len(body):
            raise ValueError(f"CONNECT has {len(body) - off} bytes after its last field")


async def read_body(reader: ReaderAdapter, header: MQTTFixedHeader) -> bytes:
    if header.remaining_length > MAX_PACKET:
        raise ValueError(f"packet of {header.remaining_length} bytes exceeds the {MAX_PACKET}-byte limit")
    body = await reader.read(header.remaining_length) if header.remaining_length else b""
    check_body(header.packet_type, header.flags, body)
    return body
