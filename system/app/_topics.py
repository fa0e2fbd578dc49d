"""Topic names of the app layer: prefixes are single segments, joined with ``/``."""

from __future__ import annotations

_FORBIDDEN = ("/", "+", "#", "\x00")


def check_segment(value: str, what: str, *, allow_empty: bool = False) -> str:
    if not value and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if any(ch in value for ch in _FORBIDDEN):
        raise ValueError(
            f"{what} {value!r} must be a single topic segment: no '/', '+', '#' (nest a Router for depth)"
        )
    return value


def check_subtopic(value: str, what: str) -> str:
    """A relative topic of one or more segments, no wildcards except a trailing ``#`` / ``+``."""
    if not value or value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(
            f"{what} {value!r} must be a relative topic like 'config' or 'events/door'"
        )
    return value


def join(*parts: str) -> str:
    return "/".join(p for p in parts if p)
