"""One MQTT connection on amqtt's client; every use of amqtt internals is kept in this file.

The bus makes a fresh ``_Link`` per connection attempt and never uses amqtt's own
reconnect: amqtt's ``connect`` builds a new session each time anyway, and owning the loop
lets the bus do jittered backoff, resubscribe and report each reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from amqtt.client import MQTTClient
from amqtt.session import ApplicationMessage, Session

from system.bus._settings import BusSettings

_log = logging.getLogger("system.bus")


class LinkClosed(ConnectionError):
    """The connection to the broker is gone."""


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
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise LinkClosed("connection lost while publishing") from None
        except TimeoutError as exc:
            # MQTT 3.1.1 resends only on a new connection, so a broker that did not
            # acknowledge in amqtt's fixed 5 s gets its connection dropped; the bus resends.
            self.abort()
            raise LinkClosed(f"no PUBACK, dropping the connection: {exc}") from None
        except Exception as exc:  # amqtt raises assorted errors on a dying connection
            if not self.is_open:
                raise LinkClosed(f"connection lost while publishing: {exc!r}") from None
            raise

    async def subscribe(self, filters: list[tuple[str, int]]) -> list[int]:
        if not self.is_open:
            raise LinkClosed("not connected")
        try:
            return await self._client.subscribe(filters)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise LinkClosed("connection lost while subscribing") from None

    async def unsubscribe(self, filters: list[str]) -> None:
        if not self.is_open:
            raise LinkClosed("not connected")
        try:
            await asyncio.wait_for(self._client.unsubscribe(filters), self._timeout)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise LinkClosed("connection lost while unsubscribing") from None
        except Exception as exc:
            raise LinkClosed(f"unsubscribe failed: {exc!r}") from None

    async def ping(self, timeout: float) -> bool:
        """True if the broker answered a PINGREQ within ``timeout``. amqtt itself only pings
        when idle and never gives up waiting, so a silent broker would go unnoticed."""
        if not self.is_open:
            return False
        try:
            await asyncio.wait_for(self._client.ping(), timeout)
        except TimeoutError:
            return False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return False
        except Exception:
            return False
        return True

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
