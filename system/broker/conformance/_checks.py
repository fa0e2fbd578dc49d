"""One check per MQTT 3.1.1 normative statement, each against any broker at host:port.

A check passes by returning (optionally a detail), fails by raising ``Fail`` naming what the
broker did. Absence ("X must not arrive") is checked against a marker message sent after the
action: whatever arrives before the marker is what the broker did.
"""

from __future__ import annotations

import asyncio

from system.broker.conformance._registry import Check, Ctx, Fail, Skip, area, statement
from system.broker.conformance._wire import (
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    Closed,
    RawClient,
    ack_bytes,
    connect_bytes,
    packet,
    publish_bytes,
    subscribe_bytes,
    utf8,
)


def _expect(cond: bool, msg: str) -> None:
    if not cond:
        raise Fail(msg)


async def _marker(ctx: Ctx, topic: str, payload: bytes = b"marker") -> None:
    pub = await ctx.client("mk")
    await pub.publish(topic, payload, qos=1)
    await pub.disconnect()


# ---------------------------------------------------------------- CONNECT / CONNACK
area("connect")


@statement("MQTT-3.2.2-1", "clean_session_1_session_present_0", "CleanSession=1: CONNACK session present is 0")
async def _sp_clean(ctx: Ctx) -> None:
    a = await ctx.client("a", clean=False)
    await a.subscribe([(ctx.topic("t"), 1)])
    await ctx.leave(a)
    a = await ctx.client("a", clean=True)
    _expect(not a.session_present, "session present = 1 on a CleanSession=1 CONNECT")


@statement("MQTT-3.2.2-2", "stored_session_present_1", "CleanSession=0 with a stored session: session present is 1")
async def _sp_stored(ctx: Ctx) -> None:
    a = await ctx.client("a", clean=False)
    await a.subscribe([(ctx.topic("t"), 1)])
    await ctx.leave(a)
    await asyncio.sleep(ctx.target.away)  # offline for a while, not just a blip
    a = await ctx.client("a", clean=False)
    _expect(a.session_present, f"session present = 0 after {ctx.target.away} s away (anonymous CleanSession=0)")


@statement("MQTT-3.2.2-3", "no_stored_session_present_0", "CleanSession=0 without a stored session: session present is 0")
async def _sp_none(ctx: Ctx) -> None:
    a = await ctx.client("a", clean=False)
    _expect(not a.session_present, "session present = 1 for a client id never seen before")


@statement("MQTT-3.1.3-6", "zero_byte_client_id_gets_unique_id", "zero-byte ClientId with CleanSession=1 is accepted and gets its own id")
async def _zero_id(ctx: Ctx) -> None:
    a, b = await ctx.open(), await ctx.open()
    ra, rb = await a.connect(b""), await b.connect(b"")
    _expect(ra.return_code == 0 and rb.return_code == 0, f"refused: {ra.return_code}, {rb.return_code}")
    _expect(await a.ping() and await b.ping(), "the second zero-byte client took over the first")


@statement("MQTT-3.1.3-8", "zero_byte_client_id_clean_0_rejected", "zero-byte ClientId with CleanSession=0: CONNACK 0x02 and close")
async def _zero_id_persistent(ctx: Ctx) -> None:
    a = await ctx.open()
    ack = await a.connect(b"", clean=False)
    _expect(ack.return_code == 2, f"CONNACK return code {ack.return_code}, expected 2 (identifier rejected)")
    _expect(await a.closed(), "connection left open after identifier rejected")


@statement("MQTT-3.1.0-1", "first_packet_not_connect_closes", "a first packet other than CONNECT closes the connection")
async def _first_not_connect(ctx: Ctx) -> None:
    a = await ctx.open()
    await a.send(packet(12, 0, b""))
    _expect(await a.closed(), "connection left open after PINGREQ as first packet")
    _expect(not any(p.type == 13 for p in a.backlog), "PINGREQ before CONNECT was answered")
    await ctx.alive()


@statement("MQTT-3.1.0-2", "second_connect_closes", "a second CONNECT is a protocol violation: disconnect the client")
async def _second_connect(ctx: Ctx) -> None:
    a = await ctx.client("a")
    await a.send(connect_bytes(ctx.cid("a")))
    _expect(await a.closed(), "connection left open after a second CONNECT")


@statement("MQTT-3.1.4-2", "client_id_takeover", "a CONNECT with a connected ClientId disconnects the existing client")
async def _takeover(ctx: Ctx) -> None:
    problems = []
    for clean in (True, False):
        old = await ctx.client(f"a{int(clean)}", clean=clean)
        new = await ctx.client(f"a{int(clean)}", clean=clean)
        if not await old.closed():
            problems.append(f"CleanSession={int(clean)}: the existing connection was not closed")
            continue
        try:
            await new.subscribe([(ctx.topic(f"t{int(clean)}"), 1)])
            await _marker(ctx, ctx.topic(f"t{int(clean)}"))
            await new.messages_until(b"marker")
            await new.disconnect()
        except (TimeoutError, Closed) as exc:
            what = "closed" if isinstance(exc, Closed) else "gets no messages"
            problems.append(f"CleanSession={int(clean)}: the new connection {what} after the take-over")
    _expect(not problems, "; ".join(problems))


@statement("MQTT-3.1.2-2", "unsupported_protocol_level_0x01", "unsupported protocol level: CONNACK 0x01 and close")
async def _bad_level(ctx: Ctx) -> None:
    a = await ctx.open()
    ack = await a.connect(ctx.cid("a"), level=42)
    _expect(ack.return_code == 1, f"CONNACK return code {ack.return_code}, expected 1")
    _expect(await a.closed(), "connection left open after unacceptable protocol level")


