"""The start/stop shape shared by long-running parts (the app, the supervisor)."""

from __future__ import annotations

import asyncio
from typing import Self


class StartStop:
    """Gives ``run()`` and ``async with`` to a class that defines ``start()`` and ``stop()``."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Start, serve until cancelled, then stop (the stop itself is not cancelled)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
