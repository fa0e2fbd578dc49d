"""Overflow policies: each of block, drop, latest and coalesce keeps its own promise."""

from __future__ import annotations

from collections import defaultdict

from sim.checks._accounting import settled
from sim.checks._index import POLICY_DROPS, Index
from sim.checks._model import CheckResult, Record, RunFacts, end_of


def _went_on(ix: Index, d: Record, msg_id: str) -> bool:
    """``msg_id`` went on past the queue that dropped it: published by that client (outbound)
    or dispatched by it (inbound)."""
    if d.get("direction") == "out":
        pub = ix.sent.get(msg_id)
        return pub is not None and pub.get("client") == d.get("client")
    return (d.get("client", ""), msg_id) in ix.dispatched


def check_overflow(ix: Index, facts: RunFacts) -> CheckResult:
    """Reads ``handover`` and ``drop`` records (with their ``policy`` and ``band``). Promises:
    ``block`` never discards; a message dropped on record never goes out after all; ``drop``
    discards the message being handed over, not one already queued; ``latest`` evicts only an
    older message for a newer one; ``coalesce``'s merged message goes out (or is dropped on
    record); and per client and policy, what was handed over equals what went out plus what
    was dropped on record (plus, at the end of the run, what is still queued)."""
    policy_drops = sorted(
        (d for ds in ix.drops.values() for d in ds if d.get("reason") in POLICY_DROPS and d.get("policy")),
        key=lambda d: d["t"],
    )
    if not ix.handed and not policy_drops:
        return CheckResult.skip("overflow", "not measured: no hand-overs recorded (an older history?)")
    broken: list[tuple[float, Record, str]] = []
    bad: dict[str, tuple[float, Record, str]] = {}
    for d in policy_drops:
        msg_id, policy, where = d["id"], d["policy"], f"{d['client']}'s {d.get('direction')} {d.get('band')} queue"
        if policy == "block":
            broken.append((d["t"], d, f"block dropped {msg_id} on {d['topic']} ({d['reason']}) in {where}"))
            continue
        if d.get("replaced_by") != msg_id and _went_on(ix, d, msg_id):
            broken.append((d["t"], d, f"{policy} dropped {msg_id} on {d['topic']} in {where} on record, yet it went on"))
            continue
        if d.get("direction") != "out":
            continue
        handed = ix.handed.get(msg_id)
        if policy == "drop" and handed is not None and handed["t"] < d["t"]:
            broken.append((d["t"], d, f"drop discarded {msg_id}, queued since t={handed['t']:.3f}s, instead of the message being handed over, in {where}"))
        elif policy == "latest" and d["reason"] == "superseded":
            newer = ix.handed.get(d.get("replaced_by") or "")
            if newer is None or (handed is not None and newer["t"] < handed["t"]):
                broken.append((d["t"], d, f"latest evicted {msg_id} on {d['topic']} for {d.get('replaced_by')}, which is not newer, in {where}"))
        elif policy == "coalesce" and d["reason"] == "coalesced" and settled(ix, facts, d["t"]):
            merged = d.get("replaced_by") or ""
            if not (_went_on(ix, d, merged) or ix.drops.get(merged)):
                broken.append((d["t"], d, f"coalesce merged {msg_id} on {d['topic']} into {merged}, which never went out, in {where}"))
    # The count per (client, policy) of the outbound queue: handed over = out + dropped + queued.
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # handed, out, dropped, unaccounted
    for h in ix.handed.values():
        row = tally[(h["client"], h.get("policy", "?"))]
        row[0] += 1
        if h["id"] in ix.sent:
            row[1] += 1
        elif any(x.get("direction") == "out" for x in ix.drops.get(h["id"], ())):
            row[2] += 1
        elif settled(ix, facts, h["t"]) and not ix.crashed_between(h["client"], h["t"], end_of(facts)):
            row[3] += 1
            bad.setdefault(f"{h['client']}/{h.get('policy')}", (h["t"], h, ""))
    for key, (t, h, _) in bad.items():
        client, policy = key.split("/", 1)
        n, out, dropped, missing = tally[(client, policy)]
        broken.append((t, h, f"{client}'s {policy} counts do not add up: {n} handed over, {out} went out, {dropped} dropped on record, "
                             f"{missing} unaccounted (first: {h['id']} on {h['topic']} at t={h['t']:.3f}s)"))
    per_policy: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (_, policy), (n, _, dropped, _) in tally.items():
        per_policy[policy][0] += n
        per_policy[policy][1] += dropped
    for d in policy_drops:
        if d.get("direction") == "in":
            per_policy[d["policy"]][1] += 1
    summary = "; ".join(f"{p}: {n} handed over, {dropped} dropped on record" for p, (n, dropped) in sorted(per_policy.items()))
    if not broken:
        return CheckResult("overflow", True, summary or "no queue overflowed")
    t, rec, why = min(broken, key=lambda x: x[0])
    return CheckResult("overflow", False, f"{len(broken)} broken overflow promises; first at t={t:.3f}s: {why}; {summary}", rec, t)
