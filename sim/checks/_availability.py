"""Availability: a client shown online is reachable, as far as the watcher could see."""

from __future__ import annotations

from collections import defaultdict

from sim.checks._control import connected_spans
from sim.checks._index import Index
from sim.checks._model import CheckResult, RunFacts, end_of

WATCHER = "monitor"
"""The client whose view is judged, unless the availability records name another."""


def _seeing_from(spans: list[tuple[float, float]], t: float, window: float) -> float | None:
    """The first moment at or after ``t`` at which the watcher has been connected for the
    whole ``window`` before it (it saw every will published in that time, or got the
    retained state when it subscribed), or None if it never is."""
    for s, e in spans:
        j = max(t, s + window)
        if j <= e:
            return j
    return None


def check_availability(ix: Index, facts: RunFacts) -> CheckResult:
    """Reads ``availability`` records (what the watcher was shown), every client's
    ``connect``/``disconnect`` and ``crash`` records, and the watcher's own. Promises: a
    client down (its own view, or its host crashed) for longer than ``stale_availability_s``
    is no longer shown "online" by then: the broker published its will. Judged only while
    the watcher could see: it was connected through the whole ``stale_availability_s``
    before the moment judged (a cut-off watcher shows stale state through no fault of the
    subject); a down spell the watcher never saw is counted as not judged."""
    shown: dict[str, list[tuple[float, str]]] = defaultdict(list)
    watcher = WATCHER
    for r in ix.by_event.get("availability", []):
        shown[r["subject"]].append((r["t"], r["status"]))
        watcher = r.get("watcher", watcher)
    if not shown:
        return CheckResult.skip("availability", "not measured: no availability observed")
    ups: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for r in sorted(ix.by_event.get("connect", []) + ix.by_event.get("disconnect", []) + ix.by_event.get("crash", []), key=lambda r: r["t"]):
        who = r.get("client") or r.get("host")
        ups[who].append((r["t"], r["event"] == "connect"))
    end = end_of(facts)
    stale = ix.cfg.stale_availability_s
    sight = connected_spans(ix).get(watcher)
    if sight is None:  # an older history: the watcher's connection was not recorded
        sight = [(float("-inf"), float("inf"))]

    def status_at(subject: str, t: float) -> str | None:
        seen = [st for at, st in shown[subject] if at <= t]
        return seen[-1] if seen else None

    judged = blind = 0
    for subject in sorted(shown):
        timeline = ups.get(subject, [])
        for i, (t_down, up) in enumerate(timeline):
            if up:
                continue
            back = next((t for t, u in timeline[i + 1 :] if u), end)
            if t_down + stale >= back:
                continue
            judge = _seeing_from(sight, t_down + stale, stale)
            if judge is None or judge >= back:
                blind += 1
                continue
            judged += 1
            if status_at(subject, judge) == "online":
                return CheckResult(
                    "availability", False,
                    f"stale availability: {subject} down since t={t_down:.3f}s but still shown online to {watcher} at t={judge:.3f}s "
                    f"({judge - t_down:g}s later, {watcher} connected throughout the last {stale:g}s; the broker never published its will)",
                    {"subject": subject, "down_since": t_down, "shown": "online", "judged_at": judge}, judge,
                )
    spared = f"; {blind} more while {watcher} was cut off, not judged" if blind else ""
    return CheckResult("availability", True, f"availability of {len(shown)} clients followed their connections ({judged} down spells judged{spared})")
