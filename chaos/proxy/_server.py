"""ProxyServer: the proxies, their HTTP API and their metrics, in the running event loop."""

from __future__ import annotations

import asyncio
import errno
import random
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from chaos.proxy._api import Api
from chaos.proxy._collection import ProxyCollection, ProxySpec
from chaos.proxy._errors import out_of_files
from chaos.proxy._http import HttpServer
from chaos.proxy._metrics import ByteCounts, registry_for
from chaos.proxy._proxy import Proxy

DEFAULT_PORT = 8474


def report_out_of_files(loop: asyncio.AbstractEventLoop, prog: str = "squall proxy") -> None:
    """One line on stderr, not asyncio's traceback, when accepts fail for want of descriptors.

    asyncio retries the accept a second later by itself, so the server recovers once
    descriptors are free again; other errors keep the loop's handler. At most one line
    per ten seconds: a server at its limit retries every second.
    """
    previous = loop.get_exception_handler()
    said = [float("-inf")]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            if loop.time() - said[0] >= 10.0:
                said[0] = loop.time()
                print(f"{prog}: {out_of_files('accept')}", file=sys.stderr, flush=True)
        elif isinstance(exc, ValueError) and "_start_serving" in repr(context.get("handle")):
            # asyncio's accept retry fired after the listener closed (a proxy deleted, or the
            # server stopping, within that second): nothing is left to serve, nothing is wrong.
            return
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class ProxyServer:
    """A Toxiproxy-compatible server: ``async with ProxyServer(port=0) as server: ...``.

    Clients speak to it over HTTP at ``server.url`` (the toxiproxy-python client works
    unmodified); code in the same process can skip HTTP and call ``create``, ``get``,
    ``populate``, ``reset`` and the returned ``Proxy``'s toxic methods directly.
    ``rng`` draws toxicity, jitter and slice sizes; seed it for repeatable choices.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, rng: random.Random | None = None) -> None:
        self.host = host
        self._counts = ByteCounts()
        self.registry: CollectorRegistry = registry_for(self._counts)
        self._proxies = ProxyCollection(self._counts, rng or random.Random())
        self._http = HttpServer(Api(self._proxies, self.registry), host, port)
        self._started = False

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> "ProxyServer":
        await self._http.start()
        self._started = True
        return self

    async def stop(self) -> None:
        """Close the API and every proxy with its connections."""
        if not self._started:
            return
        self._started = False
        await self._http.close()
        await self._proxies.clear()

    async def __aenter__(self) -> "ProxyServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the same operations as the HTTP API, for code in this process ---------------------------

    def proxies(self) -> dict[str, Proxy]:
        return self._proxies.all()

    def get(self, name: str) -> Proxy:
        """The proxy called ``name``; ApiError (404) if there is none."""
        return self._proxies.get(name)

    async def create(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> Proxy:
        return await self._proxies.create(ProxySpec(name=name, upstream=upstream, listen=listen, enabled=enabled))

    async def update(
        self, name: str, *, listen: str | None = None, upstream: str | None = None, enabled: bool | None = None
    ) -> Proxy:
        return await self._proxies.update(name, listen=listen, upstream=upstream, enabled=enabled)

    async def delete(self, name: str) -> None:
        await self._proxies.delete(name)

    async def populate(self, specs: list[ProxySpec | dict[str, Any]]) -> list[Proxy]:
        return await self._proxies.populate([s if isinstance(s, ProxySpec) else ProxySpec(**s) for s in specs])

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (``POST /reset``)."""
        await self._proxies.reset()

    def bytes_total(self, proxy: str, direction: str, which: str = "sent") -> int:
        """Bytes a proxy has sent (or received) in one direction, over all its connections."""
        index = 1 if which == "sent" else 0
        return sum(cell[index] for labels, cell in self._counts.items() if labels[1] == proxy and labels[0] == direction)