# ---------------------------------------------------------------- sessions
area("sessions")


async def _keeps_subscription(ctx: Ctx, creds: bool) -> None:
    a = await ctx.client("a", clean=False, creds=creds)
    await a.subscribe([(ctx.topic("t"), 1)])
    await ctx.leave(a)
    await asyncio.sleep(ctx.target.away)  # offline for a while, not just a blip
    a = await ctx.client("a", clean=False, creds=creds)
    await _marker(ctx, ctx.topic("t"))
    try:
        await a.messages_until(b"marker")
    except TimeoutError:
        raise Fail(f"subscription lost after {ctx.target.away} s away with CleanSession=0") from None


@statement("MQTT-3.1.2-4", "clean_session_0_keeps_subscriptions", "CleanSession=0: subscriptions survive a disconnect (anonymous)")
async def _keep_subs(ctx: Ctx) -> None:
    await _keeps_subscription(ctx, creds=False)


@statement("MQTT-3.1.2-4", "clean_session_0_keeps_subscriptions_with_credentials", "same, client with username/password")
async def _keep_subs_creds(ctx: Ctx) -> None:
    await _keeps_subscription(ctx, creds=True)


async def _queues_while_away(ctx: Ctx, creds: bool) -> None:
    a = await ctx.client("a", clean=False, creds=creds)
    await a.subscribe([(ctx.topic("t"), 2)])
    await ctx.leave(a)
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("t"), b"q1", qos=1)
    await pub.publish(ctx.topic("t"), b"q2", qos=2, pid=2)
    a = await ctx.client("a", clean=False, creds=creds)
    got: list[bytes] = []
    try:
        while len(got) < 2:
            p = await a.recv(PUBLISH)
            await a.ack(p)
            got.append(p.payload)
    except TimeoutError:
        raise Fail(f"QoS 1/2 messages published while away not delivered on reconnect (got {got})") from None
    _expect(got == [b"q1", b"q2"], f"queued messages came as {got}")


@statement("MQTT-3.1.2-5", "clean_session_0_queues_qos1_qos2_while_away", "CleanSession=0: QoS 1/2 messages are kept while the client is away (anonymous)")
async def _queue_anon(ctx: Ctx) -> None:
    await _queues_while_away(ctx, creds=False)


@statement("MQTT-3.1.2-5", "clean_session_0_queues_with_credentials", "same, client with username/password")
async def _queue_creds(ctx: Ctx) -> None:
    await _queues_while_away(ctx, creds=True)


@statement("MQTT-3.1.2-6", "clean_session_1_state_not_reused", "a CleanSession=1 session's state is not reused by a later CleanSession=0 connection")
async def _clean_not_reused(ctx: Ctx) -> None:
    a = await ctx.client("a", clean=True)
    await a.subscribe([(ctx.topic("t"), 1)])
    await a.abort()  # the session ends with the connection; reconnect at once
    a = await ctx.client("a", clean=False)
    _expect(not a.session_present, "session present = 1 right after a CleanSession=1 session ended")
    await a.subscribe([(ctx.topic("m"), 1)])
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("t"), b"stale", qos=1)
    await pub.publish(ctx.topic("m"), b"marker", qos=1)
    got = [p.payload for p in await a.messages_until(b"marker")]
    _expect(b"stale" not in got, "the CleanSession=1 connection's subscription survived into the next session")
    await ctx.leave(a)
    a = await ctx.client("a", clean=False)
    _expect(a.session_present, "the CleanSession=0 session that followed was not kept")


@statement("MQTT-3.1.2-6", "clean_session_1_discards_persistent_session", "CleanSession=1 discards an earlier CleanSession=0 session")
async def _clean_discards(ctx: Ctx) -> None:
    a = await ctx.client("a", clean=False)
    await a.subscribe([(ctx.topic("t"), 1)])
    await ctx.leave(a)
    a = await ctx.client("a", clean=True)
    await ctx.leave(a)
    a = await ctx.client("a", clean=False)
    _expect(not a.session_present, "session present = 1 after a CleanSession=1 connection in between")


# ---------------------------------------------------------------- delivery
area("delivery")


@statement("MQTT-3.8.4-6", "delivered_qos_is_min_of_publish_and_granted", "delivered QoS = min(published QoS, granted QoS)")
async def _qos_min(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("lo"), 0), (ctx.topic("hi"), 2)], pid=1)
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("lo"), b"2to0", qos=2)
    await pub.publish(ctx.topic("hi"), b"0to2", qos=0)
    await pub.publish(ctx.topic("hi"), b"1to2", qos=1, pid=3)
    await pub.publish(ctx.topic("hi"), b"marker", qos=0)
    got = {p.payload: p.qos for p in await s.messages_until(b"marker")}
    want = {b"2to0": 0, b"0to2": 0, b"1to2": 1, b"marker": 0}
    _expect(got == want, f"delivered QoS {got}, expected {want}")


@statement("MQTT-3.3.5-1", "overlapping_subscriptions_max_qos", "overlapping subscriptions: delivered respecting the maximum QoS")
async def _overlap(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("#"), 0), (ctx.topic("x"), 1)])
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("x"), b"m", qos=1)
    await pub.publish(ctx.topic("y"), b"marker", qos=0)
    got = [(p.payload, p.qos) for p in await s.messages_until(b"marker")]
    _expect((b"m", 1) in got, f"no copy at QoS 1 of a QoS 1 message matching a QoS 1 subscription: {got}")


