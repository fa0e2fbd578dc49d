"""User services in a scenario: your own MQTT programs, run by squall in either world.

    [[services]]
    name = "counter"                  # host name, and the default MQTT client id
    entry = "myapp.counter:main"      # async def main(ctx: ServiceContext) -> None
    replicas = 2                      # hosts counter-0 and counter-1 (one replica: "counter")
    command = ["python", "-m", "myapp.counter", "--broker", "{broker_url}"]  # chaos only, optional
    config = { topic = "readings/#" } # free-form, handed over as ctx.config

In sim the entry runs on its own host of the simulated world, in virtual time; a crash
cancels it and a restart calls it again with the same ``disk`` folder. In chaos it runs on
the real loop, or, when ``command`` is given, as a real process (placeholders ``{broker_url}``,
``{broker_host}``, ``{broker_port}``, ``{name}``, ``{index}``, ``{seed}``, ``{disk}``; the same
values are in the environment as ``SQUALL_BROKER_URL``, ``SQUALL_BROKER_HOST``,
``SQUALL_BROKER_PORT``, ``SQUALL_NAME``, ``SQUALL_INDEX``, ``SQUALL_SEED``, ``SQUALL_DISK``, plus
``SQUALL_SERVICE`` and ``SQUALL_REPLICAS``). ``context_from_env()`` rebuilds the context there,
so one ``async def main(ctx)`` serves both: ``asyncio.run(main(context_from_env()))``.

Entries are imported from ``sys.path`` plus the scenario's ``pythonpath`` (default: the
folder of the scenario file), so a project folder works without installing it.
"""

from __future__ import annotations

import importlib
import inspect
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sim.errors import BadInput

HOST_NAME = r"^[A-Za-z][A-Za-z0-9_.-]*$"
PLACEHOLDERS = ("broker_url", "broker_host", "broker_port", "name", "index", "seed", "disk")


class ServiceSet(BaseModel):
    """One ``[[services]]`` table: a program and how many copies of it run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=HOST_NAME, description="host name (with -0..-N-1 when replicas > 1)")
    entry: str | None = Field(None, description='"package.module:function", an async function taking a ServiceContext')
    replicas: int = Field(1, ge=1, le=1000)
    command: list[str] | None = Field(None, min_length=1, description="chaos mode: run as a real process")
    depends_on: list[str] = Field(default_factory=list, description="service sets started before this one")
    config: dict[str, Any] = Field(default_factory=dict, description="handed to the service as ctx.config")

    @field_validator("entry")
    @classmethod
    def _entry_form(cls, v: str | None) -> str | None:
        if v is not None and (v.count(":") != 1 or not all(v.split(":"))):
            raise ValueError('write entry as "package.module:function"')
        return v

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, v: list[str] | None) -> list[str] | None:
        import string

        for arg in v or []:
            for _, fname, _, _ in string.Formatter().parse(arg):
                if fname is not None and fname not in PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {{{fname}}} in {arg!r}; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        return v

    def hosts(self) -> list[str]:
        """The host names of this set's instances: ``name`` alone, or ``name-0`` .. ``name-N-1``."""
        return [self.name] if self.replicas == 1 else [f"{self.name}-{i}" for i in range(self.replicas)]


@dataclass(frozen=True)
class ServiceContext:
    """What a service is given: who it is, where the broker is, and what it may keep."""

    name: str  # its host name: use it as the MQTT client id, so faults and checks name it
    service: str  # the [[services]] name
    index: int  # 0 .. replicas-1
    replicas: int
    broker_url: str  # mqtt://host:port
    broker_host: str
    broker_port: int
    seed: int
    rng: random.Random  # seeded from the run's seed and the host name: use it for every random choice
    disk: Path  # survives crashes and restarts of this host, not the run
    config: dict[str, Any] = field(default_factory=dict)
    mode: Literal["sim", "chaos"] = "sim"
    note: Callable[..., None] = lambda event, **fields: None  # note("event", **fields) into the run's history


ServiceMain = Callable[[ServiceContext], Awaitable[None]]


