"""An echo server world for link-fault tests: 1 ms latency, no jitter, no grid."""

from __future__ import annotations

import asyncio

from sim import World

LAT = 0.001  # base one-way latency of these worlds, no jitter, no grid


def world_with_echo(seed: int = 1) -> World:
    world = World(seed=seed, latency=LAT, jitter=0.0, tick=0)

    async def echo(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def server():
        await (await asyncio.start_server(echo, "0.0.0.0", 7)).serve_forever()

    world.host("srv").spawn(server)
    return world


async def connect():
    await asyncio.sleep(0.01)
    return await asyncio.open_connection("srv", 7)


async def round_trip(reader, writer, payload: bytes) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    writer.write(payload)
    await reader.readexactly(len(payload))
    return loop.time() - t0


def world_with_acker(size: int, seed: int = 1) -> World:
    """A server on srv:7 that answers b"ok" once it has read ``size`` bytes."""
    world = World(seed=seed, latency=LAT, jitter=0.0, tick=0)

    async def ack_when_complete(reader, writer):
        await reader.readexactly(size)
        writer.write(b"ok")

    async def server():
        await (await asyncio.start_server(ack_when_complete, "0.0.0.0", 7, limit=2**20)).serve_forever()

    world.host("srv").spawn(server)
    return world