@statement("MQTT-3.8.4-3", "resubscribe_replaces_subscription", "an identical filter replaces the existing subscription (new QoS)")
async def _resub(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("t"), 1)])
    granted = await s.subscribe([(ctx.topic("t"), 0)], pid=2)
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("t"), b"m", qos=1)
    await pub.publish(ctx.topic("t"), b"marker", qos=0)
    got = [(p.payload, p.qos) for p in await s.messages_until(b"marker")]
    _expect(got == [(b"m", 0), (b"marker", 0)], f"after re-subscribing at QoS 0 (granted {granted}) got {got}")


@statement("MQTT-3.10.4-1", "unsubscribe_stops_delivery", "UNSUBSCRIBE deletes the subscription with that exact filter")
async def _unsub(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("a/+"), 1), (ctx.topic("m"), 1)])
    await s.unsubscribe([ctx.topic("a/+")], pid=2)
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("a/x"), b"after", qos=1)
    await pub.publish(ctx.topic("m"), b"marker", qos=1, pid=2)
    got = [p.payload for p in await s.messages_until(b"marker")]
    _expect(got == [b"marker"], f"still delivered after UNSUBSCRIBE: {got}")


@statement("MQTT-2.2.3", "large_payload_delivered", "a 2 MiB payload (4-byte remaining length) is delivered intact")
async def _large(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("t"), 1)])
    pub = await ctx.client("p")
    payload = bytes(range(256)) * 8192
    await pub.publish(ctx.topic("t"), payload, qos=1)
    p = await s.recv(PUBLISH)
    _expect(p.payload == payload, f"got {len(p.payload)} bytes, expected {len(payload)}")


@statement("MQTT-4.6.0-5", "order_per_topic_qos1", "QoS 1 messages on one topic arrive in the order published")
async def _order(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("t"), 1)])
    pub = await ctx.client("p")
    n = 50
    for i in range(n):  # pipelined: all in flight at once
        await pub.send(publish_bytes(ctx.topic("t"), b"%d" % i, qos=1, pid=i + 1))
    for _ in range(n):
        await pub.recv(PUBACK)
    got: list[int] = []
    while len(got) < n:
        p = await s.recv(PUBLISH)
        await s.ack(p)
        got.append(int(p.payload))
    _expect(got == list(range(n)), f"order broken: {got}")


@statement("MQTT-4.6.0-6", "order_kept_across_reconnect", "messages queued while away arrive in order after reconnect")
async def _order_reconnect(ctx: Ctx) -> None:
    s = await ctx.client("s", clean=False)
    await s.subscribe([(ctx.topic("t"), 1)])
    await ctx.leave(s)
    pub = await ctx.client("p")
    n = 20
    for i in range(n):
        await pub.publish(ctx.topic("t"), b"%d" % i, qos=1, pid=i + 1)
    s = await ctx.client("s", clean=False)
    got: list[int] = []
    try:
        while len(got) < n:
            p = await s.recv(PUBLISH)
            await s.ack(p)
            got.append(int(p.payload))
    except TimeoutError:
        raise Fail(f"only {got} of {n} queued messages arrived") from None
    _expect(got == list(range(n)), f"order broken: {got}")


@statement("MQTT-4.4.0-1", "unacked_publish_resent_with_dup", "an unacknowledged QoS 1 PUBLISH is re-sent with DUP=1 on reconnect")
async def _resend_publish(ctx: Ctx) -> None:
    s = await ctx.client("s", clean=False)
    await s.subscribe([(ctx.topic("t"), 1)])
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("t"), b"m", qos=1)
    first = await s.recv(PUBLISH)  # deliberately not acknowledged
    await s.abort()
    s = await ctx.client("s", clean=False)
    try:
        again = await s.recv(PUBLISH)
    except TimeoutError:
        raise Fail("unacknowledged QoS 1 message never re-sent after reconnect (amqtt issue 401)") from None
    _expect(again.payload == b"m" and again.dup, f"re-sent as {again!r}, expected DUP=1")
    _expect(again.pid == first.pid, f"re-sent with packet id {again.pid}, first sent as {first.pid}")
    await s.ack(again)


@statement("MQTT-4.4.0-1", "unacked_publish_kept_while_connected", "a QoS 1 PUBLISH left unacknowledged for a while is still re-sent on reconnect")
async def _resend_after_a_while(ctx: Ctx) -> None:
    s = await ctx.client("s", clean=False)
    await s.subscribe([(ctx.topic("t"), 1)])
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("t"), b"m", qos=1)
    await s.recv(PUBLISH)  # deliberately not acknowledged ...
    await asyncio.sleep(3 * ctx.target.away)  # ... for a while, the connection still up
    await s.abort()
    s = await ctx.client("s", clean=False)
    try:
        again = await s.recv(PUBLISH)
    except TimeoutError:
        raise Fail(f"a delivery unacknowledged for {3 * ctx.target.away} s was dropped, not re-sent") from None
    _expect(again.payload == b"m" and again.dup, f"re-sent as {again!r}, expected DUP=1")
    await s.ack(again)


@statement("MQTT-4.4.0-1", "unacked_pubrel_resent", "an unacknowledged PUBREL is re-sent on reconnect")
async def _resend_pubrel(ctx: Ctx) -> None:
    s = await ctx.client("s", clean=False)
    await s.subscribe([(ctx.topic("t"), 2)])
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("t"), b"m", qos=2)
    p = await s.recv(PUBLISH)
    await s.send(ack_bytes(PUBREC, p.pid))
    rel = await s.recv(PUBREL)  # deliberately no PUBCOMP
    await s.abort()
    s = await ctx.client("s", clean=False)
    try:
        again = await s.recv(PUBREL, PUBLISH)
    except TimeoutError:
        raise Fail("PUBREL never re-sent after reconnect") from None
    _expect(again.type == PUBREL and again.pid == rel.pid, f"after reconnect got {again!r}, expected PUBREL {rel.pid}")
    await s.send(ack_bytes(PUBCOMP, again.pid))


