"""A ProxyServer on its own event loop in a background thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import Future
from typing import Any, Awaitable, Callable, TypeVar

from chaos.proxy._server import ProxyServer

T = TypeVar("T")


class ProxyServerThread:
    """``with ProxyServerThread() as server: requests.get(server.url + "/proxies")``.

    ``port=0`` (the default here) picks a free port. ``call`` runs a coroutine function
    on the server's loop and returns its result, for in-process control from sync code.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, rng: random.Random | None = None) -> None:
        self.server = ProxyServer(host, port, rng=rng)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, name="squall-proxy", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def start(self, timeout: float = 30.0) -> "ProxyServerThread":
        self._thread.start()
        self._ready.result(timeout)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def call(self, fn: Callable[[ProxyServer], Awaitable[T]], timeout: float = 30.0) -> T:
        assert self._loop is not None, "start() the thread first"
        return asyncio.run_coroutine_threadsafe(fn(self.server), self._loop).result(timeout)

    def __enter__(self) -> "ProxyServerThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()
