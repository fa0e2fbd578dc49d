"""``App``: the root router of a service, bound to one ``BusClient``: starts and stops
everything declared on its routers and devices, owns the store and the configuration."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from system._lifecycle import StartStop
from system.app._device import (
    _REPLY,
    _REPLY_ERROR,
    Device,
    _first_error,
    _jsonable,
    _Periodic,
)
from system.app._events import CommandDone, CommandSent, ConfigReloaded
from system.app._periodic import run_periodic
from system.app._router import Router
from system.app._topics import join
from system.bus import BusClient, Message, RequestFailed, RequestTimeout
from system.observer import Event, LoggingObserver, Observer
from system.store import OnInterval, Store

_log = logging.getLogger("system.app")


class App(Router, StartStop):
    """A service: ``App(bus, prefix="building")``, routers included, then ``async with app:``
    (or ``start()``/``stop()``, or ``await app.run()`` until cancelled).

    ``store`` is injected into devices' persisted values. ``config`` is any pydantic model:
    ``reload()`` (or a request on ``<prefix>/config``) replaces it without a restart, and
    periodic work whose interval names a config field (``every("interval")``) picks up
    the new value at once. ``observer`` receives the app's events (default: logging).
    """

    def __init__(
        self,
        bus: BusClient,
        *,
        prefix: str = "",
        store: Store | None = None,
        config: BaseModel | None = None,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(prefix)
        self.bus = bus
        self.store = store
        self._config = config
        self.config_version = 0
        self._observer: Observer = (
            observer if observer is not None else LoggingObserver()
        )
        self._on_reload: list[Callable[[BaseModel], Any]] = []
        self._periodic_specs: list[_Periodic] = []
        self._tasks: list[tuple[_Periodic, asyncio.Task[None]]] = []
        self._requests = itertools.count(1)
        self.errors_total = 0
        self.running = False
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Restore persisted state, subscribe, start periodic work, announce devices online.
        Starts the bus if it is not started; does not wait for the broker."""
        if self.running:
            return
        if self._started:
            raise RuntimeError(
                "an App runs once (its bus cannot restart); make a new App and BusClient"
            )
        self._started = True
        if self.bus.state == "new":
            await self.bus.start()
            # The bus accepts publishes once its connect task has run (state "connecting").
            await asyncio.sleep(0)
        specs: list[_Periodic] = []
        for router in self.walk():
            specs += await router._bind(self)
        if self._config is not None:
            await self.bus.subscribe(
                join(self.base, "config"),
                self._on_config,
                name=f"app:{self.base}:config",
            )
        for value in self._persisted_values():
            if isinstance(value.policy, OnInterval):
                specs.append(_Periodic(value.policy.seconds, _flusher(value)))
        self._periodic_specs = specs
        self.running = True
        for dev in self.all_devices():
            await dev._announce()
        self._tasks = [(spec, self._spawn(spec)) for spec in specs]

    async def stop(self) -> None:
        """Stop periodic work, write persisted values, announce devices offline, stop the bus."""
        if not self.running:
            return
        self.running = False
        tasks = [t for _, t in self._tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        for dev in self.all_devices():
            dev._flush()
            with contextlib.suppress(Exception):
                await dev.set_available(False)
        await self.bus.stop()

    # -- configuration -------------------------------------------------------------------

    @property
    def config(self) -> Any:
        return self._config

    def on_reload(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Call ``fn(new_config)`` after each reload."""
        self._on_reload.append(fn)
        return fn

    async def reload(self, new: BaseModel | dict[str, Any]) -> Any:
        """Replace the configuration (a model, or a dict of fields to change, validated);
        restart periodic work whose interval comes from the config. Raises ``ValidationError``
        on a bad config, leaving the old one in place."""
        if self._config is None:
            raise RuntimeError(
                "this App has no config to reload; pass config=YourModel(...) to App"
            )
        if isinstance(new, dict):
            new = type(self._config).model_validate(
                {**self._config.model_dump(), **new}
            )
        elif not isinstance(new, type(self._config)):
            raise TypeError(
                f"config must be a {type(self._config).__name__}, got {type(new).__name__}"
            )
        self._config = new
        self.config_version += 1
        self._emit(ConfigReloaded, version=self.config_version)
        for fn in self._on_reload:
            await self._guard("reload", lambda fn=fn: fn(new))
        if self.running:
            for i, (spec, task) in enumerate(self._tasks):
                if not isinstance(spec.interval, (int, float)):
                    task.cancel()
                    self._tasks[i] = (spec, self._spawn(spec))
        return new

    async def _on_config(self, msg: Message) -> None:
        env = msg.envelope
        try:
            await self.reload(dict(env.data or {}))
        except (ValidationError, TypeError, ValueError) as exc:
            detail = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            await self._reply(env, _REPLY_ERROR, f"invalid config: {detail}")
            return
        await self._reply(env, _REPLY, _jsonable(self._config))

    # -- talking to other services -------------------------------------------------------

    async def send_command(
        self,
        device_topic: str,
        command: str,
        data: Any = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send ``command`` to the device at ``device_topic`` and return its reply's data.

        Reports ``CommandSent`` and ``CommandDone`` (with latency); raises ``RequestTimeout``
        or ``RequestFailed`` like ``BusClient.request``."""
        topic = join(device_topic, "cmd", command)
        n = next(self._requests)
        loop = asyncio.get_running_loop()
        timeout = self.bus.settings.request_timeout if timeout is None else timeout
        self._emit(CommandSent, topic=topic, command=command, request=n, timeout=timeout)
        t0 = loop.time()
        try:
            reply = await self.bus.request(topic, _jsonable(data), timeout=timeout)
        except RequestTimeout as exc:
            self._emit(
                CommandDone,
                topic=topic,
                command=command,
                request=n,
                outcome="timeout",
                latency=loop.time() - t0,
                detail=str(exc),
            )
            raise
        except RequestFailed as exc:
            self._emit(
                CommandDone,
                topic=topic,
                command=command,
                request=n,
                outcome="error",
                latency=loop.time() - t0,
                detail=str(exc),
            )
            raise
        self._emit(
            CommandDone,
            topic=topic,
            command=command,
            request=n,
            outcome="ok",
            latency=loop.time() - t0,
        )
        return reply.data

    # -- introspection -------------------------------------------------------------------

    def all_devices(self) -> list[Device]:
        return [d for r in self.walk() for d in r.devices.values()]

    def health(self) -> dict[str, str]:
        """Each device's health by topic."""
        return {d.topic: d.health for d in self.all_devices()}

    # -- internals -----------------------------------------------------------------------

    def _spawn(self, spec: _Periodic) -> asyncio.Task[None]:
        interval = spec.interval
        if isinstance(interval, str):
            field = interval
            if self._config is None or not hasattr(self._config, field):
                raise ValueError(
                    f"periodic interval names config field {field!r}, but the app's config has no such field"
                )
            interval = lambda: float(getattr(self._config, field))
        return asyncio.create_task(
            run_periodic(interval, spec.tick, immediate=spec.immediate),
            name=f"app-{self.bus.client_id}-periodic",
        )

    def _persisted_values(self) -> list[Any]:
        return [v for d in self.all_devices() for v in d._persisted]

    async def _reply(self, request: Any, kind: str, data: Any) -> None:
        if request.correlation_id is not None:
            await self.bus.publish(
                self.bus.settings.topic("reply", request.source),
                data,
                kind=kind,
                correlation_id=request.correlation_id,
            )

    def _count_error(self) -> None:
        self.errors_total += 1

    def _emit(self, cls: type[Event], **fields: Any) -> None:
        try:
            at = asyncio.get_running_loop().time()
        except RuntimeError:
            at = 0.0
        try:
            self._observer(cls(client=self.bus.client_id, at=at, **fields))
        except Exception:  # noqa: BLE001 - an observer must never break the app
            _log.exception("observer failed on %s", cls.name)


def _flusher(value: Any) -> Callable[[], None]:
    return value.flush
