"""``Device``: commands, telemetry, subtopic handlers, persisted values, state machines,
coalescing groups, health and availability, with every user callable's failure contained."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from system.app._events import (
    DeviceAvailability,
    DeviceError,
    DeviceHealthChanged,
    DeviceStateChanged,
    DeviceStateRestored,
)
from system.app._periodic import Interval
from system.app._state import StateMachine
from system.app._topics import check_segment, check_subtopic, join
from system.bus import BusClosed, Message
from system.envelope import Envelope
from system.store import OnChange, Persisted, PersistPolicy

if TYPE_CHECKING:
    from system.app._app import App
    from system.app._router import Router

# The bus's request/reply wire protocol (see BusClient.request): a reply envelope carries
# the request's correlation_id and goes to the requester's reply topic.
_REPLY, _REPLY_ERROR = "reply", "reply-error"
_NO_ARG: Any = object()
_ON_CHANGE = OnChange()


class CommandRejected(ValueError):
    """Raise from a command handler to answer with an error reply (the device stays healthy)."""


@dataclass
class Command:
    """A command received by a device that pulls its commands (``device.commands()``)."""

    name: str
    data: Any
    envelope: Envelope
    _device: Device = field(repr=False)
    replied: bool = False

    async def reply(self, value: Any = None) -> None:
        await self._device._reply(self.envelope, _REPLY, _jsonable(value))
        self.replied = True

    async def fail(self, reason: str) -> None:
        await self._device._reply(self.envelope, _REPLY_ERROR, reason)
        self.replied = True


@dataclass
class _Periodic:
    interval: Interval
    tick: Callable[[], Awaitable[Any]]
    immediate: bool = False


@dataclass
class _Telemetry:
    name: str
    fn: Callable[[], Any]
    interval: Interval | None
    qos: int | None
    retain: bool
    returns: Any = (
        None  # a pydantic model the value is validated into, from the return annotation
    )


class DeviceMachine:
    """A device's ``StateMachine``: each move is published (retained) on
    ``<device>/state/<name>``, persisted, and reported as ``DeviceStateChanged``."""

    def __init__(self, device: Device, name: str, machine: StateMachine) -> None:
        self.device = device
        self.name = name
        self.machine = machine
        self._saved = device.persist(f"state:{name}", machine.state, OnChange())

    @property
    def state(self) -> str:
        return self.machine.state

    def can(self, event: str) -> bool:
        return self.machine.can(event)

    async def fire(self, event: str) -> str:
        """Apply ``event`` (raises ``InvalidTransition``); returns the new state."""
        old, new = self.machine.fire(event)
        self._saved.value = new
        if old != new:
            self.device._emit(
                DeviceStateChanged, machine=self.name, old=old, new=new, trigger=event
            )
        await self.publish(event)
        return new

    async def publish(self, trigger: str = "restore") -> None:
        if self.device._app is not None:
            await self.device._app.bus.publish(
                join(self.device.topic, "state", self.name),
                {"state": self.state, "trigger": trigger},
                kind="state",
                retain=True,
            )

    def _restore(self) -> None:
        state = self._saved.restore()
        self.machine.force(state)
        self.device._emit(DeviceStateRestored, machine=self.name, state=state, stored=self._saved.found)


class CoalescingGroup:
    """Several telemetry sources flushed together as one message on ``<device>/telemetry/<name>``
    every ``interval``: values ``set`` since the last flush (latest wins) plus each ``source``
    read at flush time. A flush with nothing to send publishes nothing."""

    def __init__(self, device: Device, name: str, interval: Interval | None) -> None:
        self.device = device
        self.name = name
        self.interval = interval
        self._pending: dict[str, Any] = {}
        self._sources: dict[str, Callable[[], Any]] = {}
        self.flushes = 0

    def set(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def source(self, key: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        def register(fn: Callable[[], Any]) -> Callable[[], Any]:
            self._sources[key] = fn
            return fn

        return register

    async def flush(self) -> None:
        values = dict(self._pending)
        self._pending.clear()
        for key, fn in self._sources.items():
            ok, value = await self.device._guard(f"coalesce:{self.name}:{key}", fn)
            if ok and value is not None:
                values[key] = _jsonable(value)
        if values:
            await self.device.publish(self.name, values)
            self.flushes += 1


class _Registers:
    """What a device and a router both offer: subtopic handlers and periodic tasks.

    The class using it provides ``_handlers``, ``_periodic`` and ``_guard``."""

    _handlers: list[tuple[str, Callable[..., Any], Any]]
    _periodic: list[_Periodic]

    def on(
        self, subtopic: str, model: Any = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Handle messages on ``<base>/<subtopic>`` (wildcards allowed); the payload is
        validated as ``model`` (or the first parameter's annotation; ``Message`` gets the raw message)."""
        check_subtopic(subtopic, "subtopic")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers.append((subtopic, fn, _payload_type(fn, model)))
            return fn

        return register

    def every(
        self, interval: Interval, *, immediate: bool = False
    ) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        """Call the function every ``interval`` seconds (or a callable / config field name giving
        them) while the app runs; failures are contained."""

        def register(fn: Callable[[], Any]) -> Callable[[], Any]:
            where = f"task:{getattr(fn, '__name__', 'task')}"
            self._periodic.append(
                _Periodic(interval, lambda: self._guard(where, fn), immediate)  # type: ignore[attr-defined]
            )
            return fn

        return register


