"""One world per MQTT client library: the client, unmodified, against the embedded broker.

Each client subscribes to its own topic, publishes one message a second cycling QoS 0/1/2,
and reconnects with the library's own logic (aiomqtt: the documented reconnect loop) while
the world partitions it from the broker and later crashes and restarts the broker.

    python tests/sim/client_worlds.py aiomqtt 7   # prints the trace hash (determinism test)
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from sim import World
from system.broker import EmbeddedBroker

PARTITION = (20.0, 60.0)  # cut client<->broker, longer than keepalive and the TCP user timeout
# amqtt 0.12's client reader loop spins forever on a reset connection (NoDataError, retried
# without a wait): the simulation reports it as a livelock. Its partition ends before TCP gives up.
PARTITIONS = {"amqtt": (20.0, 45.0)}
CRASH = (90.0, 95.0)  # broker down, memory lost
END = 130.0
KEEPALIVE = 5


@dataclass
class Log:
    connects: list[float] = field(default_factory=list)
    received: list[tuple[float, int, int]] = field(default_factory=list)  # (virtual time, n, qos)
    sent: int = 0
    partition: tuple[float, float] = PARTITION

    def phases(self) -> tuple[int, int, int]:
        """Messages received before the partition, between heal and crash, after the restart."""
        before = sum(1 for t, _, _ in self.received if t < self.partition[0])
        middle = sum(1 for t, _, _ in self.received if self.partition[1] < t < CRASH[0])
        after = sum(1 for t, _, _ in self.received if t > CRASH[1])
        return before, middle, after


async def _broker() -> None:
    broker = EmbeddedBroker(host="0.0.0.0", port=1883)
    await broker.start()
    await asyncio.Event().wait()


async def aiomqtt_client(world: World, log: Log) -> None:
    import aiomqtt

    client = aiomqtt.Client("broker", 1883, identifier="aio", keepalive=KEEPALIVE, timeout=5)
    n = 0

    async def publish() -> None:
        nonlocal n
        while True:
            await client.publish("t/aio", str(n).encode(), qos=n % 3)
            n += 1
            log.sent += 1
            await asyncio.sleep(1)

    while True:  # the reconnect loop of aiomqtt's documentation
        try:
            async with client:
                log.connects.append(world.now)
                await client.subscribe("t/aio", qos=2)
                publisher = asyncio.create_task(publish())
                try:
                    async for message in client.messages:
                        log.received.append((world.now, int(message.payload), message.qos))  # type: ignore[arg-type]
                finally:
                    publisher.cancel()
        except aiomqtt.MqttError:
            await asyncio.sleep(2)


async def paho_client(world: World, log: Log) -> None:
    """paho-mqtt 2.x on asyncio, as paho's own loop_asyncio example drives it."""
    import paho.mqtt.client as mqtt

    loop = asyncio.get_running_loop()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho")
    misc: list[asyncio.Task[None]] = []

    async def misc_loop() -> None:
        while client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)

    def on_socket_open(c: Any, userdata: Any, sock: Any) -> None:
        loop.add_reader(sock, c.loop_read)
        misc.append(loop.create_task(misc_loop()))

    def on_socket_close(c: Any, userdata: Any, sock: Any) -> None:
        loop.remove_reader(sock)
        for task in misc:
            task.cancel()
        misc.clear()

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            log.connects.append(world.now)
            c.subscribe("t/paho", qos=2)

    def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        loop.call_later(2, reconnect)

    def reconnect() -> None:
        try:
            client.reconnect()
        except OSError:
            loop.call_later(2, reconnect)

    client.on_socket_open = on_socket_open
    client.on_socket_close = on_socket_close
    client.on_socket_register_write = lambda c, u, sock: loop.add_writer(sock, c.loop_write)
    client.on_socket_unregister_write = lambda c, u, sock: loop.remove_writer(sock)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = lambda c, u, m: log.received.append((world.now, int(m.payload), m.qos))
    client.connect("broker", 1883, keepalive=KEEPALIVE)
    n = 0
    while True:
        await asyncio.sleep(1)
        if client.is_connected():
            client.publish("t/paho", str(n).encode(), qos=n % 3)
            n += 1
            log.sent += 1


async def gmqtt_client(world: World, log: Log) -> None:
    import gmqtt

    client = gmqtt.Client("gm")
    client.set_config({"reconnect_retries": gmqtt.constants.UNLIMITED_RECONNECTS, "reconnect_delay": 2})

    def on_connect(c: Any, flags: Any, rc: Any, props: Any) -> None:
        log.connects.append(world.now)
        c.subscribe("t/gm", qos=2)

    def on_message(c: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        log.received.append((world.now, int(payload), qos))
        return 0

    client.on_connect = on_connect
    client.on_message = on_message
    await client.connect("broker", 1883, keepalive=KEEPALIVE)
    n = 0
    while True:
        await asyncio.sleep(1)
        if client.is_connected:
            client.publish("t/gm", str(n).encode(), qos=n % 3)
            n += 1
            log.sent += 1


async def amqtt_client(world: World, log: Log) -> None:
    from amqtt.client import ClientError, ConnectError, MQTTClient

    n = 0
    while True:  # amqtt's own reconnect gives up on a refused connection; reconnect here too
        client = MQTTClient(client_id="am", config={"auto_reconnect": False, "keep_alive": KEEPALIVE})
        try:
            await client.connect("mqtt://broker:1883")
            log.connects.append(world.now)
            await client.subscribe([("t/am", 2)])

            async def publish(client: MQTTClient = client) -> None:
                nonlocal n
                while True:
                    await client.publish("t/am", str(n).encode(), qos=n % 3)
                    n += 1
                    log.sent += 1
                    await asyncio.sleep(1)

            publisher = asyncio.create_task(publish())
            try:
                while True:
                    message = await client.deliver_message()
                    if message is None:
                        break
                    log.received.append((world.now, int(message.data), message.qos))
            finally:
                publisher.cancel()
        except (TimeoutError, ConnectError, ClientError, OSError):
            pass
        await asyncio.sleep(2)


CLIENTS: dict[str, Callable[[World, Log], Any]] = {"aiomqtt": aiomqtt_client, "paho": paho_client, "gmqtt": gmqtt_client, "amqtt": amqtt_client}


def run(kind: str, seed: int, *, faults: bool = True) -> tuple[Log, Any]:
    world = World(seed=seed)
    log = Log(partition=PARTITIONS.get(kind, PARTITION))
    world.host("broker").spawn(_broker)

    async def start() -> None:
        await asyncio.sleep(1)  # the broker is up
        await CLIENTS[kind](world, log)

    world.host("client").spawn(start)
    if faults:
        world.at(log.partition[0], world.partition, "client", "broker")
        world.at(log.partition[1], world.heal)
        world.at(CRASH[0], world.crash, "broker")
        world.at(CRASH[1], world.restart, "broker")
    return log, world.run(until=END)


if __name__ == "__main__":
    print(run(sys.argv[1], int(sys.argv[2]))[1].trace_hash)
