"""Overflow policies under a burst and the control band overtaking data, end to end.

Outbound: the publisher is cut off from the broker by a relay (the broker and the
subscriber's session stay up), a burst is published into its bounded queue, then the link
is restored. Inbound: the subscriber's handler is held while a burst arrives.
"""

from __future__ import annotations

import asyncio

from _bus_support import WAIT, Inbox, Recorder, Relay, eventually, make_client, running

from system import Envelope, OverflowPolicy

CAP = 5
BURST = 30


def _sum_merge(old: Envelope, new: Envelope) -> Envelope:
    return new.model_copy(update={"data": old.data + new.data})


async def _outbound_burst(target, policy: OverflowPolicy, *, control=(), topics=None, capacity=CAP):
    """Publish BURST messages (or one per topic in ``topics``) while cut off; returns
    (received messages, publisher recorder)."""
    relay = Relay(target.port)
    await relay.restore()
    rec = Recorder()
    try:
        async with (
            make_client(target, "sub") as sub,
            make_client(
                relay, "pub", rec, outbound_capacity=capacity, policies={"burst/#": policy}, control=control
            ) as pub,
        ):
            inbox = Inbox()
            await sub.subscribe("burst/#", inbox)
            await sub.subscribe("cmd/#", inbox)
            await relay.cut()
            await rec.wait_for("disconnect")
            publisher = asyncio.create_task(_publish_all(pub, topics or ["burst/x"] * BURST))
            if policy.mode == "block" and len(topics or ["burst/x"] * BURST) > capacity + 1:
                # Backpressure: the queue fills (plus the one message the sender holds) and
                # the publisher waits; nothing is discarded.
                await eventually(lambda: pub.health().outbound_depth == capacity + 1)
                assert not publisher.done()
            else:
                await asyncio.wait_for(publisher, WAIT)
            await relay.restore()
            await asyncio.wait_for(publisher, WAIT)
            await pub.flush(WAIT)
            expected = len(topics or ["burst/x"] * BURST) - len(rec.of("drop"))
            await inbox.wait(expected)
            return inbox.messages, rec
    finally:
        await relay.cut()


async def _publish_all(pub, topics: list[str]) -> None:
    for i, topic in enumerate(topics):
        await pub.publish(topic, i, control=True if topic.startswith("cmd/") else None)


def test_block_applies_backpressure_and_loses_nothing(target) -> None:
    async def main() -> None:
        async with running(target):
            got, rec = await _outbound_burst(target, OverflowPolicy.block())
            assert [m.data for m in got] == list(range(BURST))
            assert not rec.of("drop")

    asyncio.run(main())


def test_drop_discards_the_overflow_and_counts_it(target) -> None:
    async def main() -> None:
        async with running(target):
            got, rec = await _outbound_burst(target, OverflowPolicy.drop())
            data = [m.data for m in got]
            assert data == list(range(len(data)))  # the first ones, in order
            assert len(data) in (CAP, CAP + 1)  # the queue, plus the one the sender may hold
            drops = rec.of("drop", direction="out", reason="overflow")
            assert len(drops) == BURST - len(data)

    asyncio.run(main())


def test_latest_keeps_the_newest(target) -> None:
    async def main() -> None:
        async with running(target):
            got, rec = await _outbound_burst(target, OverflowPolicy.latest())
            data = [m.data for m in got]
            assert data[-CAP:] == list(range(BURST - CAP, BURST))  # the newest survive, in order
            assert len(data) <= CAP + 1
            assert len(rec.of("drop", direction="out", reason="superseded")) == BURST - len(data)

    asyncio.run(main())


def test_coalesce_merges_without_losing_the_total(target) -> None:
    async def main() -> None:
        async with running(target):
            got, rec = await _outbound_burst(target, OverflowPolicy.coalesce(_sum_merge))
            assert sum(m.data for m in got) == sum(range(BURST))
            assert len(got) <= CAP + 1
            assert len(rec.of("drop", direction="out", reason="coalesced")) == BURST - len(got)

    asyncio.run(main())


