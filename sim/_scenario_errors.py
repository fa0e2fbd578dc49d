"""How a bad scenario file is explained: one line, each field named as the user wrote it.

The file writes a fault flat (``at``, ``kind``, ``host``, ``type``...), so the model's nesting
is taken out of error locations; every error is listed, joined with ``"; "``; the input is
echoed cut short; TOML's inf and nan, which no field accepts, are found wherever they are.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from sim.errors import shown
from sim.faults.schedule import FAULT_KINDS


def where(loc: tuple[Any, ...]) -> str:
    # A fault is written flat in the file (at, kind, host, type...), so drop the model's
    # nesting (fault, the kind's tag, toxic) and name the field as the user wrote it.
    parts: list[Any] = list(loc)
    if len(parts) >= 3 and parts[0] == "faults" and parts[2] == "fault":
        rest = parts[3:]
        if rest and rest[0] in FAULT_KINDS:  # the kind's tag
            rest = rest[1:]
        if rest[:1] == ["toxic"]:  # a toxic's own fields are written flat too
            rest = rest[1:]
        parts = parts[:2] + rest
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{key(p)}" if out else key(p))
    return out


def key(name: Any) -> str:
    """A key as TOML writes it: bare when it can be, else quoted (and cut), never a line break."""
    text = str(name)
    return text if text and all(c.isascii() and (c.isalnum() or c in "_-") for c in text) else shown(repr(text), 40)


def explain(exc: ValidationError, prefix: str = "") -> str:
    """Every validation error, each on the field the user wrote, joined into one line."""
    lines: list[str] = []
    budget = 200  # characters of the input echoed in all, however many errors
    for err in exc.errors(include_url=False):
        field = prefix + where(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_not_found":
            field, msg = f"{field}.kind", f"Field required; choose one of {', '.join(FAULT_KINDS)}"
        elif err["type"] == "union_tag_invalid":
            field, msg = f"{field}.kind", f"unknown kind {shown(err['ctx']['tag'], 40)}; choose one of {', '.join(FAULT_KINDS)}"
        got = err.get("input")
        echo = ""
        if err["type"] not in ("missing", "union_tag_invalid", "union_tag_not_found") and not isinstance(got, (dict, list)) and got is not None and budget > 0:
            echo = f" (got {shown(repr(got), min(60, budget))})"
            budget -= len(echo)
        lines.append(f"{field}: {msg}{echo}" if field else f"{msg}{echo}")
    return "; ".join(lines)


def non_finite(data: Any) -> list[str]:
    """Where the document holds inf or nan (TOML allows both; no field of a scenario does)."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:  # a loop, not recursion: the document may be nested very deep
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"{path}: give a finite number (got {value})")
        elif isinstance(value, dict):
            stack.extend((f"{path}.{key(k)}" if path else key(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return found


def filter_problem(topics: str) -> str | None:
    """What makes ``topics`` an invalid MQTT 3.1.1 topic filter, if anything (4.7.1)."""
    if not topics:
        return "it is empty"
    levels = topics.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None
