"""squall's broker: amqtt 0.12.1 with its MQTT 3.1.1 violations fixed, by subclassing only.

Nothing here patches amqtt globally; only brokers built from ``SquallBroker`` change. Each fix
is pinned by the conformance check of the same statement (system/broker/conformance):

=====================  =====================================================================
statement              stock amqtt 0.12.1 does / squall's fix
=====================  =====================================================================
MQTT-4.4.0-1           drops an unacknowledged outgoing PUBLISH (QoS 1/2) or PUBREL when the
                       subscriber disconnects or after 5 s (amqtt issue 401) / keep it in the
                       session until acknowledged, re-send with DUP=1 (PUBREL as is) on reconnect
MQTT-3.1.2-4, -5       forgets anonymous sessions on disconnect (every session is anonymous when
                       allow-anonymous is on) / keep every CleanSession=0 session, queue QoS 1/2
MQTT-3.1.2-6           keeps a CleanSession=1 session for up to 1 s and lets a CleanSession=0
                       connection resume it / delete it when its connection ends, never resume it
MQTT-3.1.4-2           a CleanSession=1 CONNECT with a connected ClientId leaves the old
                       connection open; a CleanSession=0 take-over marks the new session
                       disconnected / close the old connection and retire it first
MQTT-3.8.4-6           delivers at the subscription's QoS (upgrades QoS 0 to 1/2); retained QoS 0
                       likewise / deliver at min(published QoS, granted QoS)
MQTT-3.8.4-3           re-subscribing the same filter keeps the old QoS / replace it
MQTT-3.3.1-6           on every CONNECT sends retained messages matching any client's
                       subscriptions / retained messages only for the new subscription
MQTT-3.3.1-9           messages queued while away are sent with RETAIN=1 / RETAIN=0
MQTT-3.1.2-24, -8      never disconnects a silent client (keepalive read timeout ignored), so
                       its will is never sent / close after 1.5 x keepalive, publish the will
MQTT-3.1.0-1           waits forever when the first packet is not CONNECT / close at once
MQTT-4.8.0-1, 4.7.1-1  keeps the connection open after a malformed packet (bad remaining length,
MQTT-1.5.3-1, 3.3.1-4  invalid UTF-8, PUBLISH QoS 3 or with a wildcard topic, SUBSCRIBE flags
MQTT-3.8.1-1           not 0010) / close that connection; everyone else is unaffected
MQTT-3.1.2-13, -14     accepts a CONNECT whose will QoS/retain contradict the will flag, or
MQTT-3.8.3-3           will QoS 3; a SUBSCRIBE/UNSUBSCRIBE without filters; packet id 0
MQTT-3.10.3-2          / malformed: close that connection
MQTT-2.3.1-1
MQTT-4.7.3-1           grants a zero-length topic filter / SUBACK 0x80
MQTT-4.3.3-2           ignores a PUBREL for an unknown packet id (the publisher's flow never
                       completes) / always answer PUBCOMP; a re-sent QoS 2 PUBLISH only gets PUBREC
MQTT-3.1.2-10          publishes the will although DISCONNECT arrived, when DISCONNECT is read
                       before the session loop asks for it (e.g. CONNECT and DISCONNECT in one
                       segment: the resolved waiter is reset to None) / keep the resolved waiter
=====================  =====================================================================

Also: an unauthenticated client's session is not registered, and delivery tasks never block a
client's message loop (retained and queued messages are sent from tasks, not awaited).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker, RetainedApplicationMessage
from amqtt.contexts import Action, ListenerConfig
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.events import BrokerEvents, MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.mqtt.disconnect import DisconnectPacket
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
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import ProtocolHandler
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import INCOMING, ApplicationMessage, IncomingApplicationMessage, OutgoingApplicationMessage, Session
from amqtt.utils import gen_client_id

_log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 30.0  # a connection that never sends CONNECT is closed after this
_KEEPALIVE_GRACE = 1.5  # [MQTT-3.1.2-24]
_TAKEOVER_TIMEOUT = 10.0
_MAX_PACKET = 16 * 1024 * 1024  # a larger packet closes the connection rather than filling memory


def _header_violation(header: MQTTFixedHeader) -> str | None:
    """Why a fixed header is malformed, or None. [MQTT-2.2.2-2], [MQTT-3.3.1-4]."""
    t, flags = header.packet_type, header.flags
    if t == PUBLISH:
        return "PUBLISH with QoS 3" if (flags >> 1) & 3 == 3 else None
    if t in (SUBSCRIBE, UNSUBSCRIBE, PUBREL):
        return None if flags == 0x02 else f"packet type {t} with flags {flags:04b}, must be 0010"
    return None if flags == 0 else f"packet type {t} with flags {flags:04b}, must be 0000"


class _PrefixedReader(ReaderAdapter):
    """Hands back bytes already read (the CONNECT's fixed header) before the stream's own."""

    def __init__(self, prefix: bytes, inner: ReaderAdapter) -> None:
        self._prefix = prefix
        self._inner = inner

    async def read(self, n: int = -1) -> bytes:
        if self._prefix:
            head, self._prefix = (self._prefix, b"") if n < 0 or n >= len(self._prefix) else (self._prefix[:n], self._prefix[n:])
            rest = b"" if n < 0 or len(head) == n else await self._inner.read(n - len(head))
            return head + rest
        return await self._inner.read(n)

    def feed_eof(self) -> None:
        self._inner.feed_eof()


class _BytesReader(ReaderAdapter):
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


def _check_body(ptype: int, flags: int, body: bytes) -> None:
    """Raise ValueError for what amqtt's decoders let through: ill-formed UTF-8 or U+0000 in a
    string [MQTT-1.5.3-1, -2] (amqtt turns bad UTF-8 into the ``repr`` of the bytes), a packet
    id of 0 [MQTT-2.3.1-1], SUBSCRIBE/UNSUBSCRIBE without filters [MQTT-3.8.3-3, 3.10.3-2], a
    requested QoS with reserved bits [MQTT-3.8.3-4], and CONNECT will flags that contradict
    each other [MQTT-3.1.2-13, -14, -15]."""

    def string(off: int) -> int:
        n = int.from_bytes(body[off : off + 2], "big")
        raw = body[off + 2 : off + 2 + n]
        if off + 2 > len(body) or len(raw) < n:
            raise ValueError("string field runs past the end of the packet")
        if "\x00" in raw.decode("utf-8"):
            raise ValueError("U+0000 in a string field")
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
        connect_flags = body[off + 1] if off + 1 < len(body) else 0
        will, will_qos = connect_flags & 0x04, (connect_flags >> 3) & 3
        if will_qos == 3 or (not will and connect_flags & 0x38):
            raise ValueError("CONNECT will QoS/retain inconsistent with the will flag")
        off = string(off + 4)  # client id
        if will:
            off = string(off)  # will topic
            off += 2 + int.from_bytes(body[off : off + 2], "big")  # will message: binary
        if connect_flags & 0x80:
            string(off)  # user name; the password is binary data


async def _read_body(reader: ReaderAdapter, header: MQTTFixedHeader) -> bytes:
    if header.remaining_length > _MAX_PACKET:
        raise ValueError(f"packet of {header.remaining_length} bytes exceeds the {_MAX_PACKET}-byte limit")
    body = await reader.read(header.remaining_length) if header.remaining_length else b""
    _check_body(header.packet_type, header.flags, body)
    return body


class SquallHandler(BrokerProtocolHandler):
    """amqtt's broker-side protocol handler with squall's delivery and input fixes."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.squall_stopped = False
        self.squall_done = asyncio.Event()  # set once the broker has finished with this connection

    # ---- the disconnect waiter: created before the reader runs, resolved once, never discarded.
    # amqtt creates it after the reader started and resets it to None once resolved, so a
    # DISCONNECT read early (CONNECT and DISCONNECT in one segment) reads back as "no
    # DISCONNECT" and the will is published [MQTT-3.1.2-10].

    async def start(self) -> None:
        if self._disconnect_waiter is None:
            self._disconnect_waiter = asyncio.get_running_loop().create_future()
        await ProtocolHandler.start(self)  # not BrokerProtocolHandler.start: it replaces a resolved waiter

    async def handle_disconnect(self, disconnect: DisconnectPacket | None) -> None:
        if self._disconnect_waiter is not None and not self._disconnect_waiter.done():
            self._disconnect_waiter.set_result(disconnect)

    async def stop(self) -> None:
        self.squall_stopped = True
        waiter = self._disconnect_waiter
        await ProtocolHandler.stop(self)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        while not self._pending_subscriptions.empty():
            self._pending_subscriptions.get_nowait()
        while not self._pending_unsubscriptions.empty():
            self._pending_unsubscriptions.get_nowait()

    async def _retry_deliveries(self) -> None:
        """Re-sending is scheduled by the broker once the session is connected (``resend_inflight``)."""

    def resend_inflight(self) -> list[asyncio.Task[None]]:
        """[MQTT-4.4.0-1] re-send unacknowledged PUBLISH (DUP=1) and PUBREL, in their original order."""
        assert self.session is not None
        return [asyncio.ensure_future(self._handle_message_flow(m)) for m in list(self.session.inflight_out.values())]

    # ---- outgoing flows: a message leaves the session only when acknowledged

    async def _wait(self, waiters: dict[int, asyncio.Future[Any]], pid: int, packet: Any) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiters[pid] = waiter
        try:
            await self._send_packet(packet)
            if self.squall_stopped:  # the connection is gone: keep the message for the next one
                raise asyncio.CancelledError
            return await waiter
        finally:
            if waiters.get(pid) is waiter:
                del waiters[pid]

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING:
            await super()._handle_qos1_message_flow(app_message)
            return
        assert self.session is not None
        pid = app_message.packet_id
        self.session.inflight_out[pid] = app_message
        packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
        app_message.publish_packet = packet
        app_message.puback_packet = await self._wait(self._puback_waiters, pid, packet)
        self.session.inflight_out.pop(pid, None)

    async def _handle_qos2_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING:  # handled by handle_publish / handle_pubrel
            return
        assert self.session is not None
        pid = app_message.packet_id
        self.session.inflight_out[pid] = app_message
        if app_message.pubrec_packet is None:
            packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
            app_message.publish_packet = packet
            app_message.pubrec_packet = await self._wait(self._pubrec_waiters, pid, packet)
        app_message.pubrel_packet = PubrelPacket.build(pid)
        app_message.pubcomp_packet = await self._wait(self._pubcomp_waiters, pid, app_message.pubrel_packet)
        self.session.inflight_out.pop(pid, None)

    # ---- incoming QoS 2: store on PUBLISH, deliver on PUBREL, always answer [MQTT-4.3.3-2]

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        assert self.session is not None
        if publish_packet.qos != QOS_2:
            await super().handle_publish(publish_packet)
            return
        pid = publish_packet.packet_id
        if pid not in self.session.inflight_in:
            msg = IncomingApplicationMessage(
                pid, publish_packet.topic_name, QOS_2, publish_packet.data, publish_packet.retain_flag
            )
            msg.publish_packet = publish_packet
            self.session.inflight_in[pid] = msg
        await self._send_packet(PubrecPacket.build(pid))

    async def handle_pubrel(self, pubrel: PubrelPacket) -> None:
        assert self.session is not None
        msg = self.session.inflight_in.pop(pubrel.packet_id, None)
        if msg is not None:
            msg.pubrel_packet = pubrel
            await self.session.delivered_message_queue.put(msg)
        await self._send_packet(PubcompPacket.build(pubrel.packet_id))

    # ---- the reader: malformed input closes the connection; keepalive enforced at 1.5x

    async def _reader_loop(self) -> None:  # noqa: C901 - one dispatch table, kept in one place
        assert self.session is not None and self._reader_ready is not None
        keepalive = self.session.keep_alive * _KEEPALIVE_GRACE if self.session.keep_alive > 0 else None
        handlers = {
            PUBLISH: self.handle_publish, PUBACK: self.handle_puback, PUBREC: self.handle_pubrec,
            PUBREL: self.handle_pubrel, PUBCOMP: self.handle_pubcomp, SUBSCRIBE: self.handle_subscribe,
            UNSUBSCRIBE: self.handle_unsubscribe, PINGREQ: self.handle_pingreq,
        }
        why = "end of stream"
        self._reader_ready.set()
        try:
            while self.reader is not None:
                try:
                    header = await asyncio.wait_for(MQTTFixedHeader.from_stream(self.reader), keepalive)
                except asyncio.TimeoutError:
                    why = f"silent for 1.5 x keepalive ({keepalive} s)"
                    break
                if header is None:
                    break
                why = _header_violation(header) or ""
                if why or header.packet_type not in handlers and header.packet_type != DISCONNECT:
                    why = why or f"packet type {header.packet_type} not allowed from a client"
                    break
                body = await _read_body(self.reader, header)
                packet = await packet_class(header).from_stream(_BytesReader(body), fixed_header=header)
                await self.plugins_manager.fire_event(MQTTEvents.PACKET_RECEIVED, packet=packet, session=self.session)
                if header.packet_type == DISCONNECT:
                    await self.handle_disconnect(packet)
                    why = "DISCONNECT"
                    break
                if header.packet_type == PUBLISH and (
                    not packet.topic_name or "+" in packet.topic_name or "#" in packet.topic_name
                ):
                    why = f"PUBLISH topic name {packet.topic_name!r} [MQTT-4.7.1-1] [MQTT-4.7.3-1]"
                    break
                await handlers[header.packet_type](packet)
        except asyncio.CancelledError:
            why = "stopped"
        except Exception as exc:  # noqa: BLE001 - any malformed input ends this connection only
            why = f"malformed input: {exc!r}"
        _log.debug("%s: closing connection: %s", self.session.client_id if self.session else None, why)
        await self.handle_connection_closed()
        self._reader_stopped.set()
        await self.stop()


@dataclass
class SessionState:
    """A CleanSession=0 session carried over a broker restart."""

    session: Session
    subscriptions: list[tuple[str, int]]
    queued: list[ApplicationMessage]


@dataclass
class BrokerState:
    """What squall's broker keeps across ``EmbeddedBroker.restart()``."""

    retained: dict[str, RetainedApplicationMessage] = field(default_factory=dict)
    sessions: list[SessionState] = field(default_factory=list)


class SquallBroker(Broker):
    """amqtt's Broker with squall's MQTT 3.1.1 fixes (see the module docstring's table)."""

    # ---- connection setup

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        try:
            header = await asyncio.wait_for(MQTTFixedHeader.from_stream(reader), _CONNECT_TIMEOUT)
            if header is None:
                raise NoDataError("connection closed before CONNECT")
            if header.packet_type != CONNECT:  # [MQTT-3.1.0-1]
                raise MQTTError(f"first packet is type {header.packet_type}, not CONNECT")
            body = await _read_body(reader, header)
            handler, session = await SquallHandler.init_from_connect(
                _PrefixedReader(header.to_bytes(), _BytesReader(body)), writer, self.plugins_manager
            )
        except Exception as exc:  # noqa: BLE001 - a malformed CONNECT closes this connection only
            try:
                await writer.close()
            except Exception:  # noqa: BLE001
                pass
            raise MQTTError(f"refused connection from {remote_address}:{remote_port}: {exc!r}") from None

        return handler, session


    async def _resolve_session(self, session: Session) -> Session:
        """Take over a connected client with the same id, then start or resume the session."""
        cid = session.client_id
        if cid:
            await self._take_over(cid)
        if session.clean_session:
            if cid:
                await self._delete_session(cid)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif cid in self._sessions and not self._sessions[cid][0].clean_session:
            stored, _ = self._sessions[cid]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                         "username", "password", "remote_address", "remote_port", "ssl_object"):
                setattr(stored, attr, getattr(session, attr))
            stored.clean_session = False
            session, session.parent = stored, 1
        else:
            await self._delete_session(cid)  # a leftover CleanSession=1 session is never resumed
            session.parent = 0
        return session

    async def _take_over(self, client_id: str) -> None:
        """[MQTT-3.1.4-2] close the connected client with this id and wait until it is retired."""
        session, handler = self._sessions.get(client_id, (None, None))
        if session is None or handler is None or session.transitions.state != "connected":
            return
        await handler.handle_connection_closed()
        await handler.stop()
        if isinstance(handler, SquallHandler):
            try:
                await asyncio.wait_for(handler.squall_done.wait(), _TAKEOVER_TIMEOUT)
            except asyncio.TimeoutError:
                _log.warning("take-over of %s: old connection did not finish in time", client_id)

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        assert isinstance(handler, SquallHandler)
        try:
            authenticated = await self._authenticate(client_session, self.listeners_config[listener_name])
            if not authenticated:  # refused: the session is neither registered nor taken over
                handler.attach(client_session, reader, writer)
                await handler.mqtt_connack_authorize(False)
                await writer.close()
                return
            client_session = await self._resolve_session(client_session)
            handler.attach(client_session, reader, writer)
            await handler.mqtt_connack_authorize(True)
            cid = client_session.client_id
            assert cid is not None
            self._sessions[cid] = (client_session, handler)
            await handler.start()
            if client_session.transitions.state == "connected":
                client_session.transitions.disconnect()
            # From here to the first await: no broadcast can slip in before what was waiting.
            client_session.transitions.connect()
            self._tasks_queue.extend(handler.resend_inflight())
            self._send_queued(client_session, handler)
            await self.plugins_manager.fire_event(
                BrokerEvents.CLIENT_CONNECTED, client_id=cid, client_session=client_session
            )
            await self._client_message_loop(client_session, handler)
            if self._is_current(client_session, handler) and client_session.transitions.state == "connected":
                await self._end_connection(client_session, handler, clean=False)  # e.g. an invalid PUBLISH
        finally:
            handler.squall_done.set()

    def _is_current(self, session: Session, handler: BrokerProtocolHandler) -> bool:
        return self._sessions.get(session.client_id or "", (None, None))[1] is handler

    def _send_queued(self, session: Session, handler: BrokerProtocolHandler) -> None:
        """Messages queued while away: established subscriptions, so RETAIN=0 [MQTT-3.3.1-9]."""
        while not session.retained_messages.empty():
            m = session.retained_messages.get_nowait()
            self._tasks_queue.append(asyncio.ensure_future(handler.mqtt_publish(m.topic, m.data, m.qos, retain=False)))

    # ---- disconnect

    async def _handle_disconnect(
        self, client_session: Session, handler: BrokerProtocolHandler, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        await self._end_connection(client_session, handler, clean=isinstance(disconnect_waiter.result(), DisconnectPacket))

    async def _end_connection(self, session: Session, handler: BrokerProtocolHandler, *, clean: bool) -> None:
        if not self._is_current(session, handler):  # retired by take-over or shutdown
            await self._stop_handler(handler)
            return
        if not clean and session.will_flag:  # [MQTT-3.1.2-8]; never after DISCONNECT [MQTT-3.1.2-10]
            await self._broadcast_message(session, session.will_topic, session.will_message, session.will_qos)
            if session.will_retain:
                await self.retain_message(session, session.will_topic, session.will_message, session.will_qos)
        await self._stop_handler(handler)
        session.transitions.disconnect()
        if session.clean_session and session.client_id:  # [MQTT-3.1.2-6] the session ends with the connection
            await self._delete_session(session.client_id)
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_DISCONNECTED, client_id=session.client_id, client_session=session
        )

    async def _session_monitor(self) -> None:
        """Only session expiry, when configured: clean sessions go at disconnect, persistent ones stay."""
        import time

        while True:
            interval = self.config.session_expiry_interval
            if interval is not None:
                horizon = time.time() - interval
                for cid, (s, _) in list(self._sessions.items()):
                    if s.transitions.state == "disconnected" and s.last_disconnect_time and s.last_disconnect_time < horizon:
                        await self._cleanup_session(cid)
            await asyncio.sleep(1)

    # ---- subscriptions and retained messages

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        topic_filter, qos = subscription
        if not topic_filter:  # [MQTT-4.7.3-1]
            return 0x80
        granted = await super().add_subscription(subscription, session)
        if granted == 0x80:
            return granted
        subs = self._subscriptions[topic_filter]
        for i, (s, _) in enumerate(subs):
            if s.client_id == session.client_id:
                subs[i] = (session, granted)  # [MQTT-3.8.4-3] replace, new QoS
        return granted

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: Session) -> None:
        """[MQTT-3.3.1-6] retained messages for this new subscription only, at min QoS, not awaited."""
        topic_filter, sub_qos = subscription
        handler = self._get_handler(session)
        if handler is None:
            return
        for topic, retained in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter):
                qos = sub_qos if retained.qos is None else min(sub_qos, retained.qos)
                self._tasks_queue.append(
                    asyncio.ensure_future(handler.mqtt_publish(retained.topic, retained.data, qos, retain=True))
                )

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        app_message = wait_deliver.result()
        if app_message is None:
            return True
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_RECEIVED, client_id=client_session.client_id, message=app_message
        )
        topic = app_message.topic
        if not topic or "#" in topic or "+" in topic or topic.startswith("$"):
            return False
        if not await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
            return True
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_BROADCAST, client_id=client_session.client_id, message=app_message
        )
        await self._broadcast_message(client_session, topic, app_message.data, app_message.qos)
        if app_message.publish_packet and app_message.publish_packet.retain_flag:
            await self.retain_message(client_session, topic, app_message.data, app_message.qos)
        return True

    async def _run_broadcast(self, running_tasks: collections.deque[asyncio.Task[Any]]) -> None:
        broadcast = await self._broadcast_queue.get()
        topic, data, pub_qos = broadcast["topic"], broadcast["data"], broadcast.get("qos")
        for k_filter, subscriptions in list(self._subscriptions.items()):
            if not self._matches(topic, k_filter):
                continue
            for target, sub_qos in list(subscriptions):
                qos = sub_qos if pub_qos is None else min(pub_qos, sub_qos)  # [MQTT-3.8.4-6]
                if not await self._topic_filtering(target, topic=topic, action=Action.RECEIVE):
                    continue
                if target.transitions.state != "connected":
                    if not target.clean_session and qos in (QOS_1, QOS_2):  # [MQTT-3.1.2-5], anonymous too
                        await self._retain_broadcast_message(broadcast, qos, target)
                    continue
                handler = self._get_handler(target)
                if handler is not None:
                    running_tasks.append(asyncio.ensure_future(handler.mqtt_publish(topic, data, qos, retain=False)))

    # ---- state carried over a restart

    def export_state(self) -> BrokerState:
        """Retained messages and CleanSession=0 sessions; call before ``shutdown()``."""
        state = BrokerState(retained=dict(self._retained_messages))
        for cid, (session, _) in self._sessions.items():
            if session.clean_session:
                continue
            subs = [(f, q) for f, entries in self._subscriptions.items() for s, q in entries if s.client_id == cid]
            queued = []
            while not session.retained_messages.empty():
                queued.append(session.retained_messages.get_nowait())
            state.sessions.append(SessionState(session, subs, queued))
        return state

    def import_state(self, state: BrokerState) -> None:
        """Install what ``export_state`` saved; call after ``start()``, before clients connect."""
        self._retained_messages.update(state.retained)
        for saved in state.sessions:
            session = saved.session
            if session.transitions.state != "disconnected":
                session.transitions.disconnect()
            session.retained_messages = asyncio.Queue()
            session.delivered_message_queue = asyncio.Queue()
            for m in saved.queued:
                session.retained_messages.put_nowait(m)
            assert session.client_id is not None
            self._sessions[session.client_id] = (session, SquallHandler(self.plugins_manager, session))
            for f, q in saved.subscriptions:
                self._subscriptions.setdefault(f, []).append((session, q))


__all__ = ["BrokerState", "SquallBroker", "SquallHandler"]
# Kept importable for readers cross-checking against amqtt's own names.
_ = (OutgoingApplicationMessage, QOS_0, ListenerConfig, AMQTTError)
