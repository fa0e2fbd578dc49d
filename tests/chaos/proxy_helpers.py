"""Helpers for the chaos proxy's tests: a real echo server, socket helpers, an async HTTP client."""

from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass, field
from typing import Any

import h11

TIMEOUT = 10.0  # generous: the machine is shared and loaded


@dataclass
class EchoServer:
    """Echoes every byte back; records what it read and how each connection ended."""

    host: str = "127.0.0.1"
    port: int = 0
    reads: list[bytes] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)  # "eof" or "reset" per finished connection
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.writers.append(writer)
        ending = "eof"
        try:
            while data := await reader.read(65536):
                self.reads.append(data)
                writer.write(data)
                await writer.drain()
        except ConnectionResetError:
            ending = "reset"
        except (BrokenPipeError, ConnectionError):
            ending = "error"
        finally:
            self.endings.append(ending)
            self.ended.set()
            writer.close()

    async def __aenter__(self) -> "EchoServer":
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        if self._tasks:  # closing the writers ends each handler's read loop
            await asyncio.wait(self._tasks, timeout=TIMEOUT)


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def connect(listen: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = split_listen(listen)
    return await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), TIMEOUT)


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything until the peer closes; raises ConnectionResetError on a reset."""
    return await asyncio.wait_for(reader.read(), TIMEOUT)


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)


async def http(
    url: str,
    method: str,
    path: str,
    json: Any = None,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """One HTTP/1.1 request on a fresh connection, with h11 (the client side of the server's library)."""
    host, port = split_listen(url.removeprefix("http://"))
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    try:
        if json is not None:
            body = jsonlib.dumps(json).encode()
        body = body or b""
        hdrs = {"Host": f"{host}:{port}", "User-Agent": "squall-tests", "Content-Length": str(len(body))}
        hdrs.update(headers or {})
        conn = h11.Connection(h11.CLIENT)
        data = conn.send(h11.Request(method=method, target=path, headers=list(hdrs.items())))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        await writer.drain()
        status, got_headers, got = 0, {}, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await asyncio.wait_for(reader.read(65536), TIMEOUT))
            elif isinstance(event, h11.Response):
                status = event.status_code
                got_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                got += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return HttpResponse(status, got_headers, bytes(got))
    finally:
        writer.close()
