"""`squall sim demo`: an amqtt broker and devices in the simulated world, nothing to install.

Each device publishes a QoS 1 reading once per virtual second; one subscriber counts them.
"""

from __future__ import annotations

import asyncio
import logging

from amqtt.client import MQTTClient

from sim._world import RunResult, World
from system.broker import EmbeddedBroker

_CLIENT = {"auto_reconnect": False, "keep_alive": 30}


async def _broker() -> None:
    broker = EmbeddedBroker(host="0.0.0.0", port=1883)
    await broker.start()
    await asyncio.Event().wait()


async def _device(index: int, seconds: float) -> None:
    client = MQTTClient(client_id=f"device-{index}", config=_CLIENT)
    await client.connect("mqtt://broker:1883")
    loop = asyncio.get_running_loop()
    n = 0
    while loop.time() < seconds:
        n += 1
        await client.publish(f"devices/{index}/reading", f"{index}:{n}".encode(), qos=1)
        await asyncio.sleep(1.0)
    await client.disconnect()


def run_devices(seed: int, devices: int, seconds: float) -> tuple[RunResult, int]:
    """Run the demo fleet; returns the run result and the number of readings delivered."""
    world = World(seed=seed, trace=False)
    world.host("broker").spawn(_broker)
    delivered = 0
    ready = asyncio.Event()

    async def subscriber() -> None:
        nonlocal delivered
        client = MQTTClient(client_id="subscriber", config=_CLIENT)
        await client.connect("mqtt://broker:1883")
        await client.subscribe([("devices/#", 1)])
        ready.set()
        while True:
            await client.deliver_message()
            delivered += 1

    async def main() -> None:
        await asyncio.sleep(0.05)
        world.host("subscriber").spawn(subscriber)
        await ready.wait()
        for i in range(devices):
            world.host(f"device-{i}").spawn(_device, i, seconds)
        await asyncio.sleep(seconds + 2.0)

    result = world.run(main)
    return result, delivered


def run_demo(seed: int, devices: int, seconds: float) -> int:
    from rich.console import Console

    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    console = Console()
    with console.status(f"simulating {devices} devices for {seconds:g} virtual seconds (seed {seed}) ..."):
        result, delivered = run_devices(seed, devices, seconds)
    console.print(f"seed            {seed}")
    console.print(f"virtual seconds {result.now:.1f} in {result.wall_seconds:.2f} wall seconds ({result.compression:.0f}x)")
    console.print(f"readings        {delivered} delivered at QoS 1")
    console.print(f"trace_hash      {result.trace_hash}")
    console.print(f"replay with     squall sim demo --seed {seed} --devices {devices} --seconds {seconds:g}")
    return 0
