"""One MQTT connection on amqtt's client; every use of amqtt internals is kept in this file.

The bus makes a fresh ``_Link`` per connection attempt and never uses amqtt's own
reconnect: amqtt's ``connect`` builds a new session each time anyway, and owning the loop
lets the bus do jittered backoff, resubscribe and report each reconnect.

Slow is not dead. On a slow link the broker's answers (PINGRESP, SUBACK, PUBACK) queue
behind everything it sent before them, so a fixed answer timeout kills healthy links (and
with them every reconnect, which the broker answers by resending its backlog first). The
link therefore counts the bytes that arrive (``received``): any of them proves the broker
alive. A request's answer is given up on only once the broker is known to have read the
request (a PINGREQ sent after it was answered, see ``_answer``) or went silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable
from typing import Any, TypeVar

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1
from amqtt.session import ApplicationMessage, OutgoingApplicationMessage, Session

from system.bus._settings import BusSettings

_log = logging.getLogger("system.bus")
_T = TypeVar("_T")


class LinkClosed(ConnectionError):
    """The connection to the broker is gone."""


class _HandOff(asyncio.Queue[ApplicationMessage]):
    """amqtt's queue of received messages, which it fills *before* it acknowledges a QoS 1
    message. ``put`` (amqtt's QoS 1 and 2 path) waits while a message is already waiting
    here, so the PUBACK goes out only once the bus takes the one before: until then the
    broker keeps the message and sends it again after a stop or a crash, instead of amqtt
    holding any number of acknowledged messages that die with the process. ``put_nowait``
    (its QoS 0 path) never waits and never refuses: amqtt discards what a full queue refuses.
    """

    def __init__(self) -> None:
        super().__init__()
        self._room = asyncio.Semaphore(1)  # FIFO: messages keep the order they arrived in

    async def put(self, item: ApplicationMessage) -> None:
        await self._room.acquire()
        self.put_nowait(item)

    def get_nowait(self) -> ApplicationMessage:
        item = super().get_nowait()
        if item.qos:
            self._room.release()
        return item

    def drain(self) -> list[ApplicationMessage]:
        """Everything waiting, without letting the next message in (and acknowledged)."""
        out = []
        while not self.empty():
            out.append(super().get_nowait())
        return out


class _Client(MQTTClient):
    """amqtt's client with credentials set on the session rather than in the URI, because
    amqtt logs the URI."""

    def __init__(self, client_id: str, config: dict[str, Any], username: str | None, password: str | None) -> None:
        super().__init__(client_id=client_id, config=config)
        self._username = username
        self._password = password

    def _init_session(self, *args: Any, **kwargs: Any) -> Session:
        session = super()._init_session(*args, **kwargs)
        session.username = self._username
        session.password = self._password
        session.delivered_message_queue = _HandOff()
        return session


class Link:
    """A single connection: open it once, use it, and drop it when ``closed()`` returns."""

    def __init__(self, settings: BusSettings, *, will_topic: str, will_payload: bytes) -> None:
        config = {
            "keep_alive": settings.keep_alive,
            "ping_delay": 1,
            "default_qos": settings.default_qos,
            "auto_reconnect": False,
            "reconnect_retries": 0,
            "cleansession": settings.clean_session,
            "connection_timeout": max(1, math.ceil(settings.connect_timeout)),
            # No plugins: amqtt's packet logger would log the CONNECT packet, password included.
            "plugins": {},
            "will": {"topic": will_topic, "message": will_payload.decode(), "qos": 1, "retain": True},
        }
        password = settings.password.get_secret_value() if settings.password else None
        self._client = _Client(settings.client_id, config, settings.username, password)
        self._uri = settings.broker_uri
        self._timeout = settings.connect_timeout
        self._ack_timeout = settings.ack_timeout
        self.received = 0
        """Bytes that arrived from the broker on this connection since it opened."""

    async def open(self) -> None:
        """Connect and get CONNACK within ``connect_timeout``, or raise."""
        # Not wait_for: amqtt turns the cancellation into a ConnectError of its own.
        task = asyncio.ensure_future(self._client.connect(self._uri))
        try:
            done, _ = await asyncio.wait([task], timeout=self._timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            self.abort()
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled():
                task.exception()  # retrieved: the timeout below is the error that matters
            raise TimeoutError(f"no CONNACK from {self._uri} within {self._timeout}s")
        task.result()
        self._count_inbound()

    def _count_inbound(self) -> None:
        # Counted where the transport hands bytes to the stream, before amqtt parses them:
        # a large packet trickling in proves the broker alive long before it is complete.
        reader = getattr(self._client._handler, "reader", None)  # noqa: SLF001
        stream = getattr(reader, "_reader", None)
        if stream is None:
            return
        feed = stream.feed_data

        def counted(data: bytes) -> None:
            self.received += len(data)
            feed(data)

        stream.feed_data = counted

    @property
    def is_open(self) -> bool:
        return self._client._connected_state.is_set()  # noqa: SLF001

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Returns when sent (QoS 0) or acknowledged (QoS 1); ``LinkClosed`` if the connection
        went away first. amqtt cancels its PUBACK waiter on disconnect, which surfaces here as
        a CancelledError that is not ours: tell the two apart with ``cancelling()``."""
        if not self.is_open:
            raise LinkClosed("not connected")
        try:
            if qos == QOS_1:
                await self._publish_qos1(topic, payload, retain)
            else:
                await self._client.publish(topic, payload, qos=qos, retain=retain)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise LinkClosed("connection lost while publishing") from None
        except TimeoutError as exc:
            # MQTT 3.1.1 resends only on a new connection, so a broker that read the PUBLISH
            # and did not acknowledge it gets its connection dropped; the bus resends.
            self.abort()
            raise LinkClosed(f"dropping the connection: {exc}") from None
        except Exception as exc:  # amqtt raises assorted errors on a dying connection
            if not self.is_open:
                raise LinkClosed(f"connection lost while publishing: {exc!r}") from None
            raise

    async def _publish_qos1(self, topic: str, payload: bytes, retain: bool) -> None:
        """amqtt's own QoS 1 flow gives up after a fixed 5 s, however alive the broker: the
        same flow on amqtt's session and waiters, with the patient wait of ``_answer``."""
        handler, session = self._client._handler, self._client.session  # noqa: SLF001
        if handler is None or session is None:
            raise LinkClosed("not connected")
        packet_id = session.next_packet_id
        message = OutgoingApplicationMessage(packet_id, topic, QOS_1, payload, retain)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # Registered before sending: a fast PUBACK must find its waiter.
        session.inflight_out[packet_id] = message
        handler._puback_waiters[packet_id] = waiter  # noqa: SLF001
        try:
            message.publish_packet = message.build_publish_packet()
            await handler._send_packet(message.publish_packet)  # noqa: SLF001
            message.puback_packet = await self._answer(waiter, f"PUBACK for {topic!r}")
        finally:
            handler._puback_waiters.pop(packet_id, None)  # noqa: SLF001
            session.inflight_out.pop(packet_id, None)

    async def subscribe(self, filters: list[tuple[str, int]]) -> list[int]:
        """The broker's return codes; ``TimeoutError`` if it read the SUBSCRIBE and did not answer."""
        if not self.is_open:
            raise LinkClosed("not connected")
        try:
            return await self._answer(self._client.subscribe(filters), f"SUBACK for {[f for f, _ in filters]}")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise LinkClosed("connection lost while subscribing") from None

    async def unsubscribe(self, filters: list[str]) -> None:
        if not self.is_open:
            raise LinkClosed("not connected")
        try:
            await self._answer(self._client.unsubscribe(filters), f"UNSUBACK for {filters}")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise LinkClosed("connection lost while unsubscribing") from None
        except Exception as exc:
            raise LinkClosed(f"unsubscribe failed: {exc!r}") from None

    async def ping(self) -> bool:
        """Send a PINGREQ; True once its PINGRESP is back, False if the connection went first.
        Waits as long as it takes: whoever pings decides how long is too long, from
        ``received`` (amqtt's own pinger never gives up, so a silent broker would go unnoticed)."""
        if not self.is_open:
            return False
        try:
            await self._client.ping()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return False
        except Exception:
            return False
        return True

    async def _answer(self, request: Awaitable[_T], what: str) -> _T:
        """Wait for the broker's answer to a request just sent.

        The answer queues behind whatever the broker sent before it, so how late it may be
        depends on the link, not on a constant. After ``ack_timeout`` a PINGREQ goes out as a
        barrier: the broker reads a connection's packets in order, so until that PINGRESP is
        back the broker may not even have read the request, and the wait goes on as long as
        bytes keep arriving. Once it is back, the answer gets ``ack_timeout`` more (amqtt's
        broker handles packets in concurrent tasks), then ``TimeoutError``. Also
        ``TimeoutError`` after ``ack_timeout`` with nothing at all from the broker, and
        ``LinkClosed`` if the connection goes first.
        """
        timeout = self._ack_timeout
        answer = asyncio.ensure_future(request)
        closed = self._client._disconnect_task  # noqa: SLF001
        barrier: asyncio.Task[bool] | None = None
        try:
            while True:
                heard = self.received
                watched: list[asyncio.Future[Any]] = [answer]
                if barrier is not None and not barrier.done():
                    watched.append(barrier)
                if closed is not None:
                    watched.append(closed)
                await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if answer.done():
                    break
                if not self.is_open or (closed is not None and closed.done()):
                    raise LinkClosed(f"connection lost waiting for {what}")
                if barrier is None:
                    barrier = asyncio.ensure_future(self.ping())
                elif barrier.done():
                    await asyncio.wait(
                        [answer, *([closed] if closed is not None else [])],
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if answer.done():
                        break
                    if not self.is_open:
                        raise LinkClosed(f"connection lost waiting for {what}")
                    raise TimeoutError(f"no {what} within {timeout}s of the broker answering a later PINGREQ")
                elif self.received == heard:
                    raise TimeoutError(f"no {what}, and nothing at all from the broker for {timeout}s")
            if answer.cancelled():  # amqtt cancels its waiters when the connection closes
                raise LinkClosed(f"connection lost waiting for {what}")
            return answer.result()
        finally:
            for task in (answer, barrier):
                if task is not None and not task.done():
                    task.cancel()

    async def receive(self) -> ApplicationMessage | None:
        """The next message, or None once the connection is closed and nothing is left.

        amqtt acknowledges a QoS 1 message as soon as it is in its session queue, so after a
        disconnect that queue is still drained here: those messages exist nowhere else.
        """
        if self.is_open and self._client._handler is not None:  # noqa: SLF001
            try:
                message = await self._client.deliver_message()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                message = None
            except Exception:  # amqtt's handler raises if detached mid-wait: the link is gone
                message = None
            if message is not None:
                return message
        session = self._client.session
        if session is None:
            return None
        try:
            return session.delivered_message_queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def leftovers(self) -> list[ApplicationMessage]:
        """Take what amqtt received and acknowledged that nobody has taken yet (at most one
        QoS 1 message, see ``_HandOff``), without waiting and without acknowledging more."""
        session = self._client.session
        queue = session.delivered_message_queue if session is not None else None
        return queue.drain() if isinstance(queue, _HandOff) else []

    async def closed(self) -> None:
        """Wait until the connection is lost (or closed by us)."""
        task = self._client._disconnect_task  # noqa: SLF001
        if task is not None:
            # asyncio.wait, not await: amqtt's close task ends cancelled after our own disconnect.
            await asyncio.wait([task])

    async def close(self) -> None:
        """Graceful MQTT DISCONNECT: the broker discards the will."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.disconnect(), self._timeout)
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT, as a crash would: the broker sends the will."""
        handler = self._client._handler  # noqa: SLF001
        writer = getattr(handler, "writer", None)
        stream = getattr(writer, "_writer", None)
        if stream is not None:
            stream.transport.abort()
