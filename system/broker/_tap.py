"""The broker's wire tap: every packet a client sends or is sent, as a flat dict, to an observer.

amqtt announces each packet to its plugin manager (``fire_event(PACKET_RECEIVED/SENT)``) and
each session's end (``CLIENT_DISCONNECTED``). The tap wraps that one method of one broker's
plugin manager and calls the observer synchronously before passing the event on: no task,
no await and no frame of its own, so watching changes nothing in the order the broker does things (same trace hash).
Works for both flavors. Records (``type`` is the packet, ``dir`` "in" = from the client):

- ``connect``: client, clean, keepalive, session_present, will (topic/qos/retain/hash), on the
  accepted CONNACK; ``CONNACK`` with ``rc`` when refused.
- ``PUBLISH``: topic, qos, pid, dup, retain, size, hash (blake2b-64 of the payload).
- ``PUBACK`` ``PUBREC`` ``PUBREL`` ``PUBCOMP`` ``UNSUBACK``: pid. ``SUBSCRIBE``: pid, filters
  ([filter, qos]); ``SUBACK``: pid, codes; ``UNSUBSCRIBE``: pid, filters; ``DISCONNECT``.
- ``gone``: the session's connection ended; ``graceful`` if a DISCONNECT came first.

PINGREQ/PINGRESP are left out (they say nothing about messages and are most of an idle
client's traffic).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any

from amqtt.events import BrokerEvents, MQTTEvents
from amqtt.mqtt.packet import (
    CONNACK,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
)

WireObserver = Callable[[dict[str, Any]], None]

_NAMES = {PUBACK: "PUBACK", PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", UNSUBACK: "UNSUBACK", DISCONNECT: "DISCONNECT"}
_SKIP = {PINGREQ, PINGRESP}


def payload_hash(data: bytes | bytearray | None) -> str:
    return hashlib.blake2b(bytes(data or b""), digest_size=8).hexdigest()


def _pid(packet: Any) -> int | None:
    return getattr(packet.variable_header, "packet_id", None)


def _packet(packet: Any, session: Any, direction: str) -> dict[str, Any] | None:
    kind = packet.fixed_header.packet_type
    if kind in _SKIP:
        return None
    client = getattr(session, "client_id", None)
    if kind == PUBLISH:
        data = packet.data
        return {"event": "mqtt", "type": "PUBLISH", "dir": direction, "client": client, "topic": packet.topic_name,
                "qos": packet.qos or 0, "pid": packet.packet_id, "dup": bool(packet.dup_flag), "retain": bool(packet.retain_flag),
                "size": len(data or b""), "hash": payload_hash(data)}
    if kind == CONNACK:
        if session is None or packet.return_code:
            return {"event": "mqtt", "type": "CONNACK", "dir": direction, "client": client, "rc": packet.return_code}
        will = {"will_topic": session.will_topic, "will_qos": session.will_qos, "will_retain": bool(session.will_retain),
                "will_hash": payload_hash(session.will_message)} if session.will_flag else {}
        return {"event": "mqtt", "type": "connect", "dir": direction, "client": client, "clean": bool(session.clean_session),
                "keepalive": session.keep_alive, "session_present": bool(packet.session_parent), **will}
    if kind == SUBSCRIBE:
        return {"event": "mqtt", "type": "SUBSCRIBE", "dir": direction, "client": client, "pid": _pid(packet),
                "filters": [[t, q] for t, q in packet.payload.topics]}
    if kind == SUBACK:
        return {"event": "mqtt", "type": "SUBACK", "dir": direction, "client": client, "pid": _pid(packet),
                "codes": list(packet.payload.return_codes)}
    if kind == UNSUBSCRIBE:
        return {"event": "mqtt", "type": "UNSUBSCRIBE", "dir": direction, "client": client, "pid": _pid(packet),
                "filters": list(packet.payload.topics)}
    name = _NAMES.get(kind)
    if name is None:  # CONNECT: recorded with its CONNACK, when the broker knows the session
        return None
    out = {"event": "mqtt", "type": name, "dir": direction, "client": client}
    pid = _pid(packet) if packet.variable_header is not None else None
    if pid is not None:
        out["pid"] = pid
    return out


def tap(broker: Any, observer: WireObserver) -> None:
    """Make ``broker`` (an amqtt ``Broker``, before ``start()``) report its wire to ``observer``."""
    manager = broker.plugins_manager
    fire = manager.fire_event
    graceful: set[int] = set()  # sessions (by id()) whose client sent DISCONNECT

    received, sent, gone = MQTTEvents.PACKET_RECEIVED, MQTTEvents.PACKET_SENT, BrokerEvents.CLIENT_DISCONNECTED

    # Not a coroutine of its own: it records, then hands back the original's coroutine for the
    # caller to await, so a tapped event costs one dict and no extra frame on the loop.
    def fire_event(event_name: Any, *, wait: bool = False, **kw: Any) -> Any:
        try:
            if event_name is received or event_name is sent:
                session = kw.get("session")
                record = _packet(kw["packet"], session, "in" if event_name is received else "out")
                if record is not None:
                    if record["type"] == "DISCONNECT" and session is not None:
                        graceful.add(id(session))
                    observer(record)
            elif event_name is gone:
                session = kw.get("client_session")
                observer({"event": "mqtt", "type": "gone", "client": kw.get("client_id"), "graceful": id(session) in graceful})
                graceful.discard(id(session))
        except Exception as exc:  # noqa: BLE001 - a tap or observer bug must never break the broker
            with contextlib.suppress(Exception):
                observer({"event": "mqtt", "type": "tap-error", "error": f"{type(exc).__name__}: {exc}"})
        return fire(event_name, wait=wait, **kw)

    manager.fire_event = fire_event
