"""ToxiproxyAPI: the few Toxiproxy HTTP calls squall's runner and bench make.

It speaks to any Toxiproxy 2.x server: squall's own (embedded, or a `ProxyProcess`) or
Shopify's original at ``TOXIPROXY_URL``. Calls run in a worker thread, so a server embedded
in the caller's own event loop keeps answering while the caller waits.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any


class ToxiproxyAPI:
    """Toxiproxy's HTTP API at ``url``, as coroutines (squall's proxy or the original)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"toxiproxy {method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None
        return json.loads(text) if text else None

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self._call, method, path, body)

    async def create(self, name: str, listen: str, upstream: str) -> str:
        proxy = await self.call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True})
        return proxy["listen"]

    async def reset(self) -> None:
        await self.call("POST", "/reset")

    async def delete(self, name: str) -> None:
        try:
            await self.call("DELETE", f"/proxies/{name}")
        except RuntimeError:
            pass
