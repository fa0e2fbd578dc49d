"""The proxies of one server, and the operations the API offers on them.

Names are unique; operations that listen or stop listening hold one lock, so concurrent
API calls see them one at a time (two creates of one name cannot both win).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from chaos.proxy import _address
from chaos.proxy._errors import MISSING_FIELD, PROXY_EXISTS, PROXY_NOT_FOUND, ApiError
from chaos.proxy._metrics import ByteCounts
from chaos.proxy._proxy import Proxy


@dataclass(frozen=True)
class ProxySpec:
    """What a client asks for: Toxiproxy's proxy fields."""

    name: str
    upstream: str
    listen: str = "127.0.0.1:0"
    enabled: bool = True


class PopulateError(ApiError):
    """Populate stopped part-way: ``proxies`` are those created or kept before the failure."""

    def __init__(self, error: ApiError, proxies: list[Proxy]) -> None:
        super().__init__(error.message, error.status)
        self.proxies = proxies


class ProxyCollection:
    def __init__(self, counts: ByteCounts, rng: random.Random) -> None:
        self._proxies: dict[str, Proxy] = {}
        self._counts = counts
        self._rng = rng
        self._lock = asyncio.Lock()

    def all(self) -> dict[str, Proxy]:
        return dict(self._proxies)

    def get(self, name: str) -> Proxy:
        try:
            return self._proxies[name]
        except KeyError:
            raise PROXY_NOT_FOUND from None

    def _new(self, spec: ProxySpec) -> Proxy:
        return Proxy(spec.name, spec.listen, spec.upstream, counts=self._counts, rng=self._rng)

    async def create(self, spec: ProxySpec) -> Proxy:
        _require(spec)
        async with self._lock:
            if spec.name in self._proxies:
                raise PROXY_EXISTS
            proxy = self._new(spec)
            if spec.enabled:
                await proxy.start()
            self._proxies[spec.name] = proxy
            return proxy

    async def update(
        self, name: str, *, listen: str | None = None, upstream: str | None = None, enabled: bool | None = None
    ) -> Proxy:
        """Change fields; a new listen or upstream restarts the proxy and drops its connections."""
        proxy = self.get(name)
        async with self._lock:
            listen = proxy.listen if listen is None else listen
            upstream = proxy.upstream if upstream is None else upstream
            enabled = proxy.enabled if enabled is None else enabled
            if await _differs(proxy, listen, upstream):
                proxy.stop()
                proxy.listen, proxy.upstream = listen, upstream
            if enabled and not proxy.enabled:
                await proxy.start()
            elif not enabled:
                proxy.stop()
            return proxy

    async def delete(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            proxy.stop()
            del self._proxies[name]

    async def populate(self, specs: list[ProxySpec]) -> list[Proxy]:
        """Create or replace each proxy; an unchanged one is kept with its toxics and connections."""
        for i, spec in enumerate(specs, start=1):
            _require(spec, f" at proxy {i}")
        done: list[Proxy] = []
        async with self._lock:
            for spec in specs:
                try:
                    existing = self._proxies.get(spec.name)
                    if existing is not None and not await _differs(existing, spec.listen, spec.upstream):
                        done.append(existing)
                        continue
                    if existing is not None:
                        existing.stop()
                    proxy = self._new(spec)
                    if spec.enabled:
                        await proxy.start()
                    self._proxies[spec.name] = proxy
                    done.append(proxy)
                except ApiError as exc:
                    raise PopulateError(exc, done) from None
        return done

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        async with self._lock:
            for proxy in list(self._proxies.values()):
                await proxy.start()
                proxy.reset_toxics()

    async def clear(self) -> None:
        async with self._lock:
            for proxy in self._proxies.values():
                proxy.stop()
            self._proxies.clear()


def _require(spec: ProxySpec, where: str = "") -> None:
    if not spec.name:
        raise MISSING_FIELD.joined(f"name{where}")
    if not spec.upstream:
        raise MISSING_FIELD.joined(f"upstream{where}")


async def _differs(proxy: Proxy, listen: str, upstream: str) -> bool:
    return proxy.listen != await _address.normalised(listen) or proxy.upstream != upstream