def test_control_band_overtakes_queued_data_outbound(target) -> None:
    async def main() -> None:
        async with running(target):
            topics = ["burst/x"] * 10 + ["cmd/stop"]
            got, _ = await _outbound_burst(
                target, OverflowPolicy.block(), control=["cmd/#"], topics=topics, capacity=len(topics)
            )
            order = [m.topic for m in got]
            # Only the data message the sender already held may precede the command.
            assert order.index("cmd/stop") <= 1
            assert [m.data for m in got if m.topic == "burst/x"] == list(range(10))

    asyncio.run(main())


async def _held_subscriber(target, policies, control=()):
    rec = Recorder()
    sub = make_client(target, "sub", rec, inbound_capacity=CAP, policies=policies, control=control)
    gate, handled, started = asyncio.Event(), Inbox(), asyncio.Event()

    async def slow(msg) -> None:
        started.set()
        await gate.wait()
        handled(msg)

    await sub.subscribe("burst/#", slow)
    await sub.subscribe("cmd/#", handled)
    return sub, rec, gate, handled, started


def test_inbound_drop_under_a_burst_to_a_slow_handler(target) -> None:
    async def main() -> None:
        async with running(target):
            sub, rec, gate, handled, started = await _held_subscriber(target, {"burst/#": OverflowPolicy.drop()})
            async with sub, make_client(target, "pub") as pub:
                for i in range(BURST):
                    await pub.publish("burst/x", i)
                await asyncio.wait_for(started.wait(), WAIT)
                # One in the handler, CAP queued, the rest dropped (counted) as they arrive.
                await rec.wait_for("drop", count=BURST - CAP - 1, direction="in", reason="overflow")
                gate.set()
                await handled.wait(CAP + 1)
                assert handled.data == list(range(CAP + 1))
                assert sub.health().dropped == BURST - CAP - 1

    asyncio.run(main())


def test_inbound_latest_hands_the_newest_to_a_slow_handler(target) -> None:
    async def main() -> None:
        async with running(target):
            sub, rec, gate, handled, started = await _held_subscriber(target, {"burst/#": OverflowPolicy.latest()})
            async with sub, make_client(target, "pub") as pub:
                for i in range(BURST):
                    await pub.publish("burst/x", i)
                await asyncio.wait_for(started.wait(), WAIT)
                await rec.wait_for("drop", count=BURST - CAP - 1, direction="in", reason="superseded")
                gate.set()
                await handled.wait(CAP + 1)
                assert handled.data == [0, *range(BURST - CAP, BURST)]

    asyncio.run(main())


def test_control_band_overtakes_queued_data_inbound(target) -> None:
    async def main() -> None:
        async with running(target):
            sub, _rec, gate, handled, started = await _held_subscriber(
                target, {"burst/#": OverflowPolicy.block()}, control=["cmd/#"]
            )
            async with sub, make_client(target, "pub") as pub:
                for i in range(4):
                    await pub.publish("burst/x", i)
                await asyncio.wait_for(started.wait(), WAIT)
                await eventually(lambda: sub.health().inbound_depth == 3)  # 0 is in the handler
                await pub.publish("cmd/stop", "stop")
                await eventually(lambda: sub.health().inbound_depth == 4)
                gate.set()
                await handled.wait(5)
                assert handled.data == [0, "stop", 1, 2, 3]

    asyncio.run(main())


def test_inbound_coalesce_merges_what_a_slow_handler_has_not_taken_yet(target) -> None:
    async def main() -> None:
        async with running(target):
            policy = OverflowPolicy.coalesce(_sum_merge)
            sub, rec, gate, handled, started = await _held_subscriber(target, {"burst/#": policy})
            async with sub, make_client(target, "pub") as pub:
                for i in range(BURST):
                    await pub.publish("burst/x", i)
                await asyncio.wait_for(started.wait(), WAIT)
                await rec.wait_for("drop", count=BURST - CAP - 1, direction="in", reason="coalesced")
                gate.set()
                await handled.wait(CAP + 1)
                assert sum(handled.data) == sum(range(BURST)) and len(handled.data) == CAP + 1

    asyncio.run(main())
