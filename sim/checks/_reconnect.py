"""Reconnect backoff: the delay before each attempt stays under its cap, and it is jittered.

Reads ``connecting`` (an attempt begins, with the backoff the client was configured with, and
whether it is a retry: a restarted host's new client owes no backoff for its first attempt),
``error`` with ``where = "connect"`` and ``disconnect`` (an attempt or a connection ended).
The delay before attempt n is the time from the end of the previous attempt (or the loss of
the connection) to the start of attempt n. Promises:

- cap: every delay is at most ``min(maximum, initial * 2**(n-1))``, with 1 ms of slack in
  virtual time; a chaos run reads a wall clock on a shared machine, where a loaded event loop
  starts an attempt late, so it passes its own ``timing_slack`` (``RunFacts.extras``);
- jitter (full jitter): the delays, as fractions of their caps, are spread over [0, 1]: with
  at least 20 of them, a Kolmogorov-Smirnov distance from the uniform distribution above
  2.69/sqrt(n) means the clients are not jittering, and a crowd that lost one broker
  reconnects in lockstep. That is a one-in-a-million false alarm rate: a sweep is hundreds of
  runs, and at the 0.1% rate first chosen (1.95/sqrt(n)) soak seed 5 failed with 348 delays at
  distance 0.110 (p ~ 4e-4); clients without jitter sit near distance 1.
"""

from __future__ import annotations

import math

from sim.checks._index import Index
from sim.checks._model import CheckResult, Record, RunFacts

_SLACK = 0.001
_MIN_JITTER_SAMPLES = 20
_KS_CRITICAL = 2.69  # sqrt(ln(2 / alpha) / 2) for alpha = 1e-6


def reconnect_delays(ix: Index) -> list[tuple[Record, float, float]]:
    """(attempt record, delay, its cap) for every attempt that followed an ended one."""
    ended: dict[str, float] = {}
    out = []
    events = ix.by_event.get("connecting", []) + ix.by_event.get("disconnect", []) + [r for r in ix.by_event.get("error", []) if r.get("where") == "connect"]
    for r in sorted(events, key=lambda r: r["t"]):
        client = r.get("client")
        if r["event"] != "connecting":
            ended[client] = r["t"]
            continue
        since = ended.pop(client, None)
        if since is None or not r.get("retry", True):
            continue  # a client's first connect (a restarted host's new client too): no backoff before it
        n = int(r["attempt"])
        cap = min(float(r["maximum"]), float(r["initial"]) * 2 ** min(max(n - 1, 0), 62))
        out.append((r, r["t"] - since, cap))
    return out


def check_reconnect(ix: Index, facts: RunFacts) -> CheckResult:
    delays = reconnect_delays(ix)
    slack = float(facts.extras.get("timing_slack", _SLACK))
    if not delays:
        return CheckResult.skip("reconnect", "not judged: no client reconnected")
    for r, delay, cap in delays:
        if delay > cap + slack:
            return CheckResult(
                "reconnect", False,
                f"{r['client']} waited {delay:.3f}s before reconnect attempt {r['attempt']} at t={r['t']:.3f}s; "
                f"its backoff promises at most {cap:g}s (initial {r['initial']:g}s, maximum {r['maximum']:g}s)",
                r, r["t"],
            )
    capped = sum(1 for r, _, cap in delays if cap >= float(r["maximum"]))
    ratios = sorted(min(1.0, d / cap) for _, d, cap in delays if cap > 0)
    n = len(ratios)
    longest = max(d for _, d, _ in delays)
    summary = f"{len(delays)} reconnect delays under their caps ({capped} at the maximum, longest {longest:.3f}s)"
    if n < _MIN_JITTER_SAMPLES:
        return CheckResult("reconnect", True, f"{summary}; jitter not judged (fewer than {_MIN_JITTER_SAMPLES} delays)")
    distance = max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(ratios))
    bound = _KS_CRITICAL / math.sqrt(n)
    if distance > bound:
        median = ratios[n // 2]
        first = delays[0][0]
        return CheckResult(
            "reconnect", False,
            f"reconnect delays are not jittered: {n} delays as fractions of their caps have median {median:.3f} "
            f"and lie {distance:.3f} from uniform (bound {bound:.3f}); full jitter draws each in [0, cap]",
            first, first["t"],
        )
    return CheckResult("reconnect", True, f"{summary}; jittered (distance from uniform {distance:.3f} <= {bound:.3f})")
