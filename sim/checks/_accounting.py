"""Accounting: every QoS 1 message the application handed to the bus ends somewhere on record."""

from __future__ import annotations

from collections import defaultdict

from sim.checks._index import POLICY_DROPS, Index
from sim.checks._model import CheckResult, Record, RunFacts, end_of, topic_matches


def settled(ix: Index, facts: RunFacts, t: float) -> bool:
    """A message handed over at ``t`` has had time to go out: the fleet was given
    ``convergence_s`` after both ``t`` and the last fault, and the run lasted that long."""
    return max(t, facts.quiet_after) + ix.cfg.convergence_s <= end_of(facts)


def check_accounting(ix: Index, facts: RunFacts) -> CheckResult:
    """Each QoS 1 message on the judged topics handed to the bus (``handover``) is delivered to
    every receiver, or discarded on record: by an overflow policy (a ``drop`` naming the
    policy and the queue), or with its client (``shutdown``/``error`` drops, a crash of the
    sender before it went out). A message the bus lost without a word fails, named with its
    time: never published yet overtaken on its topic by a later one, or still not published
    ``convergence_s`` after it was handed over and the faults ended (no budget: the bus
    never loses a message without saying so); or published and then missing at a receiver
    with no drop recorded there (beyond ``max_qos1_lost``, the budget qos1_loss uses)."""
    end = end_of(facts) - ix.cfg.grace_s
    judged = sorted(
        (h for h in ix.handed.values() if h.get("qos") == 1 and h["t"] <= end and topic_matches(ix.cfg.topics, h.get("topic", ""))),
        key=lambda h: h["t"],
    )
    if not judged:
        return CheckResult.skip("accounting", "not measured: no QoS 1 hand-overs on the judged topics (an older history, or no traffic)")
    # The newest hand-over per (client, topic) that went out: anything older on that topic
    # still unsent was overtaken (a topic's messages leave in order, or are dropped on record).
    last_out: dict[tuple[str, str], float] = defaultdict(lambda: float("-inf"))
    for h in ix.handed.values():
        if h["id"] in ix.sent:
            key = (h["client"], h["topic"])
            last_out[key] = max(last_out[key], h["t"])
    counts = {"delivered": 0, "policy": 0, "with_client": 0, "pending": 0}
    lost: list[tuple[float, Record, str]] = []
    for h in judged:
        msg_id, client = h["id"], h["client"]
        drops = ix.drops.get(msg_id, ())
        if any(d.get("reason") in POLICY_DROPS and d.get("direction") == "out" for d in drops):
            counts["policy"] += 1
            continue
        if any(d.get("direction") == "out" for d in drops):
            counts["with_client"] += 1  # shutdown / broker refusal: on record, with its client
            continue
        pub = ix.sent.get(msg_id)
        if pub is None:
            if ix.crashed_between(client, h["t"], end_of(facts)):
                counts["with_client"] += 1
            elif last_out[(client, h["topic"])] > h["t"]:
                lost.append((h["t"], h, f"never published by {client}, though a later message on its topic was, and no drop recorded"))
            elif settled(ix, facts, h["t"]):
                lost.append((h["t"], h, f"never published by {client} (still unsent at the end of the run), and no drop recorded"))
            else:
                counts["pending"] += 1
            continue
        missing = [
            rcv for rcv in ix.cfg.receivers
            if (rcv, msg_id) not in ix.deliveries and ix.policy_drop(msg_id, rcv) is None
            and not any(d.get("client") == rcv and d.get("reason") == "shutdown" for d in drops)
        ]
        if missing and pub["t"] <= end:
            lost.append((pub["t"], h, f"published at t={pub['t']:.3f}s but never delivered to {', '.join(missing)}, and no drop recorded there"))
        elif any(ix.policy_drop(msg_id, rcv) for rcv in ix.cfg.receivers):
            counts["policy"] += 1
        else:
            counts["delivered"] += 1
    summary = (
        f"{len(judged)} QoS 1 hand-overs: {counts['delivered']} delivered, {counts['policy']} dropped by an overflow policy, "
        f"{counts['with_client']} gone with their client (on record), {counts['pending']} still queued at the end"
    )
    # Lost after the broker acknowledged it is qos1_loss's finding too: the same budget holds.
    after_ack = [x for x in lost if x[2].startswith("published")]
    if len(after_ack) <= ix.cfg.max_qos1_lost:
        lost = [x for x in lost if not x[2].startswith("published")]
        if after_ack:
            summary += f"; {len(after_ack)} lost after the broker acknowledged them (allowed {ix.cfg.max_qos1_lost})"
    if not lost:
        return CheckResult("accounting", True, summary)
    at, h, why = min(lost, key=lambda x: x[0])
    return CheckResult(
        "accounting", False,
        f"{len(lost)} handed-over QoS 1 messages lost silently by the bus; first: {h['id']} on {h['topic']}, "
        f"handed over by {h['client']} at t={h['t']:.3f}s, {why}; {summary}",
        h, at,
    )
