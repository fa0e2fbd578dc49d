"""The control band: health and control messages are not held behind a data backlog."""

from __future__ import annotations

import bisect
from collections import defaultdict

from sim.checks._index import Index
from sim.checks._model import CheckResult, Record, RunFacts, quantile


def connected_spans(ix: Index) -> dict[str, list[tuple[float, float]]]:
    """Per client, the (from, to) spans its bus reported itself connected (to ``inf`` if it
    still was at the end). A host's crash ends its span."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    up: dict[str, float] = {}
    events = ix.by_event.get("connect", []) + ix.by_event.get("disconnect", []) + ix.by_event.get("crash", [])
    for r in sorted(events, key=lambda r: r["t"]):
        who = r.get("client") or r.get("host", "")
        if r["event"] == "connect":
            up.setdefault(who, r["t"])
        elif who in up:
            spans[who].append((up.pop(who), r["t"]))
    for who, t in up.items():
        spans[who].append((t, float("inf")))
    return spans


def within(spans: list[tuple[float, float]], a: float, b: float) -> bool:
    """[a, b] lies inside one span."""
    return any(s <= a and b <= e for s, e in spans)


def check_control(ix: Index, facts: RunFacts) -> CheckResult:
    """Reads ``handover`` (band) and ``publish`` records. Promises: a control-band message
    (health, availability, the user's control filters) handed over while its client was
    connected reaches the broker within ``control_p99_ms`` at the 99th percentile, however
    deep the data band's backlog (the control band preempts data). Messages whose wait spans
    a disconnect are not judged: no band beats an outage."""
    spans = connected_spans(ix)
    # Per client, the data backlog over time: +1 at a data hand-over, -1 when it leaves.
    steps: dict[str, list[tuple[float, int]]] = defaultdict(list)
    control: list[Record] = []
    for h in ix.handed.values():
        if h.get("band") == "control":
            control.append(h)
            continue
        steps[h["client"]].append((h["t"], 1))
        gone = ix.sent.get(h["id"])
        drop = next((d for d in ix.drops.get(h["id"], ()) if d.get("direction") == "out"), None)
        end = gone["t"] if gone is not None else (drop["t"] if drop is not None else None)
        if end is not None:
            steps[h["client"]].append((end, -1))
    depth: dict[str, tuple[list[float], list[int]]] = {}
    for client, st in steps.items():
        st.sort()
        times, levels, level = [], [], 0
        for t, d in st:
            level += d
            times.append(t)
            levels.append(level)
        depth[client] = (times, levels)

    def backlog(client: str, t: float) -> int:
        times, levels = depth.get(client, ([], []))
        i = bisect.bisect_left(times, t) - 1
        return levels[i] if i >= 0 else 0

    judged: list[tuple[float, float, Record]] = []  # (latency ms, backlog, record)
    for h in control:
        pub = ix.sent.get(h["id"])
        if pub is None or not within(spans.get(h["client"], []), h["t"], pub["t"]):
            continue
        judged.append(((pub["t"] - h["t"]) * 1000.0, backlog(h["client"], h["t"]), pub))
    if not judged:
        return CheckResult.skip("control", "not measured: no control-band message was sent while its client was connected")
    lat = [x[0] for x in judged]
    loaded = [x for x in judged if x[1] > 0]
    p99 = quantile(lat, 0.99)
    deepest = max(x[1] for x in judged)
    text = f"control band p99 {p99:.1f} ms over {len(judged)} messages ({len(loaded)} sent behind a data backlog, deepest {deepest})"
    limit = ix.cfg.control_p99_ms
    if limit is None or p99 <= limit:
        return CheckResult("control", True, text + (f"; limit {limit:g} ms" if limit else "; not judged: no limit set"))
    worst = next(x for x in sorted(judged, key=lambda x: x[2]["t"]) if x[0] > limit)
    lat_ms, depth_at, pub = worst
    return CheckResult(
        "control", False,
        f"{text}, over the {limit:g} ms limit; first over it: {pub['id']} on {pub['topic']} from {pub['client']}, "
        f"handed over at t={pub['t'] - lat_ms / 1000:.3f}s behind {depth_at} data messages, out {lat_ms:.1f} ms later",
        pub, pub["t"],
    )
