"""Supervisor: a crashed service is started again, after a delay its restart policy allows.

Reads ``service`` records (``system.Supervisor``'s transitions: ``running``, ``crashed`` with
the delay it chose and its policy, ``starting``). Promises, per service:

- restarted: after ``crashed`` with delay d at t, the service is ``starting`` again at t + d
  (1 ms of slack), unless the run or the supervisor ended first;
- backoff: d is at most ``min(maximum, initial * 2**(k-1))`` for the k-th crash in a row, where
  a run that lasted ``stable_after`` seconds starts the count again.
"""

from __future__ import annotations

from collections import defaultdict

from sim.checks._index import Index
from sim.checks._model import CheckResult, Record, RunFacts

_SLACK = 0.001


def check_supervisor(ix: Index, facts: RunFacts) -> CheckResult:
    records = ix.by_event.get("service", [])
    if not records:
        return CheckResult.skip("supervisor", "not judged: no supervised service in this run")
    end = facts.end if facts.end is not None else facts.duration
    per: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r["t"]):
        per[(r.get("client"), r["service"])].append(r)
    restarts = 0
    for (sup, service), rs in per.items():
        began: float | None = None
        streak = 0
        for i, r in enumerate(rs):
            if r["new"] == "running":
                began = r["t"]
            if r["new"] != "crashed" or r.get("delay") is None:
                continue
            delay = float(r["delay"])
            if r.get("maximum") is not None:
                lasted = r["t"] - began if began is not None else 0.0
                streak = 1 if lasted >= float(r["stable_after"]) else streak + 1
                cap = min(float(r["maximum"]), float(r["initial"]) * 2 ** min(streak - 1, 62))
                if delay > cap + _SLACK:
                    return CheckResult(
                        "supervisor", False,
                        f"{sup} chose a {delay:.3f}s backoff for {service}'s crash #{streak} in a row at t={r['t']:.3f}s; "
                        f"its policy allows at most {cap:g}s (initial {r['initial']:g}s, maximum {r['maximum']:g}s)",
                        r, r["t"],
                    )
            due = r["t"] + delay
            later = rs[i + 1:]
            stopped = next((x["t"] for x in later if x["new"] in ("stopping", "stopped")), end)
            if min(stopped, end) <= due + _SLACK:
                continue  # the supervisor (or the run) ended before the restart was due
            start = next((x for x in later if x["new"] == "starting"), None)
            if start is None or abs(start["t"] - due) > _SLACK:
                when = "never" if start is None else f"at t={start['t']:.3f}s"
                return CheckResult(
                    "supervisor", False,
                    f"{service} crashed at t={r['t']:.3f}s ({r.get('error')}); {sup} promised a restart after {delay:.3f}s "
                    f"(t={due:.3f}s) and started it {when}",
                    r, r["t"],
                )
            restarts += 1
    if not restarts:
        return CheckResult.skip("supervisor", "not judged: no supervised service crashed")
    return CheckResult("supervisor", True, f"{restarts} restarts on time, every delay within its backoff")