@statement("MQTT-4.3.2-2", "puback_means_ownership", "a PUBACKed QoS 1 message is delivered although its publisher disconnects at once")
async def _ownership(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("t"), 1)])
    n = 20
    for round_ in range(3):  # a short-lived publisher: CONNECT, PUBLISHes, DISCONNECT in one segment
        pub = await ctx.open()
        burst = b"".join(publish_bytes(ctx.topic("t"), b"%d" % (round_ * n + i), qos=1, pid=i + 1) for i in range(n))
        await pub.send(connect_bytes(ctx.cid(f"p{round_}")) + burst + packet(14, 0, b""))
        for _ in range(n):
            await pub.recv(PUBACK)
        await pub.closed()
    got: list[int] = []
    try:
        while len(got) < 3 * n:
            p = await s.recv(PUBLISH)
            await s.ack(p)
            got.append(int(p.payload))
    except TimeoutError:
        missing = sorted(set(range(3 * n)) - set(got))
        raise Fail(f"{len(missing)} acknowledged messages never delivered: {missing}") from None


@statement("MQTT-4.3.3-2", "qos2_exactly_once_end_to_end", "QoS 2: a re-sent PUBLISH before PUBREL is delivered once")
async def _exactly_once(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("t"), 2)])
    pub = await ctx.client("p")
    await pub.send(publish_bytes(ctx.topic("t"), b"once", qos=2, pid=7))
    await pub.recv(PUBREC)
    await pub.send(publish_bytes(ctx.topic("t"), b"once", qos=2, pid=7, dup=True))
    await pub.recv(PUBREC)
    await pub.send(ack_bytes(PUBREL, 7))
    await pub.recv(PUBCOMP)
    await pub.publish(ctx.topic("t"), b"marker", qos=2, pid=8)
    got = [p.payload for p in await s.messages_until(b"marker")]
    _expect(got == [b"once", b"marker"], f"subscriber got {got}")


@statement("MQTT-4.3.3-2", "pubrel_answered_after_reconnect", "QoS 2: a PUBREL re-sent after reconnect gets PUBCOMP; delivered once")
async def _pubrel_reconnect(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("t"), 2)])
    pub = await ctx.client("p", clean=False)
    await pub.send(publish_bytes(ctx.topic("t"), b"once", qos=2, pid=9))
    await pub.recv(PUBREC)
    await pub.send(ack_bytes(PUBREL, 9))
    await pub.recv(PUBCOMP)  # ... which the client never sees: the connection drops
    await pub.abort()
    pub = await ctx.client("p", clean=False)
    await pub.send(ack_bytes(PUBREL, 9))  # the client re-sends the PUBREL it has no PUBCOMP for
    try:
        await pub.recv(PUBCOMP)
    except TimeoutError:
        raise Fail("re-sent PUBREL never answered with PUBCOMP: the publisher's flow can never complete") from None
    await pub.publish(ctx.topic("t"), b"marker", qos=2, pid=10)
    got = [p.payload for p in await s.messages_until(b"marker")]
    _expect(got == [b"once", b"marker"], f"subscriber got {got}")


# ---------------------------------------------------------------- retained messages
area("retained")


@statement("MQTT-3.3.1-5", "retained_stored_per_topic", "the last retained message per topic is stored and sent to new subscribers")
async def _retained_store(ctx: Ctx) -> None:
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("r/a"), b"a1", qos=1, retain=True)
    await pub.publish(ctx.topic("r/b"), b"b1", qos=1, retain=True)
    await pub.publish(ctx.topic("r/a"), b"a2", qos=1, retain=True)
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("r/+"), 1)])
    await _marker(ctx, ctx.topic("r/m"))
    got = sorted(p.payload for p in await s.messages_until(b"marker"))
    _expect(got == [b"a2", b"b1", b"marker"], f"new subscriber got {got}, expected the last retained per topic")


@statement("MQTT-3.3.1-6", "retained_only_to_matching_subscriptions", "retained messages go only to new subscriptions that match, also after other clients got them")
async def _retained_matching(ctx: Ctx) -> None:
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("r/a"), b"ra", qos=1, retain=True)
    await pub.publish(ctx.topic("r/b"), b"rb", qos=1, retain=True)
    x = await ctx.client("x")
    await x.subscribe([(ctx.topic("r/a"), 1)])
    await x.ack(await x.recv(PUBLISH))  # another client gets "ra" first
    y = await ctx.client("y")  # connects while x's subscription exists
    await y.subscribe([(ctx.topic("r/b"), 1), (ctx.topic("m"), 1)])
    await _marker(ctx, ctx.topic("m"))
    got = [p.payload for p in await y.messages_until(b"marker")]
    _expect(got == [b"rb", b"marker"], f"subscriber of r/b got {got}")


@statement("MQTT-3.3.1-8", "retain_flag_1_on_new_subscription", "a retained message sent for a new subscription has RETAIN=1")
async def _retain_flag_new(ctx: Ctx) -> None:
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("r"), b"r", qos=1, retain=True)
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("r"), 1)])
    p = await s.recv(PUBLISH)
    _expect(p.retain, f"got {p!r}")


