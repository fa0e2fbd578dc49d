"""Errors that mean "the input is wrong": the CLI prints them on one line and exits 2."""

from __future__ import annotations

import os
from pathlib import Path


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


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error line never echoes a whole input."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def out_dir(path: Path, option: str = "--out") -> Path:
    """path as a directory to write a run into, created now so a bad one fails before the run."""
    where = f"{option} {shown(str(path), 120)}"
    _name_lengths(path, where)
    if path.exists() and not path.is_dir():
        raise BadInput(f"{where}: is a file; give a directory (new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadInput(f"{where}: a part of the path is a file, not a folder; give a directory path") from None
    except OSError as exc:
        raise BadInput(f"{where}: cannot create it ({exc.strerror or exc}); give a directory you can write to") from None
    return path


def out_file(path: Path, option: str = "--out", example: str = "shrunk.toml") -> Path:
    """path as a file to write later: its folder is created now, so a bad one fails at once."""
    where = f"{option} {shown(str(path), 120)}"
    _name_lengths(path, where)
    if path.is_dir():
        raise BadInput(f"{where}: is a directory; give a file path such as {shown(str(path / example), 120)}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise BadInput(f"{where}: {shown(str(parent), 120)} is a file, not a folder; give a path in a folder")
    out_dir(path.parent, option)
    return path


def _name_lengths(path: Path, where: str) -> None:
    longest = max((len(part.encode()) for part in path.parts), default=0)
    limit = 255
    try:
        limit = os.pathconf(path.anchor or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        pass
    if longest > limit:
        raise BadInput(f"{where}: a name in it is {longest} bytes long, the file system allows {limit}; give a shorter name")


class SimulationError(RuntimeError):
    """The simulated world cannot go on (a deadlock, an unsupported feature)."""


class Deadlock(SimulationError):
    """Nothing is scheduled any more but the main task has not returned."""


class Unsupported(SimulationError):
    """The code under simulation used something the simulated world refuses."""


class Livelock(SimulationError):
    """Callbacks keep running but virtual time never moves (a busy loop with no await on time)."""
