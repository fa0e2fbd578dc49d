"""Command round trips: started and finished in calm weather, they succeed."""

from __future__ import annotations

from collections import defaultdict

from sim.checks._index import Index
from sim.checks._model import CheckResult, Record, RunFacts, end_of, quantile

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


def unfinished(ix: Index, facts: RunFacts) -> list[Record]:
    """``command_sent`` records with no ``command_done`` although the run went on past their
    timeout plus ``grace_s``, and their client did not crash meanwhile (the request died with
    it). Pairs by (client, request number), in order: a restarted app counts from 0 again."""
    open_: dict[tuple[str, int], list[Record]] = defaultdict(list)
    events = ix.by_event.get("command_sent", []) + ix.by_event.get("command_done", []) + ix.by_event.get("crash", [])
    for r in sorted(events, key=lambda r: (r["t"], r["event"] != "command_sent")):
        if r["event"] == "crash":
            for key in [k for k in open_ if k[0] == r.get("host")]:
                del open_[key]
        elif r["event"] == "command_sent":
            open_[(r.get("client", ""), r.get("request"))].append(r)
        elif open_.get((r.get("client", ""), r.get("request"))):
            open_[(r.get("client", ""), r.get("request"))].pop(0)
    end = end_of(facts)
    return sorted(
        (r for rs in open_.values() for r in rs if r["t"] + (r.get("timeout") or 0.0) + ix.cfg.grace_s <= end and r.get("timeout") is not None),
        key=lambda r: r["t"],
    )


def check_commands(ix: Index, facts: RunFacts) -> CheckResult:
    """Command round trips started and finished while no fault was acting succeed (a request
    that meets a crash or a cut may time out: that is the fault, not a bug); and every request
    finishes: one still pending past its timeout plus ``grace_s`` fails, whatever the weather."""
    stuck = unfinished(ix, facts)
    if stuck:
        r = stuck[0]
        return CheckResult(
            "commands", False,
            f"{len(stuck)} requests never finished; first: request {r['request']} ({r['command']} on {r['topic']}) from {r['client']} "
            f"sent at t={r['t']:.3f}s, still pending at the end (t={end_of(facts):.3f}s) though its timeout was {r['timeout']:g}s",
            r, r["t"] + r["timeout"],
        )
    disturbed = _disturbed(ix, facts)

    def calm(r: Record) -> bool:
        sent = r["t"] - r.get("latency", 0.0)
        return not any(sent < until and r["t"] > start for start, until in disturbed)

    every = ix.by_event.get("command_done", [])
    trips = [r for r in every if calm(r)]
    spared = f"; {len(every) - len(trips)} more met a fault and are not judged" if len(trips) < len(every) else ""
    if not trips:
        return CheckResult.skip("commands", f"not measured: no command round trips to judge{spared}")
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