def split_url(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def context_for(s: ServiceSet, index: int, *, broker_url: str, seed: int, disk: Path, mode: Literal["sim", "chaos"], note: Callable[..., None]) -> ServiceContext:
    host, port = split_url(broker_url)
    name = s.hosts()[index]
    return ServiceContext(
        name=name, service=s.name, index=index, replicas=s.replicas, broker_url=broker_url, broker_host=host,
        broker_port=port, seed=seed, rng=random.Random(f"service:{seed}:{name}"), disk=disk, config=dict(s.config),
        mode=mode, note=note,
    )


def context_from_env(env: dict[str, str] | None = None, config: dict[str, Any] | None = None) -> ServiceContext:
    """The context of a service started by ``squall chaos run`` as a process (``command``)."""
    import os

    e = os.environ if env is None else env
    try:
        url = e["SQUALL_BROKER_URL"]
        name = e["SQUALL_NAME"]
    except KeyError as exc:
        raise BadInput(f"{exc.args[0]} is not set: this process is meant to be started by squall chaos run (command = [...])") from None
    host, port = split_url(url)
    seed = int(e.get("SQUALL_SEED", "0"))
    disk = Path(e.get("SQUALL_DISK", "."))
    return ServiceContext(
        name=name, service=e.get("SQUALL_SERVICE", name), index=int(e.get("SQUALL_INDEX", "0")), replicas=int(e.get("SQUALL_REPLICAS", "1")),
        broker_url=url, broker_host=host, broker_port=port, seed=seed, rng=random.Random(f"service:{seed}:{name}"), disk=disk,
        config=dict(config or {}), mode="chaos",
    )


def add_paths(paths: list[str]) -> None:
    for p in paths:
        if p not in sys.path:
            sys.path.append(p)


def resolve(entry: str, what: str, paths: list[str], params: int = 1) -> Callable[..., Any]:
    """The callable behind ``"pkg.module:function"``, or a one-line BadInput naming the problem."""
    add_paths(paths)
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        where = f"; searched sys.path and {', '.join(paths)}" if paths else ""
        raise BadInput(f"{what}: module {exc.name!r} not found for entry {entry!r}{where}; set PYTHONPATH or pythonpath = [...] in the scenario") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import: say how, in one line
        raise BadInput(f"{what}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise BadInput(f"{what}: {module_name!r} has no {attr!r} (entry {entry!r})")
    if not callable(fn):
        raise BadInput(f"{what}: {entry!r} is a {type(fn).__name__}, not a function")
    try:
        sig = inspect.signature(fn)
        sig.bind(*range(params))
    except TypeError:
        shown = "ctx" if params == 1 else "history"
        raise BadInput(f"{what}: {entry!r} must take exactly one argument ({shown}); it is {attr}{sig}") from None
    except ValueError:
        pass  # a builtin without a signature: let the call tell
    return fn


def resolve_service(s: ServiceSet, paths: list[str], mode: Literal["sim", "chaos"]) -> ServiceMain | None:
    what = f"services {s.name!r}"
    if mode == "chaos" and s.command is not None:
        _check_program(what, s.command[0])
    if s.entry is None:
        if mode == "sim" or s.command is None:
            raise BadInput(f"{what}: no entry; sim runs services in-process: add entry = \"package.module:main\"" + ("" if s.command else " (or command = [...] for chaos)"))
        return None
    fn = resolve(s.entry, what, paths)
    if not inspect.iscoroutinefunction(fn):
        raise BadInput(f"{what}: {s.entry!r} is not async; write it as async def {s.entry.split(':')[1]}(ctx)")
    return fn


def _check_program(what: str, program: str) -> None:
    """The program of a command exists (else the run would start nothing and judge nothing)."""
    import os
    import shutil

    if "{" in program or ("/" in program and not os.path.isabs(program)):
        return  # a placeholder, or a path relative to the service's folder: the start will tell
    if (shutil.which(program) if "/" not in program else (program if os.access(program, os.X_OK) else None)) is None:
        raise BadInput(f"{what}: command {program!r} is not an executable program on PATH; give its full path or install it")


def check_sets(sets: list[ServiceSet], reserved: set[str]) -> None:
    """Host names unique and not squall's own; dependencies named."""
    seen: dict[str, str] = {}
    names = {s.name for s in sets}
    for s in sets:
        for dep in s.depends_on:
            if dep not in names:
                raise ValueError(f"services {s.name!r}: depends_on names {dep!r}, which is not a service")
        for h in s.hosts():
            if h in reserved:
                raise ValueError(f"services {s.name!r}: host name {h!r} is taken by squall ({', '.join(sorted(reserved))}); rename the service")
            if h in seen:
                raise ValueError(f"services {s.name!r}: host {h!r} is also a host of services {seen[h]!r}; names must be unique")
            seen[h] = s.name


__all__ = ["ServiceContext", "ServiceMain", "ServiceSet", "context_for", "context_from_env", "resolve", "resolve_service"]
