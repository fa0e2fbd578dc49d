"""One pass over the history, shared by every check."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from sim.checks._model import CheckConfig, Record, topic_matches

POLICY_DROPS = frozenset({"overflow", "superseded", "coalesced"})
"""Drop reasons that are an overflow policy keeping its promise, not a loss."""


class Index:
    """One pass over the history, shared by every check."""

    def __init__(self, history: Iterable[Record], cfg: CheckConfig) -> None:
        self.cfg = cfg
        self.published: dict[str, Record] = {}
        self.deliveries: dict[tuple[str, str], list[Record]] = defaultdict(list)
        self.by_event: dict[str, list[Record]] = defaultdict(list)
        self.handed: dict[str, Record] = {}  # every hand-over (app -> bus), by envelope id
        self.sent: dict[str, Record] = {}  # every publish, whatever its topic, by envelope id
        self.drops: dict[str, list[Record]] = defaultdict(list)  # by envelope id
        self.crashes: dict[str, list[float]] = defaultdict(list)  # host -> crash times
        self.dispatched: set[tuple[str, str]] = set()  # (client, envelope id) of every delivery
        receivers = set(cfg.receivers)
        for r in history:
            kind = r.get("event")
            self.by_event[kind].append(r)
            if kind == "publish" and r.get("id"):
                self.sent.setdefault(r["id"], r)
                if topic_matches(cfg.topics, r.get("topic", "")):
                    self.published.setdefault(r["id"], r)
            elif kind == "deliver" and r.get("id"):
                self.dispatched.add((r.get("client", ""), r["id"]))
                if r.get("client") in receivers:
                    self.deliveries[(r["client"], r["id"])].append(r)
            elif kind == "handover":
                self.handed.setdefault(r["id"], r)
            elif kind == "drop" and r.get("id"):
                self.drops[r["id"]].append(r)
            elif kind == "crash":
                self.crashes[r.get("host", "")].append(r["t"])

    def crashed_between(self, host: str, a: float, b: float) -> bool:
        return any(a <= t <= b for t in self.crashes.get(host, ()))

    def policy_drop(self, msg_id: str, receiver: str | None = None) -> Record | None:
        """The record of an overflow policy discarding ``msg_id`` on its way (at the sender, or
        at ``receiver``'s inbound queue), if there is one."""
        for d in self.drops.get(msg_id, ()):
            if d.get("reason") in POLICY_DROPS and (d.get("direction") == "out" or d.get("client") == receiver):
                return d
        return None

    def delivered_to_all(self, msg_id: str) -> bool:
        return all((rcv, msg_id) in self.deliveries for rcv in self.cfg.receivers)

    def latencies_ms(self) -> list[float]:
        out = []
        for (_, msg_id), recs in self.deliveries.items():
            pub = self.published.get(msg_id)
            if pub is not None:
                out.append((recs[0]["t"] - pub.get("queued", pub["t"])) * 1000.0)
        return out