@statement("MQTT-3.3.1-9", "retain_flag_0_on_established_subscription", "RETAIN=0 on messages for an established subscription, also when queued")
async def _retain_flag_established(ctx: Ctx) -> None:
    s = await ctx.client("s", clean=False)
    await s.subscribe([(ctx.topic("r"), 1)])
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("r"), b"live", qos=1, retain=True)
    p = await s.recv(PUBLISH)
    await s.ack(p)
    _expect(not p.retain, f"live delivery {p!r}")
    await ctx.leave(s)
    await pub.publish(ctx.topic("r"), b"queued", qos=1, retain=True, pid=2)
    s = await ctx.client("s", clean=False)
    p = await s.recv(PUBLISH)
    await s.ack(p)
    _expect(p.payload == b"queued" and not p.retain, f"queued delivery {p!r}")


@statement("MQTT-3.3.1-10", "zero_byte_retained_delivered_and_clears", "zero-byte retained PUBLISH goes to subscribers as normal and clears the topic")
async def _zero_retained(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("r"), 1)])
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("r"), b"r", qos=1, retain=True)
    await pub.publish(ctx.topic("r"), b"", qos=1, retain=True, pid=2)
    await pub.publish(ctx.topic("r"), b"marker", qos=1, pid=3)
    got = [p.payload for p in ctx.own(await s.messages_until(b"marker"))]
    _expect(got == [b"r", b"", b"marker"], f"subscriber got {got}")


@statement("MQTT-3.3.1-11", "zero_byte_retained_not_stored", "a zero-byte retained message is not stored")
async def _zero_not_stored(ctx: Ctx) -> None:
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("r/a"), b"r", qos=1, retain=True)
    await pub.publish(ctx.topic("r/a"), b"", qos=1, retain=True, pid=2)
    await pub.publish(ctx.topic("r/b"), b"", qos=1, retain=True, pid=3)
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("r/#"), 1)])
    await _marker(ctx, ctx.topic("r/m"))
    got = [p.payload for p in ctx.own(await s.messages_until(b"marker"))]
    _expect(got == [b"marker"], f"new subscriber got {got}")


@statement("MQTT-3.8.4-6", "retained_qos_is_min", "a retained message is sent at min(its QoS, granted QoS)")
async def _retained_qos(ctx: Ctx) -> None:
    pub = await ctx.client("p")
    await pub.publish(ctx.topic("r"), b"r0", qos=0, retain=True)
    await pub.publish(ctx.topic("m"), b"x", qos=1)  # a round trip so the QoS 0 message is processed
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("r"), 2)])
    p = await s.recv(PUBLISH)
    _expect(p.payload == b"r0" and p.qos == 0, f"retained QoS 0 message sent as {p!r}")


# ---------------------------------------------------------------- keepalive and will
area("keepalive")


def _will(ctx: Ctx) -> tuple[str, bytes, int, bool]:
    return (ctx.topic("will"), b"gone", 1, False)


@statement("MQTT-3.1.2-24", "keepalive_silence_disconnects", "a client silent for 1.5 x keepalive is disconnected")
async def _keepalive(ctx: Ctx) -> None:
    a = await ctx.client("a", keepalive=1)
    _expect(await a.closed(timeout=ctx.target.timeout), "silent client with keepalive 1 s never disconnected")


@statement("MQTT-3.1.2-24", "keepalive_half_packet_then_silence_disconnects", "a client that stops in the middle of a packet is disconnected too")
async def _keepalive_half(ctx: Ctx) -> None:
    a = await ctx.client("a", keepalive=1)
    await a.send(publish_bytes(ctx.topic("t"), b"x" * 100)[:20])
    _expect(await a.closed(timeout=ctx.target.timeout), "client silent mid-packet with keepalive 1 s never disconnected")


@statement("MQTT-3.1.2-8", "will_published_on_keepalive_timeout", "the will is published when the server closes a silent client")
async def _will_keepalive(ctx: Ctx) -> None:
    w = await ctx.client("w")
    await w.subscribe([(ctx.topic("will"), 1)])
    await ctx.client("a", keepalive=1, will=_will(ctx))
    try:
        p = await w.recv(PUBLISH, timeout=ctx.target.timeout)
    except TimeoutError:
        raise Fail("no will after a keepalive 1 s client went silent") from None
    _expect(p.payload == b"gone", f"got {p!r}")


@statement("MQTT-3.1.2-8", "will_published_on_abrupt_close", "the will is published when the connection drops without DISCONNECT")
async def _will_abrupt(ctx: Ctx) -> None:
    w = await ctx.client("w")
    await w.subscribe([(ctx.topic("will"), 1)])
    a = await ctx.client("a", will=_will(ctx))
    await a.abort()
    try:
        p = await w.recv(PUBLISH)
    except TimeoutError:
        raise Fail("no will after the connection dropped") from None
    _expect(p.payload == b"gone", f"got {p!r}")


@statement("MQTT-3.1.2-10", "no_will_after_disconnect", "no will after DISCONNECT, also when CONNECT, DISCONNECT and FIN come together")
async def _no_will(ctx: Ctx) -> None:
    w = await ctx.client("w")
    await w.subscribe([(ctx.topic("will"), 1)])
    for i in range(5):
        a = await ctx.client(f"a{i}", will=_will(ctx))
        await a.disconnect()  # DISCONNECT then close at once, as most clients do
        b = await ctx.open()  # a short-lived client: everything in one segment, then FIN
        await b.send(connect_bytes(ctx.cid(f"b{i}"), will=_will(ctx)) + packet(14, 0, b""))
        b.writer.write_eof()
        await b.closed()
    await _marker(ctx, ctx.topic("will"))
    got = [p.payload for p in await w.messages_until(b"marker")]
    _expect(got == [b"marker"], f"{len(got) - 1} wills published after DISCONNECT")


