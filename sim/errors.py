"""Errors that mean "the input is wrong": the CLI prints them on one line and exits 2."""

from __future__ import annotations


class BadInput(Exception):
    """Bad input from a user: a scenario file, a CLI argument, a request.

    The message names the problem and the fix, in one line, e.g.
    ``scenario smoke.toml: duration: must be > 0 (got -5); set duration = 60``.
    """


def pick(option: str, wanted: str | None, available: list[str]) -> list[str]:
    """Names from a comma-separated option, each checked against ``available`` (all when empty)."""
    if not wanted:
        return list(available)
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise BadInput(f"{option}: unknown name {unknown[0]!r}; choose from {', '.join(available)}")
    return names


class SimulationError(RuntimeError):
    """The simulated world cannot go on (a deadlock, an unsupported feature)."""


class Deadlock(SimulationError):
    """Nothing is scheduled any more but the main task has not returned."""


class Unsupported(SimulationError):
    """The code under simulation used something the simulated world refuses."""


class Livelock(SimulationError):
    """Callbacks keep running but virtual time never moves (a busy loop with no await on time)."""
