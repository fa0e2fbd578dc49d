"""MQTT topic filters: validation and matching (``+`` one level, ``#`` the rest)."""

from __future__ import annotations

from functools import lru_cache


def validate_filter(pattern: str) -> str:
    """Return ``pattern`` if it is a valid MQTT topic filter, else raise ``ValueError`` saying why."""
    if not pattern:
        raise ValueError("topic filter is empty; use e.g. 'sensors/+/temp' or '#'")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"topic filter {pattern!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {pattern!r}: '+' must be a whole level, e.g. 'a/+/c'")
    return pattern


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid topic name to publish to, else raise ``ValueError``."""
    if not topic:
        raise ValueError("topic is empty")
    if "+" in topic or "#" in topic:
        raise ValueError(f"topic {topic!r} contains a wildcard; publish to a concrete topic")
    return topic


@lru_cache(maxsize=4096)
def matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` matches filter ``pattern`` (wildcards never match a leading ``$``)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    p_levels = pattern.split("/")
    t_levels = topic.split("/")
    for i, p in enumerate(p_levels):
        if p == "#":
            return True
        if i >= len(t_levels):
            return False
        if p != "+" and p != t_levels[i]:
            return False
    return len(p_levels) == len(t_levels)
