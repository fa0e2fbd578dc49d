"""Restore: a restarted device comes back in the state it last acknowledged.

Reads ``device_state`` (a state machine moved; the device persists the new state before it
reports the move and answers the command) and ``device_state_restored`` (a starting device
took its stored state). Promise: every restore after the first start gives the state of the
device's last move, however the device went down (a hard crash runs no cleanup code, so a
device that persists only on the way out fails here).
"""

from __future__ import annotations

from sim.checks._index import Index
from sim.checks._model import CheckResult, RunFacts


def check_restore(ix: Index, facts: RunFacts) -> CheckResult:
    last: dict[tuple[str, str], dict] = {}
    judged = 0
    events = sorted(ix.by_event.get("device_state", []) + ix.by_event.get("device_state_restored", []), key=lambda r: r["t"])
    for r in events:
        key = (r["device"], r["machine"])
        if r["event"] == "device_state":
            last[key] = r
            continue
        moved = last.get(key)
        if moved is None:
            continue  # the first start, or a device that never moved: nothing was promised
        judged += 1
        if r["state"] != moved["new"]:
            return CheckResult(
                "restore", False,
                f"{r['device']} ({r.get('client')}) restarted at t={r['t']:.3f}s in state {r['machine']}={r['state']!r}, "
                f"but its last acknowledged move (t={moved['t']:.3f}s, {moved['trigger']}) was to {moved['new']!r}"
                + ("" if r.get("stored") else "; nothing was stored"),
                r, r["t"],
            )
        last[key] = {**moved, "new": r["state"]}
    if not judged:
        return CheckResult.skip("restore", "not judged: no device restarted after a state change")
    return CheckResult("restore", True, f"{judged} restarts came back in their last acknowledged state")