class Device(_Registers):
    """A named thing under a router, at topic ``<router base>/<name>``.

    Topics (relative to the device): ``cmd/<command>`` (requests), ``telemetry/<name>``,
    ``trigger/<name>`` (any message publishes that telemetry now), ``state/<machine>``,
    ``availability``, ``health``, ``errors`` and any subtopic given to ``on``.
    """

    def __init__(self, router: Router, name: str, *, failing_after: int = 3) -> None:
        self.name = check_segment(name, "device name")
        self.router = router
        self.failing_after = failing_after
        self._commands: dict[str, tuple[Callable[..., Any], Any, Any]] = {}
        self._telemetry: dict[str, _Telemetry] = {}
        self._handlers: list[tuple[str, Callable[..., Any], Any]] = []
        self._periodic: list[_Periodic] = []
        self._persisted: list[Persisted[Any]] = []
        self._machines: dict[str, DeviceMachine] = {}
        self._groups: dict[str, CoalescingGroup] = {}
        self._inbox: asyncio.Queue[Command] | None = None
        self._app: App | None = None
        self.errors = 0
        self.consecutive_errors = 0
        self.health = "ok"
        self.available = False

    @property
    def topic(self) -> str:
        return join(self.router.base, self.name)

    @property
    def app(self) -> App:
        if self._app is None:
            raise RuntimeError(
                f"device {self.name!r} is not running: include its router in an App and start it"
            )
        return self._app

    # -- declaring ---------------------------------------------------------------------

    def command(
        self, name: str, model: Any = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a command handler on ``<device>/cmd/<name>``. Its payload is validated
        as ``model`` (default: the first parameter's annotation; a pydantic model gets its
        defaults filled, even from an empty payload); the return value is the reply. An
        invalid payload or a raising handler is answered with an error reply."""
        check_segment(name, "command name")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._commands[name] = (fn, _payload_type(fn, model), _return_type(fn))
            return fn

        return register

    def telemetry(
        self,
        name: str,
        *,
        interval: Interval | None = None,
        qos: int | None = None,
        retain: bool = False,
    ) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        """Register a telemetry source published on ``<device>/telemetry/<name>`` every
        ``interval`` seconds (None: only when triggered). A source returning None skips that
        reading; a pydantic return value is sent as its JSON form."""
        check_subtopic(name, "telemetry name")

        def register(fn: Callable[[], Any]) -> Callable[[], Any]:
            self._telemetry[name] = _Telemetry(
                name, fn, interval, qos, retain, _return_type(fn)
            )
            return fn

        return register

    def persist(
        self,
        key: str,
        default: Any,
        policy: PersistPolicy = _ON_CHANGE,
        *,
        type_: Any = None,
    ) -> Persisted[Any]:
        """A value kept in the app's store under this device, restored when the app starts."""
        # The namespace is the device's topic, known once its router is included (see _bind).
        value: Persisted[Any] = Persisted(None, "", key, default, policy, type_)
        self._persisted.append(value)
        return value

    def state_machine(
        self, name: str, initial: str, transitions: Mapping[tuple[str, str], str]
    ) -> DeviceMachine:
        check_segment(name, "state machine name")
        machine = DeviceMachine(self, name, StateMachine(initial, transitions))
        self._machines[name] = machine
        return machine

    def coalesce(self, name: str, *, interval: Interval | None) -> CoalescingGroup:
        check_subtopic(name, "coalescing group name")
        group = CoalescingGroup(self, name, interval)
        self._groups[name] = group
        return group

    # -- acting ------------------------------------------------------------------------

    async def publish(
        self, name: str, value: Any, *, qos: int | None = None, retain: bool = False
    ) -> None:
        """Publish one telemetry value now (a manual device publishes only this way)."""
        await self.app.bus.publish(
            join(self.topic, "telemetry", name),
            _jsonable(value),
            kind="telemetry",
            qos=qos,
            retain=retain,
        )

    async def trigger(self, name: str) -> bool:
        """Read and publish telemetry ``name`` now; False if the source failed or gave None."""
        tel = self._telemetry.get(name)
        if tel is None:
            group = self._groups.get(name)
            if group is None:
                raise KeyError(
                    f"device {self.name!r} has no telemetry {name!r}; it has: {', '.join(self._telemetry) or 'none'}"
                )
            await group.flush()
            return True
        ret = tel.returns

        async def read_and_publish() -> bool:
            value = tel.fn()
            if inspect.isawaitable(value):
                value = await value
            if value is None:
                return False
            if ret is not None and not isinstance(value, BaseModel):
                value = TypeAdapter(ret).validate_python(value)
            # Inside the guard: a value that is not JSON fails this reading, not the device.
            await self.publish(name, value, qos=tel.qos, retain=tel.retain)
            return True

        ok, published = await self._guard(f"telemetry:{name}", read_and_publish)
        return ok and bool(published)

    async def commands(self) -> AsyncIterator[Command]:
        """Pull the commands that have no handler, one by one (reply with ``cmd.reply``)."""
        if self._inbox is None:
            self._inbox = asyncio.Queue()
        while True:
            yield await self._inbox.get()

    def pull_commands(self) -> None:
        """Accept commands without a handler for ``commands()`` even before it is first iterated."""
        if self._inbox is None:
            self._inbox = asyncio.Queue()

    async def set_available(self, available: bool) -> None:
        """Publish this device's availability (retained); the app sets it online at start and
        offline at a clean stop."""
        if available == self.available:
            return
        self.available = available
        status = "online" if available else "offline"
        self._emit(DeviceAvailability, status=status)
        await self.app.bus.publish(
            join(self.topic, "availability"),
            {"status": status},
            kind="availability",
            retain=True,
        )

    # -- running (called by the App) -----------------------------------------------------

    async def _bind(self, app: App) -> list[_Periodic]:
        self._app = app
        for value in self._persisted:
            value.store, value.namespace = app.store, self.topic
            value.restore()
        for machine in self._machines.values():
            machine._restore()
        bus = app.bus
        await bus.subscribe(
            join(self.topic, "cmd", "+"), self._on_command, name=f"app:{self.topic}:cmd"
        )
        await bus.subscribe(
            join(self.topic, "trigger", "+"),
            self._on_trigger,
            name=f"app:{self.topic}:trigger",
        )
        for subtopic, fn, model in self._handlers:
            pattern = join(self.topic, subtopic)
            await bus.subscribe(
                pattern,
                _handler(self, f"on:{subtopic}", fn, model),
                name=f"app:{pattern}:{fn.__qualname__}",
            )
        tasks = list(self._periodic)
        for tel in self._telemetry.values():
            if tel.interval is not None:
                tasks.append(
                    _Periodic(tel.interval, lambda n=tel.name: self.trigger(n))
                )
        for group in self._groups.values():
            if group.interval is not None:
                tasks.append(_Periodic(group.interval, group.flush))
        return tasks

    async def _announce(self) -> None:
        await self.set_available(True)
        await self._publish_health("started")
        for machine in self._machines.values():
            await machine.publish()

    async def _on_command(self, msg: Message) -> None:
        env = msg.envelope
        name = msg.topic.rsplit("/", 1)[1]
        entry = self._commands.get(name)
        if entry is None:
            if self._inbox is not None:
                self._inbox.put_nowait(Command(name, env.data, env, self))
            else:
                known = ", ".join(sorted(self._commands)) or "none"
                await self._reply(
                    env,
                    _REPLY_ERROR,
                    f"device {self.topic} has no command {name!r} (known: {known})",
                )
            return
        fn, model, ret = entry
        try:
            args = () if model is _NO_ARG else (_validate(model, env.data),)
        except ValidationError as exc:
            await self._reply(
                env, _REPLY_ERROR, f"invalid payload for {name}: {_first_error(exc)}"
            )
            return
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            if (
                ret is not None
                and result is not None
                and not isinstance(result, BaseModel)
            ):
                result = TypeAdapter(ret).validate_python(result)
        except CommandRejected as exc:
            await self._reply(env, _REPLY_ERROR, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - failure isolation: the device answers and carries on
            await self._failed(f"command:{name}", exc)
            await self._reply(
                env, _REPLY_ERROR, f"{name} failed: {type(exc).__name__}: {exc}"
            )
            return
        await self._succeeded()
        await self._reply(env, _REPLY, _jsonable(result))

    async def _on_trigger(self, msg: Message) -> None:
        name = msg.topic.rsplit("/", 1)[1]
        if name in self._telemetry or name in self._groups:
            await self.trigger(name)

    async def _reply(self, request: Envelope, kind: str, data: Any) -> None:
        if request.correlation_id is None:
            return  # fire-and-forget command: nobody waits for an answer
        bus = self.app.bus
        await bus.publish(
            bus.settings.topic("reply", request.source),
            data,
            kind=kind,
            correlation_id=request.correlation_id,
        )

    async def _guard(self, where: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run a user callable; a failure is counted, reported and published, never raised."""
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - failure isolation: contain, count, report
            await self._failed(where, exc)
            return False, None
        await self._succeeded()
        return True, result

    async def _failed(self, where: str, exc: Exception) -> None:
        self.errors += 1
        self.consecutive_errors += 1
        self._emit(
            DeviceError,
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
        app = self._app
        if app is not None:
            app._count_error()
            await app.bus.publish(
                join(self.topic, "errors"), report, kind="error", qos=0
            )
        status = (
            "failing" if self.consecutive_errors >= self.failing_after else "degraded"
        )
        await self._set_health(status, f"{where}: {type(exc).__name__}: {exc}")

    async def _succeeded(self) -> None:
        self.consecutive_errors = 0
        await self._set_health("ok", "recovered")

    async def _set_health(self, status: str, reason: str) -> None:
        if status == self.health:
            return
        old, self.health = self.health, status
        self._emit(DeviceHealthChanged, old=old, new=status, reason=reason)
        await self._publish_health(reason)

    async def _publish_health(self, reason: str) -> None:
        if self._app is not None:
            data = {"status": self.health, "errors": self.errors, "reason": reason}
            with contextlib.suppress(BusClosed):
                await self._app.bus.publish(
                    join(self.topic, "health"), data, kind="health", retain=True, qos=0
                )

    def _flush(self) -> None:
        for value in self._persisted:
            value.flush()

    def _emit(self, cls: type, **fields: Any) -> None:
        if self._app is not None:
            self._app._emit(cls, device=self.topic, **fields)


def _handler(
    owner: Device | Any, where: str, fn: Callable[..., Any], model: Any
) -> Callable[[Message], Awaitable[None]]:
    async def handle(msg: Message) -> None:
        if model is _NO_ARG:
            call: Callable[[], Any] = fn
        elif model is Message:
            call = lambda: fn(msg)
        else:
            call = lambda: fn(_validate(model, msg.data))
        await owner._guard(where, call)

    return handle


def _payload_type(fn: Callable[..., Any], explicit: Any) -> Any:
    if explicit is not None:
        return explicit
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params:
        return _NO_ARG
    hint = _hints(fn).get(params[0].name)
    return hint if hint is not None else Any


def _return_type(fn: Callable[..., Any]) -> Any:
    hint = _hints(fn).get("return")
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations mean "untyped"
        return {}


def _validate(model: Any, data: Any) -> Any:
    if model is Any:
        return data
    if data is None and isinstance(model, type) and issubclass(model, BaseModel):
        data = {}  # an empty command still gets the model's defaults
    return TypeAdapter(model).validate_python(data)


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "<payload>"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"
