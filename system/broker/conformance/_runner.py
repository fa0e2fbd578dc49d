"""Run every statement against one target and render the table."""

from __future__ import annotations

import random
from typing import Awaitable, Callable

from system.broker.conformance import _checks  # noqa: F401 - registers the statements
from system.broker.conformance._registry import STATEMENTS, Outcome, Statement, Target, run_check


Progress = Callable[[int, int, str], None]


async def run_each(only: str | None, run: Callable[[Statement], Awaitable[Outcome]], progress: Progress | None = None) -> list[Outcome]:
    """``run`` on every statement (or those whose name contains ``only``), in registry order.

    ``progress(done, total, name)`` is called before each statement (and once at the end, name "").
    """
    chosen = [st for st in STATEMENTS if only is None or only in st.name]
    outcomes = []
    for st in chosen:
        if progress is not None:
            progress(len(outcomes), len(chosen), st.name)
        outcomes.append(await run(st))
    if progress is not None:
        progress(len(outcomes), len(chosen), "")
    return outcomes


async def run_suite(target: Target, rng: random.Random | None = None, only: str | None = None, progress: Progress | None = None) -> list[Outcome]:
    """Every registered check against ``target``, one after the other, in registry order."""
    rng = rng or random.Random()
    return await run_each(only, lambda st: run_check(st, target, rng), progress)


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
