"""squall's broker: amqtt 0.12.1 with its MQTT 3.1.1 violations fixed, by subclassing only.

Nothing here patches amqtt globally; only brokers built from ``SquallBroker`` change. Each fix
is pinned by the conformance check of the same statement (system/broker/conformance):

=====================  =====================================================================
statement              stock amqtt 0.12.1 does / squall's fix
=====================  =====================================================================
MQTT-4.4.0-1           drops an unacknowledged outgoing PUBLISH (QoS 1/2) or PUBREL when the
                       subscriber disconnects or after 5 s (amqtt issue 401; PR 402 open) / keep it in the
                       session until acknowledged, re-send with DUP=1 (PUBREL as is) on reconnect
MQTT-4.3.2-2           drops QoS 1/2 messages it has already acknowledged but not yet routed
                       when the publisher disconnects (a short-lived publisher loses most of a
                       burst) / route everything received before ending the session
MQTT-3.1.2-4, -5       forgets anonymous sessions on disconnect (every session is anonymous when
                       allow-anonymous is on) / keep every CleanSession=0 session, queue QoS 1/2
MQTT-3.1.2-6           keeps a CleanSession=1 session for up to 1 s and lets a CleanSession=0
                       connection resume it / delete it when its connection ends, never resume it
MQTT-3.1.4-2           a CleanSession=1 CONNECT with a connected ClientId leaves the old
                       connection open; a CleanSession=0 take-over closes the new connection
                       too / close the old connection and retire it first
MQTT-3.8.4-6           delivers at the subscription's QoS (upgrades QoS 0 to 1/2); retained QoS 0
                       likewise / deliver at min(published QoS, granted QoS)
MQTT-3.8.4-3           re-subscribing the same filter keeps the old QoS / replace it
MQTT-3.3.1-6           on every CONNECT sends retained messages matching any client's
                       subscriptions / retained messages only for the new subscription
MQTT-3.3.1-9           messages queued while away are sent with RETAIN=1 / RETAIN=0
MQTT-3.1.2-24, -8      never disconnects a silent client (keepalive read timeout ignored), so
                       its will is never sent / close after 1.5 x keepalive without a whole
                       packet (silence mid-packet too), publish the will
MQTT-3.1.0-1           waits forever when the first packet is not CONNECT / close at once
MQTT-4.8.0-1, 4.7.1-1  keeps the connection open after a malformed packet (bad remaining length,
MQTT-1.5.3-1, 3.3.1-4  invalid UTF-8, PUBLISH QoS 3 or with a wildcard topic, SUBSCRIBE flags
MQTT-3.8.1-1           not 0010) / close that connection; everyone else is unaffected
MQTT-3.1.2-13, -14     accepts a CONNECT whose will QoS/retain contradict the will flag, or
MQTT-3.8.3-3           will QoS 3; a SUBSCRIBE/UNSUBSCRIBE without filters; packet id 0
MQTT-3.10.3-2          / malformed: close that connection
MQTT-2.3.1-1
MQTT-3.1.2-9, -19,     accepts a CONNECT with bytes after its last field, without a field its
-21, 3.1.3-1           flags announce, or with a will topic that has a wildcard or is empty;
MQTT-4.7.1-1           a QoS 0 PUBLISH with DUP=1; a PINGREQ, DISCONNECT or acknowledgement
MQTT-3.3.1-2           with a body of the wrong length; CONNECT fixed-header flags other than
MQTT-2.2.2-2           0000 / malformed: close that connection
MQTT-4.7.2             stops routing a connection's messages after it publishes to a $-topic,
                       connection left open / acknowledge, do not route, keep the connection
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
import time
from dataclasses import dataclass, field
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker, RetainedApplicationMessage
from amqtt.contexts import Action
from amqtt.errors import MQTTError, NoDataError
from amqtt.events import BrokerEvents
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.packet import CONNECT, MQTTFixedHeader
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import ApplicationMessage, Session
from amqtt.utils import gen_client_id

from system.broker._handler import SquallHandler
from system.broker._validate import BytesReader, header_violation, read_body

_log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 30.0  # a connection that never sends CONNECT is closed after this
_TAKEOVER_TIMEOUT = 10.0


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

    # ---- routing speed: amqtt matches every message against every filter, splitting both
    # strings each time; with a hundred clients that was most of a fleet simulation's time.
    # Which filters match a topic depends only on the topic and the set of filters, so it is
    # remembered per topic until the set of filters changes.

    def _routes(self, topic: str) -> list[str]:
        filters = tuple(self._subscriptions)
        if filters != getattr(self, "_route_filters", None):
            self._route_filters = filters
            self._route_cache: dict[str, list[str]] = {}
        hit = self._route_cache.get(topic)
        if hit is None:
            hit = self._route_cache[topic] = [f for f in filters if self._matches(topic, f)]
        return hit

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
            why = header_violation(header)
            if why:
                raise MQTTError(why)
            body = await read_body(reader, header)
            handler, session = await SquallHandler.init_from_connect(
                BytesReader(header.to_bytes() + body), writer, self.plugins_manager
            )
        except Exception as exc:  # noqa: BLE001 - a malformed CONNECT closes this connection only
            try:
                await writer.close()
            except Exception:  # noqa: BLE001
                pass
            raise MQTTError(f"refused connection from {remote_address}:{remote_port}: {exc!r}") from None

        return handler, session


    async def _client_connected(self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        try:
            await super()._client_connected(listener_name, reader, writer)
        except asyncio.CancelledError:
            # The host is going away (shutdown, a simulated crash). This is the connection's own
            # task, started by asyncio.start_server, which reports a cancelled one as an error;
            # amqtt's message loop swallows the cancellation likewise.
            _log.debug("connection task cancelled")

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
            except TimeoutError:
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

    async def _client_message_loop(self, client_session: Session, handler: BrokerProtocolHandler) -> None:
        """amqtt's loop, except that on disconnect everything the client sent first is routed
        before the session ends: amqtt drops PUBLISHes it has already PUBACKed when the
        DISCONNECT (or the end of the stream) wins the race [MQTT-4.3.2-2]."""
        waiters = {
            "disconnect": asyncio.ensure_future(handler.wait_disconnect()),
            "subscribe": asyncio.ensure_future(handler.get_next_pending_subscription()),
            "unsubscribe": asyncio.ensure_future(handler.get_next_pending_unsubscription()),
            "deliver": asyncio.ensure_future(handler.mqtt_deliver_next_message()),
        }
        try:
            while True:
                await asyncio.wait(waiters.values(), return_when=asyncio.FIRST_COMPLETED)
                if waiters["deliver"].done():
                    if not await self._route(client_session, waiters["deliver"].result()):
                        await self._end_connection(client_session, handler, clean=False)
                        return
                    waiters["deliver"] = asyncio.ensure_future(handler.mqtt_deliver_next_message())
                if waiters["subscribe"].done():
                    await self._handle_subscription(client_session, handler, waiters["subscribe"])
                    waiters["subscribe"] = asyncio.ensure_future(handler.get_next_pending_subscription())
                if waiters["unsubscribe"].done():
                    await self._handle_unsubscription(client_session, handler, waiters["unsubscribe"])
                    waiters["unsubscribe"] = asyncio.ensure_future(handler.get_next_pending_unsubscription())
                if waiters["disconnect"].done():
                    waiters["deliver"].cancel()
                    await asyncio.gather(waiters["deliver"], return_exceptions=True)
                    await self._flush_received(client_session)
                    clean = isinstance(waiters["disconnect"].result(), DisconnectPacket)
                    await self._end_connection(client_session, handler, clean=clean)
                    return
        finally:
            for waiter in waiters.values():
                waiter.cancel()
            await asyncio.gather(*waiters.values(), return_exceptions=True)

    async def _flush_received(self, session: Session) -> None:
        """Route what the client published (and was acknowledged) but not yet routed."""
        while not session.delivered_message_queue.empty():
            await self._route(session, session.delivered_message_queue.get_nowait())

    async def _route(self, session: Session, app_message: ApplicationMessage | None) -> bool:
        """One received PUBLISH to its subscribers (and the retained store); False: close the connection."""
        if app_message is None:
            return True
        await self.plugins_manager.fire_event(BrokerEvents.MESSAGE_RECEIVED, client_id=session.client_id, message=app_message)
        topic = app_message.topic
        if not topic or "#" in topic or "+" in topic:
            return False
        if topic.startswith("$"):  # reserved for the server [MQTT-4.7.2]: acknowledged, not routed
            return True
        if not await self._topic_filtering(session, topic=topic, action=Action.PUBLISH):
            return True
        await self.plugins_manager.fire_event(BrokerEvents.MESSAGE_BROADCAST, client_id=session.client_id, message=app_message)
        await self._broadcast_message(session, topic, app_message.data, app_message.qos)
        if app_message.publish_packet and app_message.publish_packet.retain_flag:
            await self.retain_message(session, topic, app_message.data, app_message.qos)
        return True

    async def _run_broadcast(self, running_tasks: collections.deque[asyncio.Task[Any]]) -> None:
        broadcast = await self._broadcast_queue.get()
        try:
            await self._fan_out(broadcast, running_tasks)
        finally:
            self._broadcast_queue.task_done()  # lets quiesce() wait for routing to finish

    async def _fan_out(self, broadcast: dict[str, Any], running_tasks: collections.deque[asyncio.Task[Any]]) -> None:
        topic, data, pub_qos = broadcast["topic"], broadcast["data"], broadcast.get("qos")
        for k_filter in self._routes(topic):
            subscriptions = self._subscriptions.get(k_filter)
            if not subscriptions:
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

    async def quiesce(self, timeout: float = 10.0) -> None:
        """Stop taking work so that ``export_state()`` sees everything acknowledged.

        amqtt's own shutdown keeps accepting and acknowledging until its very end, so a QoS 1
        message PUBACKed meanwhile, or still in the broadcast queue, would be acknowledged and
        then lost (found by the chaos broker-restart run). Listeners close, connections are
        dropped without their wills (it is the broker that goes away, not the clients), what
        they sent is routed, and the broadcast queue drains into the sessions to be saved.
        """
        for server in self._servers.values():
            if server.instance is not None:
                server.instance.close()
        handlers = []
        for session, handler in list(self._sessions.values()):
            if session.transitions.state != "connected" or not isinstance(handler, SquallHandler):
                continue
            session.will_flag = False
            handlers.append(handler)
            handler.abort_connection()
        try:
            await asyncio.wait_for(asyncio.gather(*(h.squall_done.wait() for h in handlers)), timeout)
            await asyncio.wait_for(self._broadcast_queue.join(), timeout)
        except TimeoutError:
            _log.warning("broker did not quiesce within %s s; saving state anyway", timeout)
        for _ in range(3):  # delivery tasks just created take their first step (into inflight_out)
            await asyncio.sleep(0)

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


__all__ = ["BrokerState", "SessionState", "SquallBroker", "SquallHandler"]
