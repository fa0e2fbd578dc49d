"""squall's own tests written with the pytest plugin: the fixture, many seeds, strategies."""

from __future__ import annotations

import asyncio

import pytest
from amqtt.client import MQTTClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import World
from sim.faults import Schedule
from sim.pytest_plugin import SimBroker, schedules, world_with_broker

TOPIC = "plant/line-1"


def _stream_over_partition(
    world: World, broker: SimBroker, messages: int, partition_for: float
) -> list[bytes]:
    """A QoS 1 publisher cut off from the broker for less than amqtt's 5 s PUBACK timeout; what the subscriber got."""
    got: list[bytes] = []

    async def publisher() -> None:
        await broker.ready()
        client = MQTTClient(
            client_id="pub", config={"auto_reconnect": False, "keep_alive": 60}
        )
        await client.connect(broker.url)
        for n in range(messages):
            await client.publish(TOPIC, str(n).encode(), qos=1)
            await asyncio.sleep(0.5)
        await client.disconnect()

    async def main() -> list[bytes]:
        await broker.ready()
        sub = MQTTClient(
            client_id="sub", config={"auto_reconnect": False, "keep_alive": 60}
        )
        await sub.connect(broker.url)
        await sub.subscribe([(TOPIC, 1)])
        world.host("pub").spawn(publisher)
        await asyncio.sleep(2)
        world.partition("pub", "broker")
        world.at(asyncio.get_running_loop().time() + partition_for, world.heal)
        while len(got) < messages:
            msg = await asyncio.wait_for(sub.deliver_message(), timeout=120)
            got.append(bytes(msg.data))
        await sub.disconnect()
        return got

    return world.run(main, until=600).value


@pytest.mark.squall_seeds(3)
def test_qos1_messages_cross_a_short_partition_complete_and_in_order(
    squall_world: World, squall_broker: SimBroker
) -> None:
    got = _stream_over_partition(
        squall_world, squall_broker, messages=20, partition_for=3
    )
    assert got == [str(n).encode() for n in range(20)]


@pytest.mark.squall_broker(flavor="amqtt")
def test_the_broker_marker_starts_stock_amqtt(
    squall_world: World, squall_broker: SimBroker
) -> None:
    async def main() -> str:
        await squall_broker.ready()
        assert squall_broker.broker is not None
        return squall_broker.broker.flavor

    assert squall_world.run(main, until=60).value == "amqtt"


def test_a_world_reruns_byte_for_byte_from_its_seed(squall_seed: int) -> None:
    hashes = set()
    for _ in range(2):
        world, broker = world_with_broker(squall_seed)
        assert broker is not None
        _stream_over_partition(world, broker, messages=5, partition_for=3)
        hashes.add(world.trace.hash)
    assert len(hashes) == 1


@settings(
    max_examples=5,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**16),
    schedule=schedules(
        20,
        partition_hosts=["pub", "broker", "main"],
        crash_hosts=["pub"],
        max_fault_seconds=5,
    ),
)
def test_any_fault_schedule_replays_to_the_same_trace(
    seed: int, schedule: Schedule
) -> None:
    def run() -> str:
        world, broker = world_with_broker(seed)
        assert broker is not None
        schedule.apply(world)

        async def publisher() -> None:
            # A fault may cut it off with an error: the world records that too, the same way twice.
            await broker.ready()
            client = MQTTClient(client_id="pub", config={"auto_reconnect": False})
            await client.connect(broker.url)
            for n in range(10):
                await client.publish(TOPIC, str(n).encode(), qos=1)
                await asyncio.sleep(1)

        world.host("pub").spawn(publisher)
        world.run(until=25)
        return world.trace.hash

    assert run() == run()


def _queued_message_after_broker_crash(world: World, broker: SimBroker) -> bytes | None:
    """A QoS 1 message queued for an offline persistent session, then the broker host crashes."""

    async def main() -> bytes | None:
        await broker.ready()
        sub = MQTTClient(client_id="sub", config={"auto_reconnect": False})
        await sub.connect(broker.url, cleansession=False)
        await sub.subscribe([(TOPIC, 1)])
        await sub.disconnect()
        pub = MQTTClient(client_id="pub", config={"auto_reconnect": False})
        await pub.connect(broker.url)
        await pub.publish(TOPIC, b"queued while away", qos=1)
        await pub.disconnect()
        world.crash("broker")
        await asyncio.sleep(5)
        world.restart("broker")
        await broker.ready()
        sub = MQTTClient(client_id="sub", config={"auto_reconnect": False})
        await sub.connect(broker.url, cleansession=False)
        try:
            msg = await asyncio.wait_for(sub.deliver_message(), timeout=10)
            return bytes(msg.data)
        except TimeoutError:
            return None

    return world.run(main, until=120).value


def test_the_broker_keeps_persistent_sessions_across_a_crash_by_default(
    squall_world: World, squall_broker: SimBroker
) -> None:
    assert (
        _queued_message_after_broker_crash(squall_world, squall_broker)
        == b"queued while away"
    )


@pytest.mark.squall_broker(durable=False)
def test_a_broker_without_durable_storage_restarts_empty(
    squall_world: World, squall_broker: SimBroker
) -> None:
    assert _queued_message_after_broker_crash(squall_world, squall_broker) is None
