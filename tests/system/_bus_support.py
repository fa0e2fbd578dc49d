"""Helpers for the bus suite: broker targets, an event recorder, a collecting handler, a client factory.

Tests are plain functions that call ``asyncio.run``; a target is started inside that loop
with ``async with running(target):`` (the embedded broker must live on the test's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from system import BusClient, BusSettings, Event
from system.broker import EmbeddedBroker

WAIT = 15.0  # generous: a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode} before listening on {port}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"mosquitto did not listen on port {port} within {timeout}s") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


class AmqttTarget:
    """squall's embedded broker (default flavor), in the test's event loop."""

    name = "amqtt"

    def __init__(self) -> None:
        self.port = 0
        self._broker: EmbeddedBroker | None = None

    async def start(self) -> None:
        if self._broker is None:
            self._broker = EmbeddedBroker(host="127.0.0.1", port=0)
        await self._broker.start()
        self.port = self._broker.port

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.stop()

    async def restart(self) -> None:
        assert self._broker is not None
        await self._broker.restart()  # the same broker object: what it keeps across a restart is under test


class MosquittoTarget:
    name = "mosquitto"

    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = _free_port()
        self._binary = binary
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None
        self._conf = workdir / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 10000\n" + ("user root\n" if os.geteuid() == 0 else "")
            # As root, mosquitto would switch to user 'mosquitto', who cannot write into tmp_path.
        )

    async def start(self) -> None:
        log = open(self._workdir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the process
        self._proc = subprocess.Popen([self._binary, "-c", str(self._conf)], stdout=log, stderr=log)
        log.close()
        await _wait_port(self.port, self._proc)

    async def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)  # mosquitto saves sessions on SIGTERM
            for _ in range(200):
                if self._proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def kill(self) -> None:
        """Teardown safety net if a test left it running."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


Target = AmqttTarget | MosquittoTarget


@contextlib.asynccontextmanager
async def running(target: Target) -> AsyncIterator[Target]:
    await target.start()
    try:
        yield target
    finally:
        await target.stop()


class Relay:
    """A TCP relay on loopback in front of the broker, to cut one client off while the broker
    (and everyone else's session) stays up. ``cut()`` aborts its connections and stops
    listening; ``restore()`` listens again on the same port. ``hold()`` keeps connections
    open but forwards nothing from the broker to the client (a one-way partition: the broker
    still hears the client, so only the client can notice) until ``release()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pairs):
            writer.transport.abort()
        self._pairs.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._pairs |= {writer, up_writer}
        await asyncio.gather(
            _pipe(reader, up_writer, _ALWAYS), _pipe(up_reader, writer, self._flowing), return_exceptions=True
        )
        self._pairs -= {writer, up_writer}


_ALWAYS = asyncio.Event()
_ALWAYS.set()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
    try:
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


class Recorder:
    """Observer that keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, name: str, **fields: Any) -> list[Event]:
        return [e for e in self.events if e.name == name and all(getattr(e, k) == v for k, v in fields.items())]

    async def wait_for(self, name: str, count: int = 1, timeout: float = WAIT, **fields: Any) -> list[Event]:
        async def until() -> list[Event]:
            while len(found := self.of(name, **fields)) < count:
                self._changed.clear()
                await self._changed.wait()
            return found

        return await asyncio.wait_for(until(), timeout)


def make_client(
    target: Any, client_id: str, recorder: Callable[[Event], None] | None = None, **kwargs: Any
) -> BusClient:
    """A client with fast reconnects and no heartbeat unless asked, for tests; ``target`` is
    anything with a ``port`` (a broker target or a ``Relay``)."""
    options = {"reconnect_initial": 0.05, "reconnect_max": 0.5, "heartbeat_interval": 0, "shutdown_timeout": 5.0}
    bus_kwargs = {k: kwargs.pop(k) for k in ("policies", "control", "rng") if k in kwargs}
    options.update(kwargs)
    settings = BusSettings(host="127.0.0.1", port=target.port, client_id=client_id, **options)
    return BusClient(settings, observer=recorder if recorder is not None else Recorder(), **bus_kwargs)


class Inbox:
    """A handler that collects messages and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, msg: Any) -> None:
        self.messages.append(msg)
        self._changed.set()

    @property
    def data(self) -> list[Any]:
        return [m.data for m in self.messages]

    async def wait(self, count: int, timeout: float = WAIT, where: Callable[[Any], bool] = lambda m: True) -> list[Any]:
        async def until() -> list[Any]:
            while len(found := [m for m in self.messages if where(m)]) < count:
                self._changed.clear()
                await self._changed.wait()
            return found

        return await asyncio.wait_for(until(), timeout)


async def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until ``predicate()`` holds, checking on each loop tick (10 ms), or time out."""

    async def until() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(until(), timeout)
