"""Run every statement against one target and render the table."""

from __future__ import annotations

import random

from system.broker.conformance import _checks  # noqa: F401 - registers the statements
from system.broker.conformance._registry import STATEMENTS, Outcome, Target, run_check


async def run_suite(target: Target, rng: random.Random | None = None, only: str | None = None) -> list[Outcome]:
    """Every registered check against ``target``, one after the other, in registry order."""
    rng = rng or random.Random()
    return [await run_check(st, target, rng) for st in STATEMENTS if only is None or only in st.name]


def format_table(outcomes: list[Outcome], title: str = "") -> str:
    width = max((len(o.name) for o in outcomes), default=10)
    lines = [title] if title else []
    lines.append(f"{'statement':<{width}}  result  detail")
    for o in outcomes:
        lines.append(f"{o.name:<{width}}  {o.status:<6}  {o.detail}")
    lines.append(summary(outcomes))
    return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> str:
    """``passed P of N, failed F, skipped S``: a skip (the target lacks a setting) is not a pass."""
    count = {k: sum(o.status == k for o in outcomes) for k in ("pass", "fail", "skip")}
    return f"passed {count['pass']} of {len(outcomes)}, failed {count['fail']}, skipped {count['skip']}"
