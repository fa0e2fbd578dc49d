"""The broker as a program: serve until interrupted, or run the conformance suite and report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Iterator
from typing import TextIO

from system.broker.embedded import FLAVORS, EmbeddedBroker


class UsageError(ValueError):
    """A bad argument to the broker program; the message is one line naming the fix."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); UsageError with a one-line reason otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--against must be HOST:PORT with a port in 1-65535 (got {text!r}), e.g. 127.0.0.1:1883")
    return host.strip("[]"), int(port)


def _check_flavor(flavor: str) -> None:
    if flavor not in FLAVORS:
        raise UsageError(f"--flavor must be one of {', '.join(FLAVORS)} (got {flavor!r})")


def _login(user: str) -> tuple[str, str]:
    name, sep, password = user.partition(":")
    if not sep or not name:
        raise UsageError(f"--user must be NAME:PASSWORD (got {user!r})")
    return name, password


def serve(host: str, port: int, flavor: str, out: TextIO | None = None, user: str | None = None,
          denied_filter: str | None = None) -> int:
    """Run the embedded broker until SIGINT or SIGTERM; 0 on that clean stop.

    ``user`` (NAME:PASSWORD) is a login it accepts besides anonymous clients, and
    ``denied_filter`` a topic filter that user may not subscribe to, publish to or receive: the
    settings ``--conformance --against`` needs to run the credential and ACL checks too.

    Both signals are handled here, not left to Python's defaults: a shell starts a background
    job with SIGINT ignored (Python then never raises KeyboardInterrupt) and SIGTERM would kill
    the process without closing its connections. A stop asked for by a signal is the server's
    normal end, so it exits 0, as mosquitto does. State (retained messages, persistent
    sessions) is kept in memory only: it does not survive the stop.
    """
    _check_flavor(flavor)
    out = out or sys.stdout
    users = dict([_login(user)]) if user is not None else {}
    if denied_filter is not None and not users:
        raise UsageError("--denied-filter needs --user NAME:PASSWORD: it is what that user may not use")
    deny = {name: [denied_filter] for name in users} if denied_filter is not None else None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        broker = EmbeddedBroker(host, port, flavor=flavor, users=users, deny=deny)  # type: ignore[arg-type]
        try:
            with _quiet():  # amqtt logs the bind error's traceback; the one-line error says it all
                await broker.start()
        except Exception as exc:  # noqa: BLE001 - amqtt wraps bind errors in BrokerError
            raise UsageError(
                f"cannot listen on {host}:{port}: {_reason(exc)}; pick another with --host/--port (0: any free port)"
            ) from None
        print(f"squall broker ({flavor}) listening on {host}:{broker.port}; Ctrl-C stops it", file=out, flush=True)
        try:
            await stop.wait()
        finally:  # the handlers stay: a second Ctrl-C while stopping is absorbed, not a traceback
            await broker.stop()
        print("squall broker stopped", file=out, flush=True)

    asyncio.run(main())
    return 0


def _reason(exc: BaseException) -> str:
    """The OS's words for a bind error (``address already in use``), else the exception's."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        if isinstance(exc, OSError):
            break
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if isinstance(exc, OSError) and exc.errno:  # negative: a resolver error, its own words
        return os.strerror(exc.errno).lower() if exc.errno > 0 else str(exc.strerror)
    return str(exc)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """amqtt and its state machine log every refused packet and failed start; mute them here."""
    loggers = [logging.getLogger(n) for n in ("amqtt", "transitions", "system.broker")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def conformance(against: str | None, flavor: str, only: str | None = None, seed: int | None = None,
                user: str | None = None, denied_filter: str | None = None, out: TextIO | None = None) -> int:
    """Run the suite against ``against`` (HOST:PORT) or a fresh embedded broker; 1 if any statement fails.

    ``user`` (NAME:PASSWORD) and ``denied_filter`` describe what the remote broker has configured;
    without them the credential and ACL checks are skipped there.
    """
    from system.broker.conformance import (
        Target,
        format_table,
        run_suite,
        run_suite_embedded,
    )

    _check_flavor(flavor)
    address = parse_address(against) if against else None
    name, password = _login(user) if user is not None else ("", "")
    if user is not None and against is None:
        raise UsageError("--user describes a broker given with --against; the embedded one has its own")
    rng = random.Random(seed)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # On stderr: stdout is the table, whole, for a pipe or a file.
    columns = (TextColumn("conformance"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    err = Console(stderr=True)
    bar = Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
    task = bar.add_task("", total=None)

    def progress(done: int, total: int, name: str) -> None:
        bar.update(task, completed=done, total=total, description=name)

    async def main() -> list:
        if address is not None:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(*address), 10)
                writer.close()
            except (TimeoutError, OSError) as exc:
                raise UsageError(f"no broker answers at {against} ({exc!r}); start one or fix --against") from None
            target = Target(*address, name=against or "", username=name or None, password=password or None,
                            denied_filter=denied_filter)
            return await run_suite(target, rng, only, progress)
        return await run_suite_embedded(flavor, rng, only, progress)  # a fresh broker per statement

    with _quiet(), bar:  # the broker under test logs every refused packet; the table is the report here
        outcomes = asyncio.run(main())
    if not outcomes:
        raise UsageError(f"--only {only!r} matches no statement; names look like MQTT_3_1_2_4_clean_session_0_...")
    title = f"MQTT 3.1.1 conformance of {against or f'the embedded {flavor} broker'}"
    print(format_table(outcomes, title), file=out or sys.stdout)
    return 1 if any(o.status == "fail" for o in outcomes) else 0