@statement("MQTT-3.1.2-17", "will_retain_1_publishes_retained_will", "Will Retain=1: the will is published as a retained message")
async def _will_retained(ctx: Ctx) -> None:
    a = await ctx.client("a", will=(ctx.topic("will"), b"gone", 1, True))
    await a.abort()
    w = await ctx.client("w")
    await w.subscribe([(ctx.topic("will"), 1)])
    try:
        p = await w.recv(PUBLISH)
    except TimeoutError:
        raise Fail("no retained will for a subscriber that came after the connection dropped") from None
    _expect(p.payload == b"gone" and p.retain, f"got {p!r}")


@statement("MQTT-3.12.4-1", "pingreq_answered", "PINGREQ is answered with PINGRESP")
async def _ping(ctx: Ctx) -> None:
    a = await ctx.client("a")
    _expect(await a.ping(), "no PINGRESP")


# ---------------------------------------------------------------- topics
area("topics")


@statement("MQTT-4.7.2-1", "dollar_topics_not_matched_by_wildcards", "# and + at the first level do not match $-topics")
async def _dollar(ctx: Ctx) -> str:
    s = await ctx.client("s")
    await s.subscribe([("#", 0), ("+/conf/#", 0)])
    d = await ctx.client("d")
    await d.subscribe([(f"$squall/{ctx.nonce}/#", 0), (ctx.topic("m"), 0)])
    pub = await ctx.client("p")
    marker = b"marker" + ctx.nonce.encode()
    try:  # $-topic then marker on one connection, so they are ordered
        await pub.publish(f"$squall/{ctx.nonce}/x", b"dollar", qos=1)
        await pub.publish(ctx.topic("m"), marker, qos=1, pid=2)
    except (Closed, TimeoutError):
        await _marker(ctx, ctx.topic("m"), marker)
    routed = b"dollar" in [p.payload for p in await d.messages_until(marker, ack=False)]
    got = [p.payload for p in await s.messages_until(marker, ack=False)]
    _expect(b"dollar" not in got, "a $-topic message matched '#' or '+/...'")
    return "" if routed else "broker does not route client PUBLISHes to $-topics, so only that half is checked"


@statement("MQTT-4.7.1-1", "wildcard_in_topic_name_closes", "a PUBLISH topic name with a wildcard closes the connection")
async def _wild_publish(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("#"), 0)])
    for topic in (ctx.topic("+"), ctx.topic("#")):
        a = await ctx.client("a")
        await a.send(publish_bytes(topic, b"wild", qos=0))
        _expect(await a.closed(), f"connection left open after PUBLISH to {topic!r}")
    await _marker(ctx, ctx.topic("m"))
    got = [p.payload for p in await s.messages_until(b"marker")]
    _expect(got == [b"marker"], f"wildcard topic name was routed: {got}")
    await ctx.alive()


async def _rejected_filter(ctx: Ctx, filt: str) -> None:
    a = await ctx.client("a")
    await a.send(subscribe_bytes(1, [(filt, 0)]))
    try:
        ack = await a.recv(SUBACK)
    except Closed:
        return
    _expect(ack.granted == [0x80], f"invalid filter {filt!r} granted {ack.granted}")


@statement("MQTT-4.7.1-2", "misplaced_hash_filter_rejected", "'#' not last or not alone in its level is rejected")
async def _bad_hash(ctx: Ctx) -> None:
    for f in (ctx.topic("#/x"), ctx.topic("a#")):
        await _rejected_filter(ctx, f)


@statement("MQTT-4.7.1-3", "partial_plus_filter_rejected", "'+' not filling a whole level is rejected")
async def _bad_plus(ctx: Ctx) -> None:
    for f in (ctx.topic("a+"), ctx.topic("+a/b")):
        await _rejected_filter(ctx, f)


@statement("MQTT-4.7.3-1", "empty_topic_filter_rejected", "a zero-length topic filter is rejected")
async def _empty_filter(ctx: Ctx) -> None:
    await _rejected_filter(ctx, "")


@statement("MQTT-4.7.1-2", "hash_matches_parent_and_children", "'a/#' matches 'a', 'a/b' and 'a/b/c'; '+' exactly one level")
async def _wild_match(ctx: Ctx) -> None:
    s = await ctx.client("s")
    await s.subscribe([(ctx.topic("h/#"), 0), (ctx.topic("p/+"), 0)])
    pub = await ctx.client("p")
    for t in ("h", "h/b", "h/b/c", "p", "p/b", "p/b/c"):
        await pub.publish(ctx.topic(t), t.encode(), qos=1)
    await pub.publish(ctx.topic("h/z"), b"marker", qos=1)
    got = [p.payload for p in await s.messages_until(b"marker")]
    _expect(got == [b"h", b"h/b", b"h/b/c", b"p/b", b"marker"], f"got {got}")


@statement("MQTT-3.9.3", "acl_denied_subscribe_gets_0x80", "a subscription the ACL denies gets return code 0x80")
async def _acl(ctx: Ctx) -> None:
    if ctx.target.denied_filter is None:
        raise Skip("target has no ACL-denied filter configured")
    a = await ctx.client("a", creds=True)
    granted = await a.subscribe([(ctx.target.denied_filter, 1), (ctx.topic("ok"), 1)])
    _expect(granted == [0x80, 1], f"granted {granted}, expected [0x80, 1]")


