"""Liveness: once faults stop, the system converges."""

from __future__ import annotations

from sim.checks._index import Index
from sim.checks._model import CheckResult, RunFacts

def check_liveness(ix: Index, facts: RunFacts) -> CheckResult:
    """Once faults stop, the fleet converges: backlog delivered, clients connected, rooms in band."""
    deadline = facts.quiet_after + ix.cfg.convergence_s
    end = facts.end if facts.end is not None else facts.duration
    if end < deadline:
        return CheckResult.skip("liveness", f"not judged: the run ends at {end:g}s, before the convergence deadline {deadline:g}s")
    for r in sorted(ix.published.values(), key=lambda r: r["t"]):
        if r.get("qos") == 1 and r["t"] <= facts.quiet_after:
            late = [d for rcv in ix.cfg.receivers for d in ix.deliveries.get((rcv, r["id"]), [])]
            if late and min(d["t"] for d in late) > deadline:
                return CheckResult("liveness", False, f"backlog not drained by t={deadline:g}s: {r['id']} from {r.get('source')} delivered at t={min(d['t'] for d in late):.3f}s", r, deadline)
    down: dict[str, float] = {}
    for r in sorted(ix.by_event.get("connect", []) + ix.by_event.get("disconnect", []), key=lambda r: r["t"]):
        if r["event"] == "disconnect":
            down[r["client"]] = r["t"]
        else:
            down.pop(r["client"], None)
    stuck = sorted((c, t) for c, t in down.items() if end - t > ix.cfg.convergence_s)
    if stuck:
        c, t = stuck[0]
        return CheckResult("liveness", False, f"{c} disconnected at t={t:.3f}s and never came back ({len(stuck)} clients stuck)", {"client": c}, t)
    # The controller must be closing the loop again: a room below its band heating, above it not.
    # (Rooms warm slowly; judging the controller's action instead of the temperature keeps the
    # bound independent of the physics' time constant.)
    for r in ix.by_event.get("room_temperature", []):
        wrong = (r["temperature"] < r["low"] and not r["heater"]) or (r["temperature"] > r["high"] and r["heater"])
        if r["t"] >= deadline and wrong:
            return CheckResult(
                "liveness", False,
                f"room {r['room']} at {r['temperature']:.2f} (band {r['low']:g}..{r['high']:g}) with its heater {'on' if r['heater'] else 'off'} "
                f"at t={r['t']:.3f}s, after the convergence deadline {deadline:g}s: the controller is not closing the loop",
                r, r["t"],
            )
    return CheckResult("liveness", True, f"converged within {ix.cfg.convergence_s:g}s of the last fault (t={facts.quiet_after:g}s)")

