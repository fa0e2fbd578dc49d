"""``Router``: a single-segment prefix grouping devices, handlers, tasks and other routers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from system.app._device import Device, _handler, _Periodic, _Registers
from system.app._events import DeviceError
from system.app._topics import check_segment, join

if TYPE_CHECKING:
    from system.app._app import App


class Router(_Registers):
    """Devices and handlers under one prefix segment. Routers compose by inclusion: a
    ``Router(prefix="floor1")`` included into an ``App(prefix="building")`` serves
    ``building/floor1/...``. Everything a router subscribes to lies under its own prefix,
    so routers at different prefixes never see each other's messages."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = check_segment(prefix, "router prefix", allow_empty=True)
        self.parent: Router | None = None
        self.devices: dict[str, Device] = {}
        self.routers: list[Router] = []
        self._handlers: list[tuple[str, Callable[..., Any], Any]] = []
        self._periodic: list[_Periodic] = []
        self.errors = 0
        self._app: App | None = None

    @property
    def base(self) -> str:
        """The full topic prefix: the parents' prefixes and this one."""
        return join(self.parent.base if self.parent else "", self.prefix)

    def include(self, router: Router) -> Router:
        """Serve ``router`` under this one's prefix; returns it."""
        if router is self or router.parent is not None:
            raise ValueError(
                f"router {router.prefix!r} is already included somewhere; a router has one parent"
            )
        if any(r.prefix == router.prefix for r in self.routers):
            raise ValueError(
                f"a router with prefix {router.prefix!r} is already included under {self.base!r}"
            )
        router.parent = self
        self.routers.append(router)
        return router

    def device(self, name: str, *, failing_after: int = 3) -> Device:
        """A new device at ``<base>/<name>``; a device goes ``failing`` after ``failing_after``
        consecutive errors (``degraded`` before)."""
        if name in self.devices:
            raise ValueError(f"device {name!r} already exists under {self.base!r}")
        dev = Device(self, name, failing_after=failing_after)
        self.devices[name] = dev
        return dev

    def walk(self) -> Iterator[Router]:
        yield self
        for r in self.routers:
            yield from r.walk()

    async def _guard(self, where: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        # A router-level callable fails like a device's, reported under the router's topic.
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - failure isolation: contain, count, report
            self.errors += 1
            app = self._app
            if app is not None:
                app._count_error()
                app._emit(
                    DeviceError,
                    device=self.base or app.bus.client_id,
                    where=where,
                    error=type(exc).__name__,
                    message=str(exc),
                    errors=self.errors,
                )
                report = {
                    "where": where,
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "errors": self.errors,
                }
                await app.bus.publish(
                    join(self.base, "errors"), report, kind="error", qos=0
                )
            return False, None
        return True, result

    async def _bind(self, app: App) -> list[_Periodic]:
        self._app = app
        for subtopic, fn, model in self._handlers:
            pattern = join(self.base, subtopic)
            await app.bus.subscribe(
                pattern,
                _handler(self, f"on:{subtopic}", fn, model),
                name=f"app:{pattern}:{fn.__qualname__}",
            )
        tasks = list(self._periodic)
        for dev in self.devices.values():
            tasks += await dev._bind(app)
        return tasks