# ---------------------------------------------------------------- bad input
area("bad-input")


async def _closed_unanswered(c: RawClient) -> bool:
    """True once the broker closes the connection; False if it answers the PINGREQ sent after
    the violation (it read past it) or stays silent for the target's timeout."""
    try:
        while (await c.recv()).type != PINGRESP:
            pass
    except Closed:
        return True
    except TimeoutError:
        return False
    return False


async def _closes(ctx: Ctx, raw: bytes, what: str, connect_first: bool = True) -> None:
    """``raw`` is a protocol violation: the broker closes that connection [MQTT-4.8.0-1] without
    reading past it (a packet after a malformed one cannot even be framed), and keeps serving
    everyone else."""
    a = await ctx.client("a") if connect_first else await ctx.open()
    bystander = await ctx.client("b")
    try:  # a PINGREQ behind it: a broker that kept reading answers at once, no need to wait it out
        await a.send(raw + packet(PINGREQ, 0, b""))
    except ConnectionError:
        pass
    _expect(await _closed_unanswered(a), f"connection left open after {what}")
    _expect(await bystander.ping(), f"another client's connection stopped working after {what}")
    await ctx.alive()


@statement("MQTT-2.2.3", "bad_remaining_length_closes", "a remaining length over 4 bytes is malformed: close")
async def _bad_len(ctx: Ctx) -> None:
    await _closes(ctx, bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) + b"x" * 16, "a 5-byte remaining length")


@statement("MQTT-2.2.1", "reserved_packet_type_closes", "packet types 0 and 15 are reserved: close")
async def _reserved(ctx: Ctx) -> None:
    await _closes(ctx, bytes([0x00, 0x00]), "packet type 0")
    await _closes(ctx, bytes([0xF0, 0x00]), "packet type 15")


@statement("MQTT-1.5.3-1", "invalid_utf8_closes", "ill-formed UTF-8 in a topic closes the connection")
async def _bad_utf8(ctx: Ctx) -> None:
    await _closes(ctx, publish_bytes(b"squall/\xff\xfe", b"x"), "a topic with invalid UTF-8")
    await _closes(ctx, connect_bytes(b"\xc3\x28"), "a CONNECT with an invalid UTF-8 client id", connect_first=False)


@statement("MQTT-3.3.1-4", "publish_qos_3_closes", "a PUBLISH with both QoS bits set closes the connection")
async def _qos3(ctx: Ctx) -> None:
    await _closes(ctx, packet(PUBLISH, 0x06, b"\x00\x01t\x00\x01x"), "PUBLISH QoS 3")


@statement("MQTT-3.8.1-1", "subscribe_bad_flags_closes", "SUBSCRIBE with fixed-header flags other than 0010 closes")
async def _sub_flags(ctx: Ctx) -> None:
    await _closes(ctx, packet(8, 0x00, b"\x00\x01\x00\x01t\x00"), "SUBSCRIBE with flags 0000")


def _connect_with_flags(ctx: Ctx, flags: int, extra: bytes = b"") -> bytes:
    """A CONNECT with hand-set connect flags (clean session kept), client id and ``extra`` fields."""
    body = utf8("MQTT") + bytes([4, flags | 0x02]) + b"\x00\x00" + utf8(ctx.cid("bad")) + extra
    return packet(1, 0, body)


async def _connect_closes(ctx: Ctx, flags: int, what: str, extra: bytes = b"") -> None:
    """A first packet CONNECT with these connect flags and payload fields must close the connection."""
    await _closes(ctx, _connect_with_flags(ctx, flags, extra), what, connect_first=False)


@statement("MQTT-3.1.2-3", "connect_reserved_flag_closes", "CONNECT with the reserved flag set: disconnect")
async def _connect_reserved(ctx: Ctx) -> None:
    await _connect_closes(ctx, 0x01, "CONNECT reserved flag 1")


@statement("MQTT-3.1.2-13", "will_qos_without_will_flag_closes", "Will Flag 0 with Will QoS or Will Retain set is malformed: close")
async def _will_qos_no_flag(ctx: Ctx) -> None:
    await _connect_closes(ctx, 0x08, "CONNECT with Will QoS 1 but no Will Flag")
    await _connect_closes(ctx, 0x20, "CONNECT with Will Retain but no Will Flag")


@statement("MQTT-3.1.2-14", "will_qos_3_closes", "Will QoS 3 is malformed: close")
async def _will_qos3(ctx: Ctx) -> None:
    will = utf8(ctx.topic("will")) + utf8("x")
    await _connect_closes(ctx, 0x04 | 0x18, "CONNECT with Will QoS 3", will)


@statement("MQTT-3.1.2-22", "password_without_username_closes", "Password Flag without User Name Flag is malformed: close")
async def _password_only(ctx: Ctx) -> None:
    a = await ctx.open()
    await a.send(_connect_with_flags(ctx, 0x40, utf8("secret")))
    try:
        ack = await a.recv(2)
        _expect(ack.return_code != 0, "CONNECT with a password but no user name was accepted")
    except Closed:
        pass
    _expect(await a.closed(), "connection left open after a password without user name")


@statement("MQTT-3.8.3-3", "subscribe_without_filters_closes", "SUBSCRIBE with no topic filter is a protocol violation: close")
async def _sub_empty(ctx: Ctx) -> None:
    await _closes(ctx, packet(8, 0x02, b"\x00\x01"), "SUBSCRIBE without filters")


