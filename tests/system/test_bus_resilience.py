"""Reconnect, resubscribe, persistent sessions, queueing while away and graceful shutdown,
against the embedded amqtt broker and mosquitto."""

from __future__ import annotations

import asyncio

import pytest
from _bus_support import WAIT, Inbox, Recorder, Relay, eventually, make_client, running

from system import BusClosed


def test_reconnects_and_resubscribes_after_broker_restart(target) -> None:
    async def main() -> None:
        async with running(target):
            pub_rec, sub_rec = Recorder(), Recorder()
            async with make_client(target, "pub", pub_rec) as pub, make_client(target, "sub", sub_rec) as sub:
                inbox = Inbox()
                await sub.subscribe("r/#", inbox)
                for i in range(10):
                    await pub.publish("r/x", i)
                await inbox.wait(10)
                await target.restart()
                await sub_rec.wait_for("reconnect")  # emitted once subscriptions are restored
                await pub_rec.wait_for("reconnect")
                for i in range(10, 20):
                    await pub.publish("r/x", i)
                await inbox.wait(20)
                assert inbox.data == list(range(20))
                for rec in (pub_rec, sub_rec):
                    assert rec.of("disconnect") and rec.of("reconnect")[0].attempts >= 1
                    states = [e.new for e in rec.of("state")]
                    assert states[:2] == ["connecting", "connected"] and "reconnecting" in states
                assert sub.health().reconnects == 1 and sub.connected

    asyncio.run(main())


def test_no_qos1_message_lost_across_a_broker_restart_midstream(target) -> None:
    # Needs a broker that keeps persistent sessions across the restart: mosquitto with
    # persistence, squall's broker flavor (stock amqtt 0.12.1 keeps nothing and loses what is
    # published before the subscriber is back).

    async def main() -> None:
        async with running(target):
            sub_rec = Recorder()
            async with make_client(target, "pub") as pub, make_client(target, "sub", sub_rec) as sub:
                inbox = Inbox()
                await sub.subscribe("stream/#", inbox, qos=1)
                n = 200
                for i in range(n):
                    await pub.publish("stream/x", i, qos=1)  # queued; the sender works through them
                await inbox.wait(20)
                await target.restart()
                await inbox.wait(n)
                assert sorted(inbox.data) == list(range(n))  # nothing lost, dedup removed redeliveries
                # Messages flow from the reconnect's first byte; 'reconnect' is reported once
                # the subscriptions are restored, which may be after the last of them.
                await sub_rec.wait_for("reconnect")

    asyncio.run(main())


def test_persistent_session_delivers_qos1_missed_while_away(target) -> None:
    async def main() -> None:
        async with running(target), make_client(target, "pub") as pub:
            first = make_client(target, "worker")
            await first.subscribe("jobs/#", Inbox(), qos=1)
            await first.start()
            await first.wait_connected(WAIT)
            await first.stop()
            for i in range(10):
                await pub.publish("jobs/x", i, qos=1)
            await pub.flush(WAIT)
            again, inbox = make_client(target, "worker"), Inbox()
            await again.subscribe("jobs/#", inbox, qos=1)
            async with again:
                await inbox.wait(10)
                assert inbox.data == list(range(10))

    asyncio.run(main())


def test_messages_published_while_disconnected_go_out_after_reconnect(target) -> None:
    async def main() -> None:
        async with running(target):
            relay = Relay(target.port)
            await relay.restore()
            rec = Recorder()
            async with make_client(target, "sub") as sub, make_client(relay, "pub", rec) as pub:
                inbox = Inbox()
                await sub.subscribe("away/#", inbox)
                await relay.cut()
                await rec.wait_for("disconnect")
                for i in range(25):
                    await pub.publish("away/x", i)
                assert not pub.connected and pub.health().outbound_depth == 25
                await relay.restore()
                await inbox.wait(25)
                assert inbox.data == list(range(25))
                assert rec.of("reconnect") and not rec.of("drop")
            await relay.cut()

    asyncio.run(main())


def test_a_silent_broker_is_detected_and_the_client_reconnects(target) -> None:
    async def main() -> None:
        async with running(target):
            relay = Relay(target.port)
            await relay.restore()
            rec = Recorder()
            async with make_client(relay, "dev", rec, keep_alive=2, connect_timeout=2) as dev:
                relay.hold()  # TCP stays up, the broker goes quiet: only the client's keep-alive can tell
                await rec.wait_for("error", where="keepalive")
                await rec.wait_for("disconnect")
                relay.release()
                await rec.wait_for("reconnect")
                assert dev.connected
            await relay.cut()

    asyncio.run(main())


def test_graceful_stop_drains_queued_messages_and_publishes_offline(target) -> None:
    async def main() -> None:
        async with running(target), make_client(target, "sub") as sub:
            data, avail = Inbox(), Inbox()
            await sub.subscribe("drain/#", data)
            await sub.subscribe("squall/availability/pub", avail)
            pub_rec = Recorder()
            pub = make_client(target, "pub", pub_rec)
            await pub.start()
            await pub.wait_connected(WAIT)
            for i in range(50):
                await pub.publish("drain/x", i)
            await pub.stop()
            assert pub.state == "stopped" and not pub_rec.of("drop")
            await data.wait(50)
            assert data.data == list(range(50))
            await avail.wait(1, where=lambda m: m.data == {"status": "offline"})

    asyncio.run(main())


def test_stop_cancels_what_does_not_finish_within_the_timeout(target) -> None:
    async def main() -> None:
        async with running(target):
            rec = Recorder()
            async with make_client(target, "pub") as pub:
                sub = make_client(target, "sub", rec)
                forever = asyncio.Event()
                started = asyncio.Event()

                async def stuck(msg) -> None:
                    started.set()
                    await forever.wait()

                await sub.subscribe("stuck/#", stuck)
                await sub.start()
                await sub.wait_connected(WAIT)
                for i in range(5):
                    await pub.publish("stuck/x", i)
                await asyncio.wait_for(started.wait(), WAIT)
                await eventually(lambda: sub.health().inbound_depth == 4)
                await asyncio.wait_for(sub.stop(timeout=0.2), WAIT)
                assert sub.state == "stopped"
                assert len(rec.of("drop", direction="in", reason="shutdown")) == 4

    asyncio.run(main())


def test_stop_releases_a_blocked_publisher_and_refuses_new_work(target) -> None:
    async def main() -> None:
        async with running(target):
            relay = Relay(target.port)
            await relay.restore()
            rec = Recorder()
            pub = make_client(relay, "pub", rec, outbound_capacity=2)
            await pub.start()
            await pub.wait_connected(WAIT)
            await relay.cut()
            await rec.wait_for("disconnect")
            blocked = asyncio.create_task(_publish_many(pub, 10))
            await eventually(lambda: pub.health().outbound_depth == 3)  # 2 queued + 1 held by the sender
            await asyncio.wait_for(pub.stop(timeout=0.2), WAIT)
            with pytest.raises(BusClosed):
                await asyncio.wait_for(blocked, WAIT)
            with pytest.raises(BusClosed, match="stopped"):
                await pub.publish("x/y", 1)
            # nothing could go out: every queued message is reported, none silently vanishes
            assert len(rec.of("drop", direction="out", reason="shutdown")) == 3 + 1  # + 'offline'

    asyncio.run(main())


async def _publish_many(pub, n: int) -> None:
    for i in range(n):
        await pub.publish("x/y", i)
