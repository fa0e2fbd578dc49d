"""Availability: a client shown online is reachable."""

from __future__ import annotations

from collections import defaultdict

from sim.checks._index import Index
from sim.checks._model import CheckResult, RunFacts

def check_availability(ix: Index, facts: RunFacts) -> CheckResult:
    """A client shown online must be reachable: whenever a client is down (its own view, or its
    host crashed) for longer than ``stale_availability_s``, what a watcher sees for it by then
    must no longer be "online" (the broker publishes its will)."""
    shown: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in ix.by_event.get("availability", []):
        shown[r["subject"]].append((r["t"], r["status"]))
    if not shown:
        return CheckResult("availability", True, "no availability observed")
    ups: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for r in sorted(ix.by_event.get("connect", []) + ix.by_event.get("disconnect", []) + ix.by_event.get("crash", []), key=lambda r: r["t"]):
        who = r.get("client") or r.get("host")
        ups[who].append((r["t"], r["event"] == "connect"))
    end = facts.end if facts.end is not None else facts.duration
    stale = ix.cfg.stale_availability_s

    def status_at(subject: str, t: float) -> str | None:
        seen = [st for at, st in shown[subject] if at <= t]
        return seen[-1] if seen else None

    for subject in sorted(shown):
        timeline = ups.get(subject, [])
        for i, (t_down, up) in enumerate(timeline):
            if up:
                continue
            back = next((t for t, u in timeline[i + 1 :] if u), end)
            judge = t_down + stale
            if judge < back and status_at(subject, judge) == "online":
                return CheckResult(
                    "availability", False,
                    f"stale availability: {subject} down since t={t_down:.3f}s but still shown online at t={judge:.3f}s "
                    f"({stale:g}s later; the broker never published its will)",
                    {"subject": subject, "down_since": t_down, "shown": "online", "judged_at": judge}, judge,
                )
    return CheckResult("availability", True, f"availability of {len(shown)} clients followed their connections")

