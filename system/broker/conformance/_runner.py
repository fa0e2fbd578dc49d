"""Run every statement against one target and render the table."""

from __future__ import annotations

import random
from typing import Callable

from system.broker.conformance import _checks  # noqa: F401 - registers the statements
from system.broker.conformance._registry import STATEMENTS, Outcome, Target, run_check


async def run_suite(target: Target, rng: random.Random | None = None, only: str | None = None,
                    progress: Callable[[int, int, str], None] | None = None) -> list[Outcome]:
    """Every registered check against ``target``, one after the other, in registry order.

    ``progress(done, total, name)`` is called before each statement (and once at the end, name "").
    """
    rng = rng or random.Random()
    chosen = [st for st in STATEMENTS if only is None or only in st.name]
    outcomes = []
    for st in chosen:
        if progress is not None:
            progress(len(outcomes), len(chosen), st.name)
        outcomes.append(await run_check(st, target, rng))
    if progress is not None:
        progress(len(outcomes), len(chosen), "")
    return outcomes


def format_table(outcomes: list[Outcome], title: str = "") -> str:
    width = max((len(o.name) for o in outcomes), default=10)
    lines = [title] if title else []
    lines.append(f"{'statement':<{width}}  result  detail")
    for o in outcomes:
        lines.append(f"{o.name:<{width}}  {o.status:<6}  {o.detail}")
    fails = sum(o.status == "fail" for o in outcomes)
    lines.append(f"{len(outcomes) - fails} of {len(outcomes)} ok, {fails} failed")
    return "\n".join(lines)
