"""Command round trips: started and finished in calm weather, they succeed."""

from __future__ import annotations

from collections import defaultdict

from sim.checks._index import Index
from sim.checks._model import CheckResult, Record, RunFacts, quantile

def _disturbed(ix: Index, facts: RunFacts) -> list[tuple[float, float]]:
    """When the system may fail requests: each fault's window (from the history's ``fault`` and
    ``heal`` records; to the end for a fault never healed), widened by the time the fleet is
    given to settle after it (``convergence_s``)."""
    end = facts.end if facts.end is not None else facts.duration
    started: dict[str, list[float]] = defaultdict(list)
    windows = []
    for r in sorted(ix.by_event.get("fault", []) + ix.by_event.get("heal", []), key=lambda r: r["t"]):
        label = r.get("label", "")
        if r["event"] == "fault":
            started[label].append(r["t"])
        elif started[label]:
            windows.append((started[label].pop(0), r["t"] + ix.cfg.convergence_s))
    windows += [(t, end) for ts in started.values() for t in ts]
    return sorted(windows)


def check_commands(ix: Index, facts: RunFacts) -> CheckResult:
    """Command round trips started and finished while no fault was acting succeed (a request
    that meets a crash or a cut may time out: that is the fault, not a bug)."""
    disturbed = _disturbed(ix, facts)

    def calm(r: Record) -> bool:
        sent = r["t"] - r.get("latency", 0.0)
        return not any(sent < until and r["t"] > start for start, until in disturbed)

    every = ix.by_event.get("command_done", [])
    trips = [r for r in every if calm(r)]
    spared = f"; {len(every) - len(trips)} more met a fault and are not judged" if len(trips) < len(every) else ""
    if not trips:
        return CheckResult("commands", True, f"no command round trips to judge{spared}")
    ok_trips = [r for r in trips if r.get("outcome") == "ok"]
    ratio = len(ok_trips) / len(trips)
    lat = [r.get("latency", 0.0) * 1000.0 for r in ok_trips]
    p99 = quantile(lat, 0.99) if lat else float("nan")
    failed = [r for r in trips if r.get("outcome") != "ok"]
    ok = ratio >= ix.cfg.min_command_success and (ix.cfg.max_command_latency_ms is None or not lat or p99 <= ix.cfg.max_command_latency_ms)
    first = failed[0] if failed else None
    return CheckResult(
        "commands", ok, f"{len(ok_trips)} of {len(trips)} command round trips succeeded ({ratio:.1%}, need {ix.cfg.min_command_success:.0%}); p99 {p99:.1f} ms{spared}",
        first if not ok else None, first["t"] if first and not ok else None,
    )

