"""One pass over the history, shared by every check."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from sim.checks._model import CheckConfig, Record, topic_matches

class Index:
    """One pass over the history, shared by every check."""

    def __init__(self, history: Iterable[Record], cfg: CheckConfig) -> None:
        self.cfg = cfg
        self.published: dict[str, Record] = {}
        self.deliveries: dict[tuple[str, str], list[Record]] = defaultdict(list)
        self.by_event: dict[str, list[Record]] = defaultdict(list)
        receivers = set(cfg.receivers)
        for r in history:
            kind = r.get("event")
            self.by_event[kind].append(r)
            if kind == "publish" and r.get("id") and topic_matches(cfg.topics, r.get("topic", "")):
                self.published.setdefault(r["id"], r)
            elif kind == "deliver" and r.get("client") in receivers and r.get("id"):
                self.deliveries[(r["client"], r["id"])].append(r)

    def delivered_to_all(self, msg_id: str) -> bool:
        return all((rcv, msg_id) in self.deliveries for rcv in self.cfg.receivers)

    def latencies_ms(self) -> list[float]:
        out = []
        for (_, msg_id), recs in self.deliveries.items():
            pub = self.published.get(msg_id)
            if pub is not None:
                out.append((recs[0]["t"] - pub.get("queued", pub["t"])) * 1000.0)
        return out

