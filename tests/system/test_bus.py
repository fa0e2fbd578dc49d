"""The bus client against real brokers on loopback: squall's embedded amqtt and mosquitto.

Every test runs against both targets (the ``target`` fixture), to show the client is not
tied to one broker.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from _bus_support import WAIT, Inbox, Recorder, make_client, running
from amqtt.client import MQTTClient

from system import BusClient, BusSettings, EnvelopeFactory, RequestFailed, RequestTimeout
from system.broker import EmbeddedBroker


def test_pubsub_with_wildcards_and_several_handlers(target) -> None:
    async def main() -> None:
        async with running(target), make_client(target, "pub") as pub, make_client(target, "sub") as sub:
            plus, hash_, exact, second = Inbox(), Inbox(), Inbox(), Inbox()
            await sub.subscribe("home/+/temp", plus)
            await sub.subscribe("home/#", hash_)
            await sub.subscribe("home/kitchen/temp", exact, name="exact")
            await sub.subscribe("home/kitchen/temp", second, name="second")
            await pub.publish("home/kitchen/temp", 21.5)
            await pub.publish("home/kitchen/light", "on")
            await pub.publish("home/garden/temp", 12)
            await pub.publish("office/kitchen/temp", 99)
            await hash_.wait(3)
            await plus.wait(2)
            await exact.wait(1)
            await second.wait(1)
            assert sorted(plus.data) == [12, 21.5]
            assert sorted(map(str, hash_.data)) == ["12", "21.5", "on"]
            assert exact.data == second.data == [21.5]
            assert all(m.envelope.source == "pub" for m in hash_.messages)
            seqs = [m.envelope.seq for m in hash_.messages]
            assert seqs == sorted(seqs)

    asyncio.run(main())


def test_handler_replacement_and_unsubscribe(target) -> None:
    async def main() -> None:
        async with running(target), make_client(target, "pub") as pub, make_client(target, "sub") as sub:
            old, new, other = Inbox(), Inbox(), Inbox()
            await sub.subscribe("a/b", old, name="h")
            await sub.subscribe("a/b", new, name="h")  # replaces old
            other_sub = await sub.subscribe("a/b", other, name="other")
            await pub.publish("a/b", 1)
            await new.wait(1)
            await other.wait(1)
            await sub.unsubscribe(other_sub)
            await pub.publish("a/b", 2)
            await new.wait(2)
            assert old.data == [] and new.data == [1, 2] and other.data == [1]

    asyncio.run(main())


@pytest.mark.parametrize("qos", [0, 1])
def test_qos_levels_deliver(target, qos: int) -> None:
    # Delivered QoS is min(published, granted) (MQTT-3.3.5-1); stock amqtt 0.12.1 upgrades
    # QoS 0 to the subscription's QoS 1, squall's broker flavor fixes that.
    async def main() -> None:
        async with running(target), make_client(target, "pub") as pub, make_client(target, "sub") as sub:
            inbox = Inbox()
            await sub.subscribe("q/#", inbox, qos=1)
            for i in range(20):
                await pub.publish(f"q/{i}", i, qos=qos)
            await inbox.wait(20)
            assert sorted(inbox.data) == list(range(20))
            assert {m.qos for m in inbox.messages} == {qos}

    asyncio.run(main())


def test_retained_message_and_availability_reach_a_late_subscriber(target) -> None:
    async def main() -> None:
        async with running(target):
            async with make_client(target, "dev") as dev:
                await dev.publish("state/dev", {"mode": "eco"}, retain=True)
                await dev.publish("state/dev", {"mode": "boost"}, retain=True)
                async with make_client(target, "late") as late:
                    state, avail = Inbox(), Inbox()
                    await dev.flush(WAIT)
                    await late.subscribe("state/#", state)
                    await late.subscribe("squall/availability/dev", avail)
                    [msg] = await state.wait(1)
                    assert msg.data == {"mode": "boost"} and msg.retain
                    [online] = await avail.wait(1)
                    assert online.data == {"status": "online"} and online.retain
                    narrower = Inbox()  # a later, narrower subscription still gets the current state
                    await late.subscribe("state/dev", narrower)
                    [again] = await narrower.wait(1)
                    assert again.data == {"mode": "boost"} and again.envelope.id == msg.envelope.id
            async with make_client(target, "later") as later:
                avail = Inbox()
                await later.subscribe("squall/availability/dev", avail)
                [offline] = await avail.wait(1)
                assert offline.data == {"status": "offline"}  # graceful stop published it

    asyncio.run(main())


def test_last_will_marks_a_crashed_client_offline(target) -> None:
    async def main() -> None:
        async with running(target), make_client(target, "watcher") as watcher:
            avail = Inbox()
            await watcher.subscribe("squall/availability/+", avail)
            victim = make_client(target, "victim", keep_alive=60)
            await victim.start()
            await victim.wait_connected(WAIT)
            await avail.wait(1, where=lambda m: m.data == {"status": "online"})
            await victim.abort()  # TCP dropped, no DISCONNECT: the broker must send the will
            [will] = await avail.wait(1, where=lambda m: m.data == {"status": "offline"})
            assert will.topic == "squall/availability/victim"

    asyncio.run(main())


def test_duplicate_envelopes_are_delivered_once(target) -> None:
    async def main() -> None:
        async with running(target):
            rec = Recorder()
            async with make_client(target, "pub") as pub, make_client(target, "sub", rec) as sub:
                inbox = Inbox()
                await sub.subscribe("d/#", inbox)
                env = EnvelopeFactory("elsewhere").make("data", "once")
                await pub.publish("d/1", env)
                await pub.publish("d/1", env)  # a redelivery: same envelope id
                await pub.publish("d/2", "after")
                await inbox.wait(2)
                await rec.wait_for("drop", reason="duplicate")
                assert inbox.data == ["once", "after"]

    asyncio.run(main())


def test_a_failing_handler_is_isolated_and_reported(target) -> None:
    async def main() -> None:
        async with running(target):
            rec = Recorder()
            async with (
                make_client(target, "pub") as pub,
                make_client(target, "svc", rec) as svc,
                make_client(target, "ops") as ops,
            ):
                good, errors = Inbox(), Inbox()

                def bad(msg) -> None:
                    if msg.data == "boom":
                        raise ValueError("cannot handle boom")

                await svc.subscribe("jobs/#", bad)
                await svc.subscribe("jobs/#", good)
                await ops.subscribe("squall/errors/#", errors)
                for item in ["a", "boom", "b"]:
                    await pub.publish("jobs/1", item)
                await good.wait(3)
                assert good.data == ["a", "boom", "b"]
                [err] = await errors.wait(1)
                assert err.topic == "squall/errors/svc"
                assert err.data["error"] == "ValueError" and err.data["message"] == "cannot handle boom"
                assert err.envelope.kind == "error"
                [failed] = rec.of("error", where="handler")
                assert failed.topic == "jobs/1"
                health = svc.health()
                assert health.errors == 1 and health.last_error is not None and health.last_error.where == "handler"
                assert health.status == "degraded" and svc.connected

    asyncio.run(main())


def test_invalid_payloads_are_counted_not_fatal(target) -> None:
    async def main() -> None:
        async with running(target):
            rec = Recorder()
            async with make_client(target, "sub", rec) as sub, make_client(target, "pub") as pub:
                inbox = Inbox()
                await sub.subscribe("raw/#", inbox)
                raw = MQTTClient(config={"auto_reconnect": False, "plugins": {}})
                await raw.connect(f"mqtt://127.0.0.1:{target.port}")
                for junk in [b"not json", b"[1,2]", b'{"seq": 1}', b"x" * 300_000]:
                    await raw.publish("raw/x", junk, qos=1)
                await raw.disconnect()
                await pub.publish("raw/ok", "fine")
                await inbox.wait(1)
                await rec.wait_for("drop", count=4, reason="invalid")
                assert inbox.data == ["fine"] and sub.connected

    asyncio.run(main())


def test_request_reply_with_timeout_and_remote_failure(target) -> None:
    async def main() -> None:
        async with running(target):
            async with make_client(target, "caller") as caller, make_client(target, "server") as server:

                async def add(msg) -> int:
                    return msg.data["a"] + msg.data["b"]

                def divide(msg) -> float:
                    return msg.data["a"] / msg.data["b"]

                await server.respond("svc/add", add)
                await server.respond("svc/div", divide)
                reply = await caller.request("svc/add", {"a": 2, "b": 3}, timeout=WAIT)
                assert reply.data == 5 and reply.kind == "reply" and reply.source == "server"
                replies = await asyncio.gather(
                    *(caller.request("svc/add", {"a": i, "b": i}, timeout=WAIT) for i in range(10))
                )
                assert [r.data for r in replies] == [2 * i for i in range(10)]
                with pytest.raises(RequestFailed, match="ZeroDivisionError"):
                    await caller.request("svc/div", {"a": 1, "b": 0}, timeout=WAIT)
                with pytest.raises(RequestTimeout, match="svc/nobody"):
                    await caller.request("svc/nobody", {}, timeout=0.3)

    asyncio.run(main())


def test_heartbeat_publishes_health(target) -> None:
    async def main() -> None:
        async with running(target):
            async with make_client(target, "mon") as mon, make_client(target, "dev", heartbeat_interval=0.2) as dev:
                beats = Inbox()
                await mon.subscribe("squall/health/dev", beats)
                await dev.publish("x/y", 1)
                [beat, *_] = await beats.wait(2)
                assert beat.envelope.kind == "health"
                assert beat.data["client_id"] == "dev" and beat.data["connected"] is True
                assert beat.data["status"] == "ok" and beat.data["last_error"] is None

    asyncio.run(main())


def test_credentials_work_and_the_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    secret = "pw-Zq81-never-shown"

    async def main() -> None:
        async with EmbeddedBroker(host="127.0.0.1", port=0, users={"dev": secret}, allow_anonymous=False) as broker:
            good_rec, bad_rec = Recorder(), Recorder()
            url = f"mqtt://dev:{secret}@127.0.0.1:{broker.port}"
            good = BusClient(BusSettings.from_url(url, client_id="good", heartbeat_interval=0), observer=good_rec)
            bad = BusClient(
                BusSettings.from_url(f"mqtt://dev:wrong-{secret}@127.0.0.1:{broker.port}", client_id="bad"),
                observer=bad_rec,
            )
            async with good:
                inbox = Inbox()
                await good.subscribe("auth/#", inbox)
                await good.publish("auth/x", "in")
                await inbox.wait(1)
                await bad.start()
                await bad_rec.wait_for("error", where="connect")  # refused, and it keeps trying
                assert not bad.connected
                await bad.abort()
                texts = [repr(good.settings), str(good.settings), good.settings.address, repr(good.health())]
                texts += [json.dumps(e.to_dict()) for e in good_rec.events + bad_rec.events]
                texts += [r.getMessage() for r in caplog.records]
                assert any(r.name.startswith("amqtt") for r in caplog.records)  # amqtt's debug logs were seen
                assert not [t for t in texts if secret in t]

    # amqtt's own logger level too: other tests (and scenario runs) quieten it.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="amqtt"):
        asyncio.run(main())


def test_a_failing_observer_does_not_break_the_bus(target, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event) -> None:
        raise RuntimeError("observer bug")

    async def main() -> None:
        async with running(target):
            async with make_client(target, "pub", broken) as pub, make_client(target, "sub") as sub:
                inbox = Inbox()
                await sub.subscribe("o/#", inbox)
                await pub.publish("o/x", 1)
                await inbox.wait(1)

    asyncio.run(main())
    assert any("observer failed" in r.getMessage() for r in caplog.records)


def test_a_subscription_the_broker_refuses_raises_and_is_not_kept() -> None:
    async def main() -> None:
        acl = {"anonymous": ["open/#", "squall/#"]}
        async with EmbeddedBroker(host="127.0.0.1", port=0, acl=acl) as broker:
            rec = Recorder()
            async with make_client(broker, "dev", rec) as dev:
                with pytest.raises(PermissionError, match=r"'secret/#'.*ACL"):
                    await dev.subscribe("secret/#", Inbox())
                inbox = Inbox()
                await dev.subscribe("open/#", inbox)
                await dev.publish("open/x", 1)
                await inbox.wait(1)
                assert rec.of("error", where="subscribe", topic="secret/#")

    asyncio.run(main())
