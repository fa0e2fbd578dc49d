"""A small HTTP/1.1 server on asyncio streams, with h11 doing the protocol.

It gives the API a request (method, path, headers, body) and sends back its response;
keep-alive, chunked bodies, ``Expect: 100-continue`` and malformed requests are h11's
business. Bodies are capped: a bigger one gets 413 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Awaitable, Callable
from urllib.parse import unquote

import h11

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # a populate of thousands of proxies fits; a runaway upload does not
MAX_HEADERS = 64 * 1024
IDLE_SECONDS = 60.0  # keep-alive connections idle longer than this are closed
READ_CHUNK = 65536
LINGER_SECONDS = 2.0  # how long a refused client may keep sending before we hang up
LINGER_BYTES = 64 << 20


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def segments(self) -> list[str]:
        """``/proxies/a%20b/toxics`` -> ``["proxies", "a b", "toxics"]``."""
        raw = self.path.split("?", 1)[0]
        return [unquote(part) for part in raw.split("/")[1:]]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"  # None: no Content-Type header at all
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, doc: object) -> "Response":
        return cls(status, json.dumps(doc).encode() + b"\n")


_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

App = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": message, "status": status})


def _unparseable(exc: h11.RemoteProtocolError) -> Response:
    """A request that is not HTTP: plain text, as Go's server words it (``400 Bad Request: ...``)."""
    status = exc.error_status_hint
    text = f"{status} {HTTPStatus(status).phrase}: {exc}"
    return Response(status, text.encode(), "text/plain; charset=utf-8")


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then read and drop what the client still sends before closing.

    Closing a socket with unread input makes the kernel send a reset, which can destroy
    the error response before the client reads it (a client still uploading a refused body).
    """
    drained = 0
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_SECONDS):
            while drained < LINGER_BYTES:
                data = await reader.read(READ_CHUNK)
                if not data:
                    return
                drained += len(data)
    except (TimeoutError, OSError):
        pass  # the client went away or kept sending: hang up regardless


class HttpServer:
    """Serves ``app`` on (host, port); ``port=0`` picks a free one, read back from ``.port``."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # one broken conversation must not take the server down
            log.exception("http: connection failed")
        finally:
            self._conns.discard(task)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
        while True:
            try:
                request = await self._read_request(conn, reader, writer)
            except h11.RemoteProtocolError as exc:
                await self._send(conn, writer, _unparseable(exc), close=True)
                await _linger(reader, writer)
                return
            if request is None:
                return
            if isinstance(request, Response):  # refused before the body was read
                await self._send(conn, writer, request, close=True)
                await _linger(reader, writer)
                return
            try:
                response = await self.app(request)
            except Exception as exc:  # a crash in one handler is a 500, not a dead server
                log.exception("http: %s %s failed", request.method, request.path)
                response = _error(500, f"internal error: {type(exc).__name__}: {exc}")
            await self._send(conn, writer, response, close=False, head=request.method == "HEAD")
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await asyncio.wait_for(reader.read(READ_CHUNK), IDLE_SECONDS)
            conn.receive_data(data)

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | Response | None:
        event = await self._next(conn, reader)
        if not isinstance(event, h11.Request):
            return None  # the client closed (or said nothing) between requests
        if event.http_version not in (b"1.0", b"1.1"):  # h11 would read HTTP/9.9 as 1.1; Go refuses it
            text = b"505 HTTP Version Not Supported: unsupported protocol version"
            return Response(505, text, "text/plain; charset=utf-8")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return _error(413, f"request body too large: {length} bytes, at most {MAX_BODY}")
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        while True:
            part = await self._next(conn, reader)
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > MAX_BODY:
                    return _error(413, f"request body too large: more than {MAX_BODY} bytes")
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return None
        return Request(event.method.decode("ascii"), event.target.decode("latin-1"), headers, bytes(body))

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Response, close: bool, head: bool = False
    ) -> None:
        headers = [] if response.content_type is None else [("Content-Type", response.content_type)]
        if not head:  # an answer to HEAD has no body, and Go's server then sends no length either
            headers.append(("Content-Length", str(len(response.body))))
        headers += response.headers
        if close:
            headers.append(("Connection", "close"))
        try:
            reason = _REASONS.get(response.status, b"")
            data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
            if response.body and not head:
                data += conn.send(h11.Data(data=response.body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return  # the conversation is past answering (e.g. the request was unparseable)
        writer.write(data)
        await writer.drain()
