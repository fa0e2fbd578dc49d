"""Delivery: QoS 1 and QoS 0 loss, duplicates after dedup, per-publisher order, latency."""

from __future__ import annotations

from collections import defaultdict

from sim.checks._index import Index
from sim.checks._model import CheckResult, Record, RunFacts, quantile, topic_matches

def loss(ix: Index, facts: RunFacts, qos: int) -> tuple[list[Record], int]:
    end = (facts.end if facts.end is not None else facts.duration) - ix.cfg.grace_s
    judged = [r for r in ix.published.values() if r.get("qos") == qos and r["t"] <= end]
    # A message an inbound queue's overflow policy discarded (and said so) is not lost.
    lost = [
        r for r in judged
        if any((rcv, r["id"]) not in ix.deliveries and ix.policy_drop(r["id"], rcv) is None for rcv in ix.cfg.receivers)
    ]
    return sorted(lost, key=lambda r: r["t"]), len(judged)


def check_qos1_loss(ix: Index, facts: RunFacts) -> CheckResult:
    lost, judged = loss(ix, facts, 1)
    ok = len(lost) <= ix.cfg.max_qos1_lost
    if not lost:
        return CheckResult("qos1_loss", ok, f"0 of {judged} QoS 1 messages lost")
    first = lost[0]
    ids = ", ".join(r["id"] for r in lost[:10]) + (" ..." if len(lost) > 10 else "")
    return CheckResult(
        "qos1_loss", ok,
        f"{len(lost)} of {judged} QoS 1 messages lost (allowed {ix.cfg.max_qos1_lost}); first: {first['id']} "
        f"from {first.get('source')} seq {first.get('seq')} on {first.get('topic')} at t={first['t']:.3f}s; lost ids: {ids}",
        first, first["t"],
    )


def check_qos0_loss(ix: Index, facts: RunFacts) -> CheckResult:
    lost, judged = loss(ix, facts, 0)
    if not judged:
        return CheckResult.skip("qos0_loss", "not measured: no QoS 0 messages on the judged topics")
    ratio = len(lost) / judged if judged else 0.0
    ok = ratio <= ix.cfg.qos0_loss_budget
    first = lost[0] if lost else None
    return CheckResult(
        "qos0_loss", ok, f"{len(lost)} of {judged} QoS 0 messages lost ({ratio:.1%}, budget {ix.cfg.qos0_loss_budget:.1%})",
        first if not ok else None, first["t"] if first and not ok else None,
    )


def check_duplicates(ix: Index, facts: RunFacts) -> CheckResult:
    """After the bus's dedup a receiver gets each message once. A second delivery is excused
    only when the receiver restarted in between (its dedup memory went with the process);
    retained copies are state, sent again on every subscribe, and do not count. Every other
    repeat counts against ``max_duplicates`` (default 0), reported per receiver."""
    counted: list[Record] = []
    per: dict[str, int] = defaultdict(int)
    excused = 0
    for (rcv, _), recs in ix.deliveries.items():
        fresh = [r for r in recs if not r.get("retain")]
        for prev, r in zip(fresh, fresh[1:]):
            if ix.crashed_between(rcv, prev["t"], r["t"]):
                excused += 1
            else:
                counted.append(r)
                per[rcv] += 1
    ok = len(counted) <= ix.cfg.max_duplicates
    spared = f"; {excused} more across a restart of the receiver (its dedup memory is per process)" if excused else ""
    if not counted:
        return CheckResult("duplicates", ok, f"no message delivered twice to a receiver after dedup{spared}")
    d = min(counted, key=lambda r: r["t"])
    by = ", ".join(f"{k} {v}" for k, v in sorted(per.items()))
    return CheckResult(
        "duplicates", ok,
        f"{len(counted)} duplicate deliveries after dedup (allowed {ix.cfg.max_duplicates}; per receiver: {by}); "
        f"first: {d['id']} from {d.get('source')} to {d['client']} at t={d['t']:.3f}s{spared}",
        d, d["t"],
    )


def check_order(ix: Index, facts: RunFacts) -> CheckResult:
    """Per receiver, publisher and topic, QoS 1 sequence numbers never go back, except across a
    crash of the publisher (a restarted process starts a new sequence)."""
    crashes: dict[str, list[float]] = defaultdict(list)
    for c in ix.by_event.get("crash", []):
        crashes[c.get("host", "")].append(c["t"])

    def restarted_between(source: str, a: float, b: float) -> bool:
        return any(a <= t <= b for t in crashes.get(source, ()))

    last: dict[tuple[str, str, str], Record] = {}
    for r in ix.by_event["deliver"]:
        if r.get("client") not in ix.cfg.receivers or r.get("qos") != 1 or not topic_matches(ix.cfg.topics, r.get("topic", "")):
            continue
        key = (r["client"], r.get("source", ""), r.get("topic", ""))
        prev = last.get(key)
        if prev is not None and r.get("seq", 0) < prev.get("seq", 0) and r.get("id") != prev.get("id"):
            sent_prev = ix.published.get(prev.get("id", ""), prev)["t"]
            sent_now = ix.published.get(r.get("id", ""), r)["t"]
            if not ix.cfg.order or restarted_between(key[1], sent_prev, sent_now):
                last[key] = r
                continue
            return CheckResult(
                "order", False,
                f"{r['client']} got seq {r['seq']} from {key[1]} on {key[2]} at t={r['t']:.3f}s after seq {prev['seq']}",
                r, r["t"],
            )
        last[key] = r
    return CheckResult("order", True, f"per-publisher order kept on {len(last)} streams")


def check_latency(ix: Index, facts: RunFacts) -> CheckResult:
    lat = ix.latencies_ms()
    if not lat:
        return CheckResult.skip("latency", "not measured: no deliveries")
    qs = {name: quantile(lat, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    # A chaos run's wall clock on a shared machine adds scheduling delay the system did not cause:
    # its budgets get the run's timing slack on top (sim judges them exactly).
    slack_ms = float(facts.extras.get("timing_slack", 0.0)) * 1000.0
    limits = {"p50": ix.cfg.latency_p50_ms, "p95": ix.cfg.latency_p95_ms, "p99": ix.cfg.latency_p99_ms}
    limits = {k: None if v is None else v + slack_ms for k, v in limits.items()}
    over = [f"{k} {qs[k]:.1f} ms > {v:g} ms" for k, v in limits.items() if v is not None and qs[k] > v]
    text = ", ".join(f"{k} {v:.1f} ms" for k, v in qs.items())
    return CheckResult("latency", not over, text + (f"; over threshold: {'; '.join(over)}" if over else ""))

