"""``BusClient``: a resilient MQTT client that speaks envelopes.

Tasks, all on the caller's event loop (nothing here reads a clock other than ``loop.time()``):

- the connection manager: connect, resubscribe, publish ``online``, wait for loss, back
  off with full jitter, repeat until stopped;
- the receiver (one per connection, from its first byte, in connection order): decode,
  dedup, answer pending requests, queue inbound; amqtt acknowledges QoS 1 on arrival, so
  what it received is handed over even when the connection's setup fails;
- the watchdog (one per connection): pings, and drops a broker gone silent (slow is not silent);
- the dispatcher: control band first, each matching handler in turn, failures contained;
- the sender: control band first, one message at a time; a message whose connection
  dropped before the broker acknowledged it is kept and sent again after reconnect;
- the heartbeat: a health message every ``heartbeat_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from system.bus._backoff import Backoff
from system.bus._dedup import Deduplicator
from system.bus._flow import AsyncFlowQueue, Evicted, FlowQueue, OverflowPolicy, Pulse
from system.bus._link import Link, LinkClosed
from system.bus._settings import BusSettings
from system.bus._topics import matches, validate_filter, validate_topic
from system.bus._types import (
    BusClosed,
    Handler,
    Health,
    LastError,
    Message,
    RequestFailed,
    RequestTimeout,
    Subscription,
)
from system.envelope import Envelope, EnvelopeError, EnvelopeFactory, decode, encode
from system.observer import (
    Connected,
    Connecting,
    Delivered,
    Disconnected,
    Dropped,
    Event,
    Failed,
    HandedOver,
    LoggingObserver,
    Observer,
    Published,
    Reconnected,
    StateChanged,
)

_log = logging.getLogger("system.bus")

DEGRADED_FOR = 60.0
"""Loop-seconds after an error during which ``health().status`` says ``degraded``."""
REPLY_KIND = "reply"
REPLY_ERROR_KIND = "reply-error"


def _replaced(bus: BusClient, old: Link | None) -> Callable[[], bool]:
    """Predicate: the bus has a live link other than ``old``."""
    return lambda: bus._link is not None and bus._link is not old  # noqa: SLF001


def _refusal(pattern: str) -> str:
    return f"broker refused the subscription to {pattern!r} (SUBACK 0x80): check the broker's ACL for this user"


def _envelope_id(payload: bytes) -> str | None:
    try:
        return decode(payload).id
    except EnvelopeError:
        return None


def _identity(handler: Handler) -> str:
    owner = getattr(handler, "__self__", None)  # a bound method is a new object on every access
    qualname = getattr(handler, "__qualname__", type(handler).__qualname__)
    return f"{qualname}@{id(owner if owner is not None else handler):x}"


@dataclass(frozen=True, slots=True)
class _Out:
    envelope: Envelope
    payload: bytes
    qos: int
    retain: bool
    queued: float = 0.0  # loop time the application handed the message over


class BusClient:
    """Publish and subscribe envelopes over MQTT, surviving broker restarts and overload.

    ``settings`` is a ``BusSettings``, a URL (``mqtt://user:pass@host:port``) or None (read
    from ``SQUALL_BUS_*`` environment variables). ``policies`` maps topic filters to
    ``OverflowPolicy`` for both the outbound and inbound queues (first match wins, default
    ``block``); ``control`` lists filters whose messages travel in the control band, ahead
    of data (the client's own health and availability always do). A ``coalesce`` policy's
    merge function receives and returns ``Envelope``s. ``observer`` receives every
    ``system.observer`` event (default: ``LoggingObserver``). ``rng`` drives the reconnect
    jitter.

    Use ``async with BusClient(...) as bus:`` (returns once connected) or ``start()`` /
    ``stop()``::

        async with BusClient("mqtt://user:pass@localhost:1883?client_id=thermostat",
                             policies={"telemetry/#": OverflowPolicy.latest()},
                             control=["cmd/#"]) as bus:
            await bus.subscribe("cmd/thermostat/+", on_command)
            await bus.respond("svc/thermostat/setpoint", lambda msg: {"ok": True})
            await bus.publish("telemetry/thermostat/temp", {"c": 21.5}, kind="telemetry")
            reply = await bus.request("svc/boiler/status", timeout=5)

    Topics the client uses itself (``prefix`` defaults to ``squall``):
    ``<prefix>/availability/<client_id>`` (retained ``{"status": "online"|"offline"}``, also
    the last will), ``<prefix>/health/<client_id>`` (``Health`` every heartbeat),
    ``<prefix>/errors/<client_id>`` (one message per handler failure) and
    ``<prefix>/reply/<client_id>`` (replies to its requests).

    Delivery: QoS 1 is at least once end to end (a message whose PUBACK was lost is sent
    again after reconnect) and receivers drop repeats by envelope id (``dedup_ttl``,
    ``dedup_max``), so handlers see each message once within that window. Retained copies
    (``Message.retain``, sent by the broker on subscribe) are state and always delivered. ``seq`` starts at
    ``settings.seq_start`` (0) in each client, so set it to keep ``seq`` monotonic across
    process restarts; it increases strictly but is not contiguous (each connect prepares a
    will envelope that takes a number), so detect loss by ``id``, not by gaps in ``seq``.
    A received QoS 1 message is acknowledged to the broker when the bus takes it into its
    inbound queue; what that queue still holds when the client stops is reported as
    ``Dropped(reason="shutdown")``, the rest stays with the broker for the next session.
    A slow link is not a dead one: the connection is dropped only when nothing at all
    arrives from the broker, and late answers (SUBACK, PUBACK) are waited for.
    """

    def __init__(
        self,
        settings: BusSettings | str | None = None,
        *,
        policies: Mapping[str, OverflowPolicy] | Sequence[tuple[str, OverflowPolicy]] = (),
        control: Iterable[str] = (),
        observer: Observer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(settings, str):
            settings = BusSettings.from_url(settings)
        self.settings = settings if settings is not None else BusSettings()
        s = self.settings
        self.client_id = s.client_id
        self.availability_topic = s.topic("availability")
        self.health_topic = s.topic("health")
        self.error_topic = s.topic("errors")
        self.reply_topic = s.topic("reply")
        self._observer: Observer = observer if observer is not None else LoggingObserver()
        # Seeded from the global generator by default, so a world that seeds `random` replays it.
        self._backoff = Backoff(s.reconnect_initial, s.reconnect_max, rng or random.Random(random.getrandbits(64)))
        self._factory = EnvelopeFactory(s.client_id, start=s.seq_start)
        self._dedup = Deduplicator(s.dedup_ttl, s.dedup_max)

        rules = list(policies.items()) if isinstance(policies, Mapping) else list(policies)
        # The client's own topics come after the user's rules, so a user can override them.
        rules += [
            (f"{s.prefix}/errors/#", OverflowPolicy.drop()),
            (f"{s.prefix}/health/#", OverflowPolicy.latest()),
            (f"{s.prefix}/availability/#", OverflowPolicy.latest()),
        ]
        bands = [*control, f"{s.prefix}/health/#", f"{s.prefix}/availability/#"]
        self._outbox: AsyncFlowQueue[_Out] = AsyncFlowQueue(
            FlowQueue(
                s.outbound_capacity,
                control_capacity=s.control_capacity,
                policies=rules,
                control=bands,
                merge=self._merge_out,
            ),
            lambda ev: self._evicted("out", ev),
        )
        self._inbox: AsyncFlowQueue[Message] = AsyncFlowQueue(
            FlowQueue(
                s.inbound_capacity,
                control_capacity=s.control_capacity,
                policies=rules,
                control=bands,
                merge=self._merge_in,
            ),
            lambda ev: self._evicted("in", ev),
        )

        self._subs: dict[str, dict[str, tuple[Subscription, Handler]]] = {}
        # Filters dropped while disconnected: a persistent session would keep them at the broker.
        self._stale: set[str] = set()
        self._pending: dict[str, asyncio.Future[Envelope]] = {}
        self._link: Link | None = None
        self._link_changed = Pulse()
        self._progress = Pulse()
        self._connected: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._receivers: set[asyncio.Task[Any]] = set()
        self._receiver: asyncio.Task[None] | None = None  # the newest connection's
        self._sending: tuple[str, _Out] | None = None
        self._dispatching = False
        self._stopping = False
        self._state = "new"
        self._started_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._counts = {"published": 0, "delivered": 0, "dropped": 0, "errors": 0, "reconnects": 0}
        self._last_error: LastError | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; returns at once (see ``wait_connected``)."""
        if self._state != "new":
            raise BusClosed(f"client {self.client_id} was already started; make a new BusClient")
        self._loop = asyncio.get_running_loop()
        self._started_at = self._now()
        self._connected = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._run(), name=f"bus-{self.client_id}-connect"),
            asyncio.create_task(self._send_loop(), name=f"bus-{self.client_id}-send"),
            asyncio.create_task(self._dispatch_loop(), name=f"bus-{self.client_id}-dispatch"),
        ]
        if self.settings.heartbeat_interval > 0:
            self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name=f"bus-{self.client_id}-heartbeat"))

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (subscriptions restored, ``online`` published)."""
        if self._connected is None:
            raise BusClosed("call start() first")
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def connected(self) -> bool:
        return self._connected is not None and self._connected.is_set()

    @property
    def state(self) -> str:
        return self._state

    async def stop(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop intake, publish ``offline``, let queued work finish within
        ``timeout`` (default ``settings.shutdown_timeout``), cancel the rest, disconnect."""
        if self._state in ("new", "stopped") or self._stopping:
            return
        self._stopping = True
        self._set_state("stopping")
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        for receiver in self._receivers:
            receiver.cancel()
        self._outbox.close(BusClosed(f"client {self.client_id} is stopping"))
        self._enqueue_nowait(self.availability_topic, self._availability("offline"), retain=True, control=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._progress.wait_for(self._idle), timeout)
        link = self._link
        offline_sent = not (len(self._outbox) or self._sending)
        await self._cancel_tasks()
        if link is not None:
            if offline_sent:
                await link.close()
            else:
                link.abort()  # 'offline' did not make it out: let the broker's will say it
        self._finish()

    async def abort(self) -> None:
        """Stop as a crash would: drop the connection without ``offline`` or DISCONNECT, so the
        broker publishes the will. Pending messages are reported as dropped."""
        if self._state in ("new", "stopped"):
            return
        self._stopping = True
        link = self._link
        if link is not None:
            link.abort()
        self._outbox.close(BusClosed(f"client {self.client_id} was aborted"))
        await self._cancel_tasks()
        self._finish()

    async def __aenter__(self) -> BusClient:
        await self.start()
        await self.wait_connected()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- publishing --------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        data: Any = None,
        *,
        kind: str = "data",
        qos: int | None = None,
        retain: bool = False,
        correlation_id: str | None = None,
        control: bool | None = None,
    ) -> Envelope:
        """Queue ``data`` (any JSON value, a pydantic model, or a ready ``Envelope``) for ``topic``.

        Returns once queued, which under the ``block`` policy may wait for room; the message
        goes out when connected, after reconnect if need be. ``control=True`` sends it in the
        control band whatever its topic. Raises ``EnvelopeError`` for data that cannot be sent.
        """
        self._check_open()
        validate_topic(topic)
        qos = self.settings.default_qos if qos is None else qos
        if qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {qos}")
        env = data if isinstance(data, Envelope) else self._factory.make(kind, data, correlation_id=correlation_id)
        out = _Out(env, encode(env, max_size=self.settings.max_payload), qos, retain, self._now())
        self._handed_over(topic, out, control)
        await self._outbox.put(topic, out, control=control)
        return env

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far has been handed to the broker (acknowledged,
        for QoS 1); ``asyncio.TimeoutError`` after ``timeout``."""
        await asyncio.wait_for(self._progress.wait_for(lambda: not (len(self._outbox) or self._sending)), timeout)

    async def request(self, topic: str, data: Any = None, *, timeout: float | None = None, qos: int = 1) -> Envelope:
        """Send a ``request`` envelope and wait for the reply envelope (see ``respond``).

        Raises ``RequestTimeout`` after ``timeout`` (default ``settings.request_timeout``) and
        ``RequestFailed`` if the responder's handler raised.
        """
        self._check_open()
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        timeout = self.settings.request_timeout if timeout is None else timeout
        try:
            await self.publish(topic, data, kind="request", qos=qos, correlation_id=correlation_id)
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(f"no reply on {topic} within {timeout}s (correlation_id {correlation_id})") from None
        finally:
            self._pending.pop(correlation_id, None)
        if reply.kind == REPLY_ERROR_KIND:
            raise RequestFailed(f"{topic}: {reply.data}")
        return reply

    # -- subscribing -------------------------------------------------------------------

    async def subscribe(
        self, pattern: str, handler: Handler, *, qos: int | None = None, name: str | None = None
    ) -> Subscription:
        """Call ``handler`` for each message matching ``pattern`` (``+``/``#`` wildcards).

        Several handlers may share a pattern; one with the same ``name`` replaces the old one.
        The default name is the handler's identity: subscribing the same function (or the
        same object's method) again replaces it. When connected, returns after the broker
        acknowledged the subscription (``PermissionError`` if it refused it); otherwise it is
        made on connect, and a refusal then is reported to the observer.
        """
        validate_filter(pattern)
        qos = self.settings.default_qos if qos is None else qos
        name = name or _identity(handler)
        sub = Subscription(pattern, name, qos)
        before = self._granted(pattern)
        self._subs.setdefault(pattern, {})[name] = (sub, handler)
        link = self._link
        if link is not None and (before is None or qos > before):
            try:
                refused = await self._subscribe_on(link, [(pattern, qos)])
            except TimeoutError as exc:
                # State unknown at the broker: start over; the reconnect subscribes everything.
                self._fail("subscribe", exc, topic=pattern)
                link.abort()
                return sub
            if refused:
                self._subs[pattern].pop(name, None)
                if not self._subs[pattern]:
                    del self._subs[pattern]
                raise PermissionError(_refusal(pattern))
        return sub

    def _granted(self, pattern: str) -> int | None:
        """The QoS the broker was asked for on ``pattern`` (the highest of its handlers')."""
        handlers = self._subs.get(pattern)
        return max(sub.qos for sub, _ in handlers.values()) if handlers else None

    async def respond(self, pattern: str, handler: Handler, *, name: str | None = None) -> Subscription:
        """Serve requests on ``pattern``: ``handler``'s return value is sent back as the reply;
        if it raises, the requester gets ``RequestFailed``."""

        async def serve(msg: Message) -> None:
            req = msg.envelope
            try:
                result = handler(msg)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                await self._reply(req, REPLY_ERROR_KIND, f"{type(exc).__name__}: {exc}")
                raise
            await self._reply(req, REPLY_KIND, result)

        name = name or f"respond:{_identity(handler)}"
        return await self.subscribe(pattern, serve, name=name)

    async def unsubscribe(self, sub: Subscription) -> None:
        handlers = self._subs.get(sub.pattern, {})
        handlers.pop(sub.name, None)
        if not handlers and sub.pattern in self._subs:
            del self._subs[sub.pattern]
            self._stale.add(sub.pattern)
            if self._link is not None:
                with contextlib.suppress(LinkClosed):
                    await self._link.unsubscribe([sub.pattern])
                    self._stale.discard(sub.pattern)

    # -- health ------------------------------------------------------------------------

    def health(self) -> Health:
        now = self._now()
        connected = self.connected
        recent_error = self._last_error is not None and now - self._last_error.at < DEGRADED_FOR
        status: Literal["ok", "degraded", "down"] = "down" if not connected else ("degraded" if recent_error else "ok")
        return Health(
            client_id=self.client_id,
            status=status,
            state=self._state,
            connected=connected,
            uptime=now - self._started_at if self._loop else 0.0,
            outbound_depth=len(self._outbox) + (1 if self._sending else 0),
            inbound_depth=len(self._inbox),
            last_error=self._last_error,
            **self._counts,
        )

    # -- connection manager --------------------------------------------------------------

    async def _run(self) -> None:
        assert self._loop is not None
        attempt = 0
        lost_at: float | None = None
        # Keeps reconnecting while stopping too, so queued messages can still drain.
        while True:
            attempt += 1
            if lost_at is not None or attempt > 1:
                await asyncio.sleep(self._backoff.delay(attempt))
            if not self._stopping:
                self._set_state("connecting" if lost_at is None else "reconnecting")
            self._emit(Connecting, attempt=attempt, initial=self.settings.reconnect_initial, maximum=self.settings.reconnect_max)
            link = Link(
                self.settings,
                will_topic=self.availability_topic,
                will_payload=encode(self._availability("offline")),
            )
            try:
                await link.open()
            except asyncio.CancelledError:
                link.abort()
                raise
            except Exception as exc:
                link.abort()
                self._fail("connect", exc)
                continue
            self._emit(Connected, url=self.settings.address, attempt=attempt)
            # Both from the first byte: with a persistent session the broker sends queued
            # messages before it answers SUBSCRIBE, amqtt acknowledges each on arrival, and
            # the receiver is the only way they reach the application even if setup fails.
            if not self._stopping:
                self._start_receiver(link)
            watchdog = asyncio.create_task(self._watch(link), name=f"bus-{self.client_id}-watchdog")
            try:
                try:
                    await self._on_open(link)
                except asyncio.CancelledError:
                    link.abort()
                    raise
                except LinkClosed:
                    link.abort()  # the cause (keep-alive, broker) was reported where it was seen
                    self._emit(Disconnected, reason="setup failed: connection lost")
                    continue
                except Exception as exc:
                    link.abort()
                    self._fail("connect", exc)
                    self._emit(Disconnected, reason=f"setup failed: {type(exc).__name__}: {exc}")
                    continue
                if lost_at is not None:
                    self._counts["reconnects"] += 1
                    self._emit(Reconnected, attempts=attempt, downtime=self._now() - lost_at)
                attempt = 0
                await self._set_link(link)
                if not self._stopping:
                    self._set_state("connected")
                await link.closed()
            finally:
                watchdog.cancel()
            lost_at = self._now()
            await self._set_link(None)
            # The receiver is not cancelled: it hands over what amqtt already acknowledged, then ends.
            if not self._stopping:
                self._emit(Disconnected, reason="connection lost")
                self._set_state("reconnecting")

    async def _watch(self, link: Link) -> None:
        """Ping every third of the keep-alive; a broker from which nothing at all arrived in
        the third after a PINGREQ is taken for gone (half-open TCP, crash, partition) and the
        link is dropped.

        Anything from the broker proves it alive, not only the PINGRESP: on a slow link the
        PINGRESP queues behind the data the broker sent first, and dropping that link would
        only make the broker send it all again. Pings go out every interval even while
        earlier ones wait for their answer, so the broker hears from an otherwise quiet
        client within its keep-alive.

        amqtt pings by itself only after ``keep_alive - 1`` idle seconds, never gives up
        waiting, and leaves its ping task unreferenced; pinging more often than that keeps
        its own pinger from ever starting.
        """
        interval = max(0.5, (self.settings.keep_alive - 1) / 3)
        pings: dict[asyncio.Task[bool], None] = {}  # ordered: a run must replay exactly
        heard: int | None = None  # link.received when the last PINGREQ went out
        try:
            while True:
                await asyncio.sleep(interval)
                if heard is not None and link.received == heard:
                    if link.is_open:
                        silent = TimeoutError(f"nothing from the broker within {interval}s of a PINGREQ; dropping the connection")
                        self._fail("keepalive", silent)
                    link.abort()
                    return
                heard = link.received
                ping = asyncio.create_task(link.ping(), name=f"bus-{self.client_id}-ping")
                pings[ping] = None
                ping.add_done_callback(lambda done: pings.pop(done, None))
        finally:
            for ping in list(pings):
                ping.cancel()

    async def _on_open(self, link: Link) -> None:
        stale = sorted(self._stale - self._subs.keys())
        if stale:
            await link.unsubscribe(stale)
        self._stale.clear()
        filters = [(p, self._granted(p) or 0) for p in self._subs]
        await self._subscribe_on(link, [*filters, (self.reply_topic, 1)])
        online = self._availability("online")
        payload = encode(online)
        await link.publish(self.availability_topic, payload, 1, True)
        self._published(self.availability_topic, _Out(online, payload, 1, True, self._now()))

    async def _subscribe_on(self, link: Link, filters: list[tuple[str, int]]) -> list[str]:
        """Subscribe; returns the filters the broker refused (each reported as a failure).
        ``TimeoutError`` if the broker read the SUBSCRIBE and never answered."""
        try:
            codes = await link.subscribe(filters)
        except LinkClosed:
            return []  # subscribed again on reconnect
        refused = [pattern for (pattern, _), code in zip(filters, codes, strict=False) if code == 0x80]
        for pattern in refused:
            self._fail("subscribe", PermissionError(_refusal(pattern)), topic=pattern)
        return refused

    async def _set_link(self, link: Link | None) -> None:
        assert self._connected is not None
        self._link = link
        if link is None:
            self._connected.clear()
        else:
            self._connected.set()
        self._link_changed.fire()

    # -- receiving -----------------------------------------------------------------------

    def _start_receiver(self, link: Link) -> None:
        receiver = asyncio.create_task(
            self._receive_loop(link, after=self._receiver), name=f"bus-{self.client_id}-receive"
        )
        self._receiver = receiver
        self._receivers.add(receiver)
        receiver.add_done_callback(self._receivers.discard)

    async def _receive_loop(self, link: Link, after: asyncio.Task[None] | None = None) -> None:
        # The previous connection's receiver may still be handing over what amqtt
        # acknowledged there; messages from this one wait, so each publisher's order holds.
        try:
            if after is not None:
                await asyncio.wait([after])
            while (msg := await link.receive()) is not None:
                await self._on_message(msg.topic, bytes(msg.data), msg.qos or 0, bool(msg.retain))
        except asyncio.CancelledError:
            # Stopped: amqtt acknowledged these on arrival, so the broker will not send them
            # again. They are lost; say so rather than losing them silently.
            for msg in link.leftovers():
                self._drop("in", msg.topic, "shutdown", _envelope_id(bytes(msg.data)))
            raise

    async def _on_message(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        assert self._loop is not None
        try:
            env = decode(payload, max_size=self.settings.max_payload)
        except EnvelopeError as exc:
            self._fail("decode", exc, topic=topic)
            self._drop("in", topic, "invalid", None)
            return
        # Retained copies are state sent on (re)subscribe, not redeliveries: a handler
        # subscribed later must still get the current state.
        if not retain and self._dedup.seen(env.id, self._now()):
            self._drop("in", topic, "duplicate", env.id)
            return
        future = self._pending.get(env.correlation_id or "") if env.kind in (REPLY_KIND, REPLY_ERROR_KIND) else None
        if future is not None:
            # Replies skip the inbound queue: a handler awaiting request() must not wait
            # behind itself.
            self._delivered(Message(topic, env, qos, retain), 0)
            if not future.done():
                future.set_result(env)
            return
        try:
            await self._inbox.put(topic, Message(topic, env, qos, retain))
        except asyncio.CancelledError:
            self._drop("in", topic, "shutdown", env.id)
            raise

    async def _dispatch_loop(self) -> None:
        while True:
            topic, msg = await self._inbox.get()
            self._dispatching = True
            try:
                handlers = [h for p, hs in list(self._subs.items()) if matches(p, topic) for _, h in list(hs.values())]
                self._delivered(msg, len(handlers))
                for handler in handlers:
                    await self._call(handler, msg)
            finally:
                self._dispatching = False
                self._progress.fire()

    async def _call(self, handler: Handler, msg: Message) -> None:
        try:
            result = handler(msg)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            name = getattr(handler, "__qualname__", repr(handler))
            _log.exception("handler %s failed on %s (envelope %s)", name, msg.topic, msg.envelope.id)
            self._fail("handler", exc, topic=msg.topic)
            report = {
                "topic": msg.topic,
                "envelope_id": msg.envelope.id,
                "handler": name,
                "error": type(exc).__name__,
                "message": str(exc),
            }
            self._enqueue_nowait(self.error_topic, self._factory.make("error", report))

    async def _reply(self, req: Envelope, kind: str, data: Any) -> None:
        if req.correlation_id is None:
            return
        topic = self.settings.topic("reply", req.source)
        await self.publish(topic, data, kind=kind, correlation_id=req.correlation_id)

    # -- sending -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            topic, out = await self._outbox.get()
            self._sending = (topic, out)
            link: Link | None = None
            while True:
                await self._link_changed.wait_for(_replaced(self, link))
                link = self._link
                assert link is not None
                try:
                    await link.publish(topic, out.payload, out.qos, out.retain)
                except LinkClosed:
                    continue  # wait for the next connection and send it again
                except Exception as exc:
                    self._fail("publish", exc, topic=topic)
                    self._drop("out", topic, "error", out.envelope.id)
                    break
                self._published(topic, out)
                break
            self._sending = None
            self._progress.fire()

    def _enqueue_nowait(self, topic: str, env: Envelope, *, retain: bool = False, control: bool | None = None) -> None:
        """Queue a message of the client's own without waiting (errors, availability)."""
        out = _Out(env, encode(env, max_size=self.settings.max_payload), 1, retain, self._now())
        self._handed_over(topic, out, control)
        if self._outbox.put_nowait(topic, out, control=control) is None:
            # Full under a 'block' rule the user set for this topic: never wait here.
            if control:
                self._outbox.push_front(topic, out, control=control)
            else:
                self._drop("out", topic, "overflow", env.id, band=self._outbox.queue.band_of(topic, control), policy="block")

    # -- heartbeat -----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            if self.connected and not self._stopping:
                await self.publish(
                    self.health_topic, self.health().model_dump(mode="json"), kind="health", qos=0, control=True
                )

    # -- helpers -------------------------------------------------------------------------

    def _availability(self, status: str) -> Envelope:
        return self._factory.make("availability", {"status": status})

    def _merge_out(self, policy: OverflowPolicy, old: _Out, new: _Out) -> _Out:
        assert policy.merge is not None
        env = policy.merge(old.envelope, new.envelope)
        return _Out(env, encode(env, max_size=self.settings.max_payload), new.qos, new.retain or old.retain, old.queued)

    @staticmethod
    def _merge_in(policy: OverflowPolicy, old: Message, new: Message) -> Message:
        assert policy.merge is not None
        return Message(new.topic, policy.merge(old.envelope, new.envelope), new.qos, new.retain)

    def _idle(self) -> bool:
        return not (len(self._outbox) or self._sending or len(self._inbox) or self._dispatching)

    def _check_open(self) -> None:
        if self._stopping or self._state == "stopped":
            raise BusClosed(f"client {self.client_id} is {self._state}; make a new BusClient")
        if self._state == "new":
            raise BusClosed(f"client {self.client_id} is not started; use 'async with BusClient(...)' or await start()")

    async def _cancel_tasks(self) -> None:
        tasks = [*self._tasks, *self._receivers]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    def _finish(self) -> None:
        if self._sending is not None:
            topic, out = self._sending
            self._drop("out", topic, "shutdown", out.envelope.id)
            self._sending = None
        for topic, out in self._outbox.queue.drain():
            self._drop("out", topic, "shutdown", out.envelope.id)
        for topic, msg in self._inbox.queue.drain():
            self._drop("in", topic, "shutdown", msg.envelope.id)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusClosed(f"client {self.client_id} stopped before the reply came"))
        self._link = None
        if self._connected is not None:
            self._connected.clear()
        self._set_state("stopped")

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _set_state(self, new: str) -> None:
        if new != self._state:
            old, self._state = self._state, new
            self._emit(StateChanged, old=old, new=new)

    def _published(self, topic: str, out: _Out) -> None:
        self._counts["published"] += 1
        env = out.envelope
        self._emit(
            Published,
            topic=topic,
            qos=out.qos,
            retain=out.retain,
            id=env.id,
            source=env.source,
            seq=env.seq,
            kind=env.kind,
            size=len(out.payload),
            queued=out.queued,
        )

    def _handed_over(self, topic: str, out: _Out, control: bool | None) -> None:
        queue = self._outbox.queue
        self._emit(
            HandedOver,
            topic=topic,
            qos=out.qos,
            id=out.envelope.id,
            band=queue.band_of(topic, control),
            policy=queue.policy_for(topic)[1].mode,
        )

    def _delivered(self, msg: Message, handlers: int) -> None:
        self._counts["delivered"] += 1
        env = msg.envelope
        self._emit(
            Delivered,
            topic=msg.topic,
            qos=msg.qos,
            retain=msg.retain,
            id=env.id,
            source=env.source,
            seq=env.seq,
            kind=env.kind,
            handlers=handlers,
        )

    def _evicted(self, direction: str, ev: Evicted[Any]) -> None:
        env = ev.value.envelope
        by = ev.replaced_by.envelope.id if ev.replaced_by is not None else None
        self._drop(direction, ev.topic, ev.reason, env.id, band=ev.band, policy=ev.policy, replaced_by=by)

    def _drop(self, direction: str, topic: str, reason: str, envelope_id: str | None, **where: str | None) -> None:
        """``where``: ``band``, ``policy``, ``replaced_by`` of a queue's overflow (see ``Dropped``)."""
        self._counts["dropped"] += 1
        self._emit(Dropped, direction=direction, topic=topic, reason=reason, id=envelope_id, **where)

    def _fail(self, where: str, exc: BaseException, *, topic: str | None = None) -> None:
        self._counts["errors"] += 1
        now = self._now()
        self._last_error = LastError(where=where, error=type(exc).__name__, message=str(exc), at=now)
        self._emit(Failed, where=where, error=type(exc).__name__, message=str(exc), topic=topic)

    def _emit(self, cls: type[Event], **fields: Any) -> None:
        event = cls(client=self.client_id, at=self._now(), **fields)
        try:
            self._observer(event)
        except Exception:
            _log.exception("observer failed on %s event; the bus carries on", event.name)