@statement("MQTT-3.10.3-2", "unsubscribe_without_filters_closes", "UNSUBSCRIBE with no topic filter is a protocol violation: close")
async def _unsub_empty(ctx: Ctx) -> None:
    await _closes(ctx, packet(10, 0x02, b"\x00\x01"), "UNSUBSCRIBE without filters")


@statement("MQTT-2.3.1-1", "packet_id_zero_closes", "SUBSCRIBE, UNSUBSCRIBE and QoS>0 PUBLISH need a non-zero packet id: close")
async def _pid_zero(ctx: Ctx) -> None:
    await _closes(ctx, subscribe_bytes(0, [(ctx.topic("t"), 0)]), "SUBSCRIBE with packet id 0")
    await _closes(ctx, packet(PUBLISH, 0x02, utf8(ctx.topic("t")) + b"\x00\x00x"), "QoS 1 PUBLISH with packet id 0")


@statement("MQTT-4.8.0-1", "oversize_packet_does_not_hurt_others", "a packet claiming 256 MB then dropping leaves the broker serving")
async def _oversize(ctx: Ctx) -> None:
    a = await ctx.client("a")
    bystander = await ctx.client("b")
    await a.send(bytes([0x30, 0xFF, 0xFF, 0xFF, 0x7F]) + b"\x00\x01t" + b"x" * 65536)
    await a.abort()
    _expect(await bystander.ping(), "another client's connection stopped working")
    await ctx.alive()




@statement("MQTT-4.7.1-1", "will_topic_with_wildcard_closes", "a CONNECT whose will topic has a wildcard is malformed: close")
async def _will_wildcard(ctx: Ctx) -> None:
    for topic in (ctx.topic("+"), ctx.topic("#")):
        will = utf8(topic) + utf8("x")
        await _connect_closes(ctx, 0x04, f"CONNECT with will topic {topic!r}", will)


@statement("MQTT-3.1.3-1", "connect_trailing_bytes_closes", "bytes after a CONNECT's last payload field are malformed: close")
async def _connect_trailing(ctx: Ctx) -> None:
    await _connect_closes(ctx, 0x00, "CONNECT with a byte after the client id", b"\x00")
    will = utf8(ctx.topic("will")) + utf8("x") + b"junk"
    await _connect_closes(ctx, 0x04, "CONNECT with bytes after the will message", will)


def _missing_field(flags: int, what: str) -> Check:
    async def check(ctx: Ctx) -> None:
        await _connect_closes(ctx, flags, f"CONNECT with {what}")

    return check


# A flag announces a payload field the CONNECT does not have: malformed, close.
for _ref, _slug, _flags, _what in (
    ("MQTT-3.1.2-9", "will_flag_without_will_fields_closes", 0x04, "Will Flag 1 but no will topic and message"),
    ("MQTT-3.1.2-19", "user_name_flag_without_user_name_closes", 0x80, "User Name Flag 1 but no user name"),
):
    statement(_ref, _slug, f"{_what} in the payload: close")(_missing_field(_flags, _what))


@statement("MQTT-3.3.1-2", "qos0_publish_with_dup_closes", "DUP must be 0 on a QoS 0 PUBLISH: close")
async def _qos0_dup(ctx: Ctx) -> None:
    await _closes(ctx, publish_bytes(ctx.topic("t"), b"x", qos=0, dup=True), "QoS 0 PUBLISH with DUP=1")


@statement("MQTT-2.2.2-2", "invalid_header_flags_closes", "fixed-header flags other than the packet type's (PUBREL, UNSUBSCRIBE, CONNECT, PINGREQ) close")
async def _header_flags(ctx: Ctx) -> None:
    await _closes(ctx, packet(PUBREL, 0x00, b"\x00\x01"), "PUBREL with flags 0000")
    await _closes(ctx, packet(10, 0x00, b"\x00\x01" + utf8(ctx.topic("t"))), "UNSUBSCRIBE with flags 0000")
    raw = connect_bytes(ctx.cid("bad"))
    await _closes(ctx, bytes([raw[0] | 0x01]) + raw[1:], "CONNECT with flags 0001", connect_first=False)
    await _closes(ctx, bytes([0xC1, 0x00]), "PINGREQ with flags 0001")


@statement("MQTT-4.8.0-1", "pingreq_with_body_closes", "PINGREQ has no body: one with remaining length 1 is malformed: close")
async def _ping_body(ctx: Ctx) -> None:
    await _closes(ctx, bytes([0xC0, 0x01, 0x00]), "PINGREQ with a 1-byte body")


@statement("MQTT-3.8.3-4", "subscribe_reserved_qos_bits_closes", "SUBSCRIBE requested QoS 3 or with reserved bits set: close")
async def _sub_qos_bits(ctx: Ctx) -> None:
    await _closes(ctx, subscribe_bytes(1, [(ctx.topic("t"), 3)]), "SUBSCRIBE requesting QoS 3")
    await _closes(ctx, subscribe_bytes(1, [(ctx.topic("t"), 0x04)]), "SUBSCRIBE with reserved bits in the requested QoS")


@statement("MQTT-1.5.3-2", "null_character_closes", "U+0000 in a topic name closes the connection")
async def _null_char(ctx: Ctx) -> None:
    await _closes(ctx, publish_bytes(ctx.topic("a\x00b"), b"x"), "a topic with U+0000")


@statement("MQTT-4.7.3-1", "empty_topic_name_closes", "a PUBLISH with a zero-length topic name closes the connection")
async def _empty_topic(ctx: Ctx) -> None:
    await _closes(ctx, publish_bytes("", b"x"), "PUBLISH with an empty topic name")
