"""Resubscribe: after every reconnect, deliveries resume for every subscriber.

Reads ``connect`` / ``disconnect`` (a client's connection windows), ``deliver`` (what each
client received), ``publish`` (what the broker took) and ``fault`` records. A broker that
forgets sessions (``[broker] durable = false``) knows no subscription after its restart: the
client must subscribe again. Promise: a client that received topic T before a reconnect, and
stays connected while at least 3 messages on T are published (from 5 s after the reconnect
until the window ends: its next disconnect, the next fault, or the end of the run less the
grace), receives something after the reconnect.
"""

from __future__ import annotations

from collections import defaultdict

from sim.checks._index import Index
from sim.checks._model import CheckResult, RunFacts

_SETTLE = 5.0
_ENOUGH = 3


def check_resubscribe(ix: Index, facts: RunFacts) -> CheckResult:
    end = (facts.end if facts.end is not None else facts.duration) - ix.cfg.grace_s
    faults = sorted(r["t"] for r in ix.by_event.get("fault", []))
    delivered: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in ix.by_event.get("deliver", []):
        delivered[r.get("client")].append((r["t"], r.get("topic", "")))
    published: dict[str, list[float]] = defaultdict(list)
    for r in ix.by_event.get("publish", []):
        published[r.get("topic", "")].append(r["t"])
    links = sorted(ix.by_event.get("connect", []) + ix.by_event.get("disconnect", []), key=lambda r: r["t"])
    judged = 0
    for client, got in delivered.items():
        mine = [r for r in links if r.get("client") == client]
        for i, r in enumerate(mine):
            if r["event"] != "connect" or i == 0 or mine[i - 1]["event"] != "disconnect":
                continue  # only reconnects
            start = r["t"]
            until = min([end] + [x["t"] for x in mine[i + 1:] if x["event"] == "disconnect"][:1] + [t for t in faults if t > start][:1])
            topics = {topic for t, topic in got if t < start}
            due = sorted(t for topic in topics for t in published.get(topic, []) if start + _SETTLE <= t <= until)
            if len(due) < _ENOUGH:
                continue
            judged += 1
            if not any(start < t <= until + _SETTLE for t, _ in got):
                return CheckResult(
                    "resubscribe", False,
                    f"{client} reconnected at t={start:.3f}s and received nothing until t={until:.3f}s, though {len(due)} messages "
                    f"on topics it had received were published meanwhile (first at t={due[0]:.3f}s): its subscriptions did not come back",
                    r, start,
                )
    if not judged:
        return CheckResult.skip("resubscribe", "not judged: no subscriber reconnected with traffic on its topics after")
    return CheckResult("resubscribe", True, f"deliveries resumed after all {judged} judged reconnects")
