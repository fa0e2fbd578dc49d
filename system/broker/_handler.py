"""squall's broker-side protocol handler: amqtt's, with delivery kept until acknowledged,
QoS 2 receipt as a state machine, DISCONNECT never lost, and malformed input closing the
connection. The statements each part keeps are in system/broker/_fixes.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.events import MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.constants import QOS_2
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.packet import (
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
from amqtt.session import INCOMING, IncomingApplicationMessage

from system.broker._validate import BytesReader, header_violation, read_body

_log = logging.getLogger(__name__)

KEEPALIVE_GRACE = 1.5  # [MQTT-3.1.2-24]: silent for 1.5 x keepalive -> disconnect


class SquallHandler(BrokerProtocolHandler):
    """amqtt's broker-side protocol handler with squall's delivery and input fixes."""

    _disconnect_waiter: asyncio.Future[DisconnectPacket | None] | None

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

    def abort_connection(self) -> None:
        """Drop the TCP connection at once (no close handshake); the reader then ends the session."""
        stream = getattr(self.writer, "_writer", None)  # amqtt's StreamWriterAdapter keeps it private
        transport = getattr(stream, "transport", None)
        if transport is not None:
            transport.abort()

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
        keepalive = self.session.keep_alive * KEEPALIVE_GRACE if self.session.keep_alive > 0 else None
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
                    if header is None:
                        break
                    why = header_violation(header) or ""
                    if why or header.packet_type not in handlers and header.packet_type != DISCONNECT:
                        why = why or f"packet type {header.packet_type} not allowed from a client"
                        break
                    body = await asyncio.wait_for(read_body(self.reader, header), keepalive)  # no half packets
                except TimeoutError:
                    why = f"silent for 1.5 x keepalive ({keepalive} s)"
                    break
                packet = await packet_class(header).from_stream(BytesReader(body), fixed_header=header)
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
