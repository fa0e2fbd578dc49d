"""EmbeddedBroker as its users rely on it: flavors, credentials, ACL, and what survives restart()."""

from __future__ import annotations

import asyncio

import pytest

from system.broker import EmbeddedBroker
from system.broker.conformance._wire import PUBLISH, RawClient


async def _client(broker: EmbeddedBroker, cid: str, **kw: object) -> tuple[RawClient, int, bool]:
    c = await RawClient.open("127.0.0.1", broker.port)
    ack = await c.connect(cid, **kw)
    return c, ack.return_code, ack.session_present


def test_unknown_flavor_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="squall, amqtt"):
        EmbeddedBroker(flavor="mosquitto")  # type: ignore[arg-type]


def test_port_0_is_read_back_and_kept_across_restart() -> None:
    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", 0) as broker:
            port = broker.port
            assert port != 0
            await broker.restart()
            assert broker.port == port
            c, rc, _ = await _client(broker, "p")
            assert rc == 0 and await c.ping()
            await c.disconnect()

    asyncio.run(main())


def test_credentials_and_anonymous() -> None:
    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", 0, users={"alice": "pw"}) as broker:
            assert (await _client(broker, "a", username="alice", password="pw"))[1] == 0
            assert (await _client(broker, "b", username="alice", password="wrong"))[1] != 0
            assert (await _client(broker, "c"))[1] == 0  # anonymous still allowed
        async with EmbeddedBroker("127.0.0.1", 0, users={"alice": "pw"}, allow_anonymous=False) as broker:
            assert (await _client(broker, "d"))[1] != 0
            assert (await _client(broker, "e", username="alice", password="pw"))[1] == 0

    asyncio.run(main())


def test_anonymous_off_without_users_is_refused() -> None:
    with pytest.raises(ValueError, match="users="):
        EmbeddedBroker(allow_anonymous=False)


@pytest.mark.parametrize("flavor", ["squall", "amqtt"])
def test_acl_denies_subscribe_and_publish(flavor: str) -> None:
    async def main() -> None:
        acl = {"anonymous": ["#"], "bob": ["bob/#"]}
        async with EmbeddedBroker("127.0.0.1", 0, flavor=flavor, users={"bob": "pw"}, acl=acl) as broker:  # type: ignore[arg-type]
            bob, rc, _ = await _client(broker, "bob", username="bob", password="pw")
            assert rc == 0
            assert await bob.subscribe([("alice/x", 1), ("bob/x", 1)]) == [0x80, 1]
            watcher, _, _ = await _client(broker, "w")
            await watcher.subscribe([("#", 1)])
            await bob.publish("alice/x", b"denied", qos=1)
            await bob.publish("bob/x", b"allowed", qos=1, pid=2)
            got = await watcher.recv(PUBLISH)
            assert got.payload == b"allowed"

    asyncio.run(main())


def test_restart_keeps_retained_sessions_and_unacknowledged_messages() -> None:
    """squall flavor: retained messages, a persistent session's subscription, its queue and its
    unacknowledged delivery all come back after restart(); a clean session does not."""

    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", 0) as broker:
            pub, _, _ = await _client(broker, "pub")
            await pub.publish("r/x", b"retained", qos=1, retain=True)
            sub, _, _ = await _client(broker, "sub", clean=False)
            await sub.subscribe([("t/#", 1)])
            await pub.publish("t/1", b"inflight", qos=1, pid=2)
            first = await sub.recv(PUBLISH)  # never acknowledged
            await sub.abort()
            await pub.publish("t/2", b"queued", qos=1, pid=3)
            await pub.abort()
            await broker.restart()

            sub, rc, present = await _client(broker, "sub", clean=False)
            assert rc == 0 and present
            again = await sub.recv(PUBLISH)
            assert (again.payload, again.dup, again.pid) == (b"inflight", True, first.pid)
            await sub.ack(again)
            queued = await sub.recv(PUBLISH)
            assert queued.payload == b"queued"
            await sub.ack(queued)
            fresh, _, _ = await _client(broker, "fresh")
            await fresh.subscribe([("r/#", 1)])
            retained = await fresh.recv(PUBLISH)
            assert (retained.payload, retained.retain) == (b"retained", True)

    asyncio.run(main())


def test_stock_amqtt_restart_forgets_everything() -> None:
    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", 0, flavor="amqtt") as broker:
            pub, _, _ = await _client(broker, "pub")
            await pub.publish("r/x", b"retained", qos=1, retain=True)
            await pub.disconnect()
            await broker.restart()
            sub, _, present = await _client(broker, "sub", clean=False)
            assert not present
            await sub.subscribe([("r/#", 1), ("m", 1)])
            pub, _, _ = await _client(broker, "pub2")
            await pub.publish("m", b"marker", qos=1)
            assert (await sub.recv(PUBLISH)).payload == b"marker"

    asyncio.run(main())


def test_dollar_topic_publish_is_acknowledged_not_routed_and_the_connection_keeps_working() -> None:
    """$-topics are the server's [MQTT-4.7.2]: squall's broker acknowledges a client's PUBLISH
    to one and drops it. It used to close the connection after acknowledging, so a QoS 1
    PUBLISH right behind it could be PUBACKed and then lost (MQTT-4.7.2-1 timed out)."""

    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", 0) as broker:
            sub, _, _ = await _client(broker, "sub")
            await sub.subscribe([("$app/#", 1), ("app/#", 1)])
            pub, _, _ = await _client(broker, "pub")
            for i in range(20):  # many rounds: the old close raced the next PUBLISH
                await pub.publish("$app/x", b"dollar", qos=1, pid=2 * i + 1)
                await pub.publish("app/x", b"after%d" % i, qos=1, pid=2 * i + 2)
            got = [p.payload for p in await sub.messages_until(b"after19")]
            assert got == [b"after%d" % i for i in range(20)]
            assert await pub.ping()

    asyncio.run(main())


@pytest.mark.parametrize("flavor", ["squall", "amqtt"])
def test_deny_list_refuses_subscribe_publish_and_delivery(flavor: str) -> None:
    async def main() -> None:
        deny = {"bob": ["secret/#"]}
        async with EmbeddedBroker("127.0.0.1", 0, flavor=flavor, users={"bob": "pw"}, deny=deny) as broker:  # type: ignore[arg-type]
            bob, rc, _ = await _client(broker, "bob", username="bob", password="pw")
            assert rc == 0
            assert await bob.subscribe([("secret/x", 1), ("#", 1)]) == [0x80, 1]
            anon, _, _ = await _client(broker, "anon")  # not bob: the deny list is his only
            assert await anon.subscribe([("secret/#", 1)]) == [1]
            await bob.publish("secret/x", b"denied", qos=1)
            await anon.publish("secret/y", b"not for bob", qos=1, pid=2)
            await anon.publish("open/z", b"marker", qos=1, pid=3)
            assert [p.payload for p in await bob.messages_until(b"marker")] == [b"marker"]
            assert [p.payload for p in await anon.messages_until(b"not for bob")] == [b"not for bob"]

    asyncio.run(main())
