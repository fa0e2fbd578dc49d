"""Start, stop and restart amqtt's broker inside the current event loop."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from amqtt.broker import Broker

Flavor = Literal["squall", "amqtt"]


class EmbeddedBroker:
    """amqtt's broker on (host, port), anonymous by default.

    ``flavor="amqtt"`` is stock amqtt; ``"squall"`` (default) adds squall's MQTT 3.1.1 fixes.
    ``port=0`` picks a free port; read it back from ``.port`` after ``start()``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, flavor: Flavor = "squall") -> None:
        self.host = host
        self.port = port
        self.flavor = flavor
        self._broker: Broker | None = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    async def start(self) -> None:
        self._broker = Broker(self._config())
        await self._broker.start()
        if self.port == 0:
            server = self._broker._servers["default"].instance  # noqa: SLF001 - amqtt exposes no getter
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> "EmbeddedBroker":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
