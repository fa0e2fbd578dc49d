"""Checks over the broker's wire record (``mqtt`` records, system/broker/_tap.py): what MQTT
3.1.1 promises any system, whoever wrote the clients. Nothing in the services is instrumented.

A QoS 1/2 message counts once the broker acknowledged it (PUBACK/PUBREC out). It is owed to
every client whose session held a matching subscription at that moment (granted QoS >= 1):
a connected client, or one away with a persistent session. It is delivered when a PUBLISH with
its topic and payload went out to that client and the client acknowledged it. A clean
session's debt ends with its connection; a broker crash without durable state ends every debt.
A persistent session the broker forgets (no session present on a CleanSession=0 reconnect) is
a ``sessions`` failure, and what it held counts as lost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sim.checks._model import (
    CheckConfig,
    CheckResult,
    Record,
    RunFacts,
    quantile,
    topic_matches,
)


@dataclass
class Message:
    t: float
    publisher: str
    topic: str
    qos: int
    hash: str
    pid: int
    epoch: int  # the publisher's connection number
    owed: dict[str, int] = field(default_factory=dict)  # subscriber -> qos owed
    delivered: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # subscriber -> [(t, its epoch)]
    excused: set[str] = field(default_factory=set)

    def label(self) -> str:
        return f"{self.topic!r} from {self.publisher} (pid {self.pid}, payload {self.hash}) at t={self.t:.3f}s"


@dataclass
class Gone:
    t: float
    client: str
    graceful: bool
    will: Record | None
    subscribers: list[str]  # connected subscribers of the will topic then


class Wire:
    """One pass over the ``mqtt`` records."""

    def __init__(self, history: Iterable[Record], durable: bool = True) -> None:
        self.messages: list[Message] = []
        self.gones: list[Gone] = []
        self.lost_sessions: list[tuple[float, str, dict[str, int]]] = []  # (t, client, subscriptions it had)
        self.subscribes: dict[str, list[tuple[float, str]]] = defaultdict(list)  # client -> [(t, filter)]
        self.will_out: list[tuple[float, str, str, str]] = []  # (t, client, topic, hash)
        self.any = False
        self.connects: list[str] = []
        self.connect_times: list[tuple[float, str]] = []
        subs: dict[str, dict[str, int]] = defaultdict(dict)
        had: dict[str, dict[str, int]] = {}  # what a client's last session held when it ended
        persistent: dict[str, bool] = {}  # the broker holds a CleanSession=0 session for the client
        self.session_faults: list[tuple[float, str, str]] = []
        clean: dict[str, bool] = {}
        connected: set[str] = set()
        will: dict[str, Record] = {}
        epoch: dict[str, int] = defaultdict(int)
        pending_in: dict[tuple[str, int], Record] = {}  # (publisher, pid) -> PUBLISH in, until acked
        accepted: dict[tuple[str, int, str], Message] = {}  # (publisher, pid, hash) -> last accepted, for DUP re-sends
        inflight_out: dict[tuple[str, int], tuple[float, str, str, int]] = {}  # (subscriber, pid) -> (t, topic, hash, epoch)
        subscribe_req: dict[tuple[str, int], list[str]] = {}
        open_debts: dict[str, list[Message]] = defaultdict(list)  # subscriber -> messages owed, not yet delivered
        for r in history:
            ev = r.get("event")
            if ev == "crash" and r.get("host") == "broker":
                for c in list(connected):
                    had[c] = dict(subs.get(c, {}))
                    self._end(c, r["t"], subs, clean, open_debts, lose=not durable or clean.get(c, True))
                connected.clear()
                if not durable:
                    subs.clear()
                    persistent.clear()
                    for c, msgs in open_debts.items():
                        for m in msgs:
                            m.excused.add(c)
                    open_debts.clear()
                continue
            if ev != "mqtt":
                continue
            self.any = True
            kind, c, t = r.get("type"), r.get("client") or "?", r["t"]
            if kind == "connect":
                self.connects.append(c)
                self.connect_times.append((t, c))
                epoch[c] += 1
                connected.add(c)
                clean[c] = is_clean = r.get("clean", True)
                present = bool(r.get("session_present"))
                if is_clean and present:
                    self.session_faults.append((t, c, "connected with CleanSession=1 but the broker answered session present [MQTT-3.2.2-1]"))
                if not present:
                    before = subs.get(c) or had.get(c)
                    if before:
                        self.lost_sessions.append((t, c, dict(before)))
                    if not is_clean and persistent.get(c):
                        # The broker lost a session it had to keep: what it owed is lost, not excused.
                        self.session_faults.append((t, c, "reconnected with CleanSession=0 but the broker answered no session present: its subscriptions and queued messages were lost [MQTT-3.1.2-4]"))
                    else:
                        for m in open_debts.pop(c, []):
                            m.excused.add(c)
                    subs[c] = {}
                persistent[c] = not is_clean
                will[c] = r if r.get("will_topic") else {}
            elif kind == "gone":
                w = will.get(c) or None
                if w and not r.get("graceful"):
                    watchers = [s for s in connected if s != c and any(topic_matches(f, w["will_topic"]) for f in subs.get(s, {}))]
                else:
                    watchers = []
                self.gones.append(Gone(t, c, bool(r.get("graceful")), w, sorted(watchers)))
                connected.discard(c)
                had[c] = dict(subs.get(c, {}))
                if clean.get(c, True):
                    persistent[c] = False
                self._end(c, t, subs, clean, open_debts, lose=clean.get(c, True))
            elif kind == "SUBSCRIBE":
                subscribe_req[(c, r.get("pid"))] = [f for f, _ in r.get("filters", [])]
                for f, _ in r.get("filters", []):
                    self.subscribes[c].append((t, f))
            elif kind == "SUBACK":
                filters = subscribe_req.pop((c, r.get("pid")), [])
                for f, code in zip(filters, r.get("codes", [])):
                    if code in (0, 1, 2):
                        subs[c][f] = code
            elif kind == "UNSUBSCRIBE":
                for f in r.get("filters", []):
                    subs[c].pop(f, None)
            elif kind == "PUBLISH" and r.get("dir") == "in":
                if r.get("qos", 0) >= 1:
                    pending_in[(c, r.get("pid"))] = r
            elif kind in ("PUBACK", "PUBREC") and r.get("dir") == "out":
                p = pending_in.pop((c, r.get("pid")), None)
                if p is None:
                    continue
                key = (c, p["pid"], p["hash"])
                if p.get("dup") and key in accepted:
                    continue  # a re-send of a message the broker already took
                m = Message(p["t"], c, p["topic"], p["qos"], p["hash"], p["pid"], epoch[c])
                for s, filters in subs.items():
                    granted = max((q for f, q in filters.items() if topic_matches(f, m.topic)), default=-1)
                    if min(granted, m.qos) >= 1:
                        m.owed[s] = min(granted, m.qos)
                        open_debts[s].append(m)
                accepted[key] = m
                self.messages.append(m)
            elif kind == "PUBLISH" and r.get("dir") == "out":
                if r.get("qos", 0) >= 1:
                    inflight_out[(c, r.get("pid"))] = (t, r["topic"], r["hash"], epoch[c])
                self.will_out.append((t, c, r["topic"], r["hash"]))
            elif kind in ("PUBACK", "PUBREC") and r.get("dir") == "in":
                sent = inflight_out.pop((c, r.get("pid")), None)
                if sent is None:
                    continue
                _, topic, h, ep = sent
                st = t  # delivered: the subscriber has it
                debts = open_debts.get(c, [])
                for i, m in enumerate(debts):
                    if m.topic == topic and m.hash == h and st >= m.t:
                        m.delivered.setdefault(c, []).append((st, ep))
                        del debts[i]
                        break
                else:  # a copy of something already delivered: a duplicate
                    for m in reversed(self.messages):
                        if c in m.delivered and m.topic == topic and m.hash == h:
                            m.delivered[c].append((st, ep))
                            break

    @staticmethod
    def _end(c: str, t: float, subs: dict[str, dict[str, int]], clean: dict[str, bool], open_debts: dict[str, list[Message]], *, lose: bool) -> None:
        if lose:
            subs[c] = {}
            for m in open_debts.pop(c, []):
                m.excused.add(c)


def _judged(w: Wire, facts: RunFacts, cfg: CheckConfig) -> list[Message]:
    end = (facts.end if facts.end is not None else facts.duration) - cfg.grace_s
    return [m for m in w.messages if m.t <= end]


def check_delivery(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    judged = _judged(w, facts, cfg)
    owed = [(m, s) for m in judged for s in m.owed if s not in m.excused]
    lost = [(m, s) for m, s in owed if s not in m.delivered]
    if not lost:
        return CheckResult("wire_delivery", True, f"all {len(owed)} QoS 1/2 deliveries owed to subscribers with a matching subscription arrived and were acknowledged")
    m, s = lost[0]
    return CheckResult("wire_delivery", False, f"{len(lost)} of {len(owed)} QoS 1/2 deliveries lost; first: {m.label()} never reached {s}", {"topic": m.topic, "publisher": m.publisher, "subscriber": s, "hash": m.hash, "t": m.t}, m.t)


def check_duplicates(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    q1 = q2 = 0
    first: tuple[Message, str, float] | None = None
    for m in w.messages:
        for s, copies in m.delivered.items():
            extra = len(copies) - 1
            if extra > 0:
                if m.owed.get(s, m.qos) >= 2:
                    q2 += extra
                    first = first or (m, s, copies[1][0])
                else:
                    q1 += extra
    limit = cfg.max_qos1_duplicates
    ok = q2 == 0 and (limit is None or q1 <= limit)
    detail = f"{q1} QoS 1 duplicate deliveries ({'allowed' if limit is None else f'allowed {limit}'}), {q2} QoS 2 duplicates (allowed 0)"
    if q2 and first:
        m, s, at = first
        return CheckResult("wire_duplicates", False, f"{detail}; first QoS 2 duplicate: {m.label()} to {s} again at t={at:.3f}s", None, at)
    return CheckResult("wire_duplicates", ok, detail)


def check_order(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    """[MQTT-4.6.0] per publisher, subscriber and topic, within one connection of each, messages
    of one QoS arrive in the order they were published."""
    last: dict[tuple[str, int, str, int, str, int], tuple[float, Message]] = {}
    for m in w.messages:  # in acceptance order
        for s, copies in m.delivered.items():
            at, ep = copies[0]
            key = (m.publisher, m.epoch, s, ep, m.topic, m.qos)
            prev = last.get(key)
            if prev is not None and at < prev[0] and cfg.order:
                p = prev[1]
                return CheckResult("wire_order", False, f"{s} got {m.label()} at t={at:.3f}s before the earlier {p.label()} (at t={prev[0]:.3f}s)", None, at)
            last[key] = (at, m)
    return CheckResult("wire_order", True, "per publisher, subscriber and topic, QoS 1/2 messages arrived in publish order")


def latencies_ms(w: Wire) -> list[float]:
    return [(copies[0][0] - m.t) * 1000.0 for m in w.messages for copies in m.delivered.values()]


def check_latency(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    lat = latencies_ms(w)
    if not lat:
        return CheckResult.skip("wire_latency", "not measured: no QoS 1/2 deliveries")
    # From the broker taking the message to the subscriber acknowledging it.
    parts, ok = [], True
    for q, limit in ((0.5, cfg.latency_p50_ms), (0.95, cfg.latency_p95_ms), (0.99, cfg.latency_p99_ms)):
        v = quantile(lat, q)
        bad = limit is not None and v > limit
        ok &= not bad
        parts.append(f"p{int(q * 100)} {v:.1f} ms" + (f" (limit {limit:g})" if limit is not None else ""))
    return CheckResult("wire_latency", ok, "broker receipt to subscriber's acknowledgement: " + ", ".join(parts))


def check_resubscribe(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    """A client that comes back without its session (clean, or the broker lost it) subscribes
    again to what it had: otherwise it silently stops receiving."""
    end = facts.end if facts.end is not None else facts.duration
    for t, c, had in w.lost_sessions:
        if t + cfg.resubscribe_s > end:
            continue
        again = {f for at, f in w.subscribes.get(c, []) if t <= at <= t + cfg.resubscribe_s}
        missing = sorted(set(had) - again)
        if missing:
            return CheckResult("wire_resubscribe", False, f"{c} reconnected at t={t:.3f}s without its session and did not subscribe to {', '.join(map(repr, missing))} again within {cfg.resubscribe_s:g}s (it had before)", {"client": c, "missing": missing}, t)
    return CheckResult("wire_resubscribe", True, f"{len(w.lost_sessions)} reconnects without a session; each subscribed again to all it had")


def check_wills(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    """[MQTT-3.1.2-8] an ungraceful end publishes the will to the subscribers of its topic."""
    end = facts.end if facts.end is not None else facts.duration
    sent = 0
    for g in w.gones:
        if not g.will or g.graceful or g.t + cfg.will_s > end:
            continue
        topic, h = g.will["will_topic"], g.will["will_hash"]
        got = {c for at, c, tp, hh in w.will_out if g.t <= at <= g.t + cfg.will_s and tp == topic and hh == h}
        also_gone = {x.client for x in w.gones if g.t <= x.t <= g.t + cfg.will_s}  # e.g. the broker's port went down for all
        missing = sorted(set(g.subscribers) - got - also_gone)
        if missing:
            return CheckResult("wire_wills", False, f"{g.client} went away without DISCONNECT at t={g.t:.3f}s; its will on {topic!r} did not reach {', '.join(missing)} within {cfg.will_s:g}s", None, g.t)
        sent += 1
    return CheckResult("wire_wills", True, f"{sent} wills published after ungraceful ends reached their subscribers")


def check_sessions(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    """The broker keeps a CleanSession=0 session across disconnects (and, when durable, its own
    crashes), and says so in CONNACK; a clean session is never resumed."""
    if w.session_faults:
        t, c, what = w.session_faults[0]
        more = f" ({len(w.session_faults) - 1} more)" if len(w.session_faults) > 1 else ""
        return CheckResult("wire_sessions", False, f"{c} at t={t:.3f}s: {what}{more}", {"client": c}, t)
    return CheckResult("wire_sessions", True, "every reconnect found its session as CleanSession asked")


def check_comes_back(w: Wire, cfg: CheckConfig, facts: RunFacts) -> CheckResult:
    """A client whose connection broke (no DISCONNECT) is connected again within
    ``convergence_s`` of the faults healing: a service that stays away has stopped working."""
    end = facts.end if facts.end is not None else facts.duration
    last: dict[str, tuple[float, bool]] = {}  # client -> (t, still away)
    for g in w.gones:
        last[g.client] = (g.t, not g.graceful)
    for t, c in w.connect_times:
        if c in last and t >= last[c][0]:
            last[c] = (t, False)
    away = sorted((t, c) for c, (t, gone) in last.items() if gone and max(t, facts.quiet_after) + cfg.convergence_s <= end)
    if away:
        t, c = away[0]
        names = ", ".join(c for _, c in away)
        return CheckResult("wire_comes_back", False, f"{c} lost its connection at t={t:.3f}s and never connected again (faults healed by t={facts.quiet_after:g}s, waited {cfg.convergence_s:g}s); away: {names}", {"client": c}, t)
    return CheckResult("wire_comes_back", True, "every client whose connection broke connected again")


WIRE_CHECKS = {
    "wire_delivery": check_delivery,
    "wire_duplicates": check_duplicates,
    "wire_order": check_order,
    "wire_latency": check_latency,
    "wire_resubscribe": check_resubscribe,
    "wire_wills": check_wills,
    "wire_sessions": check_sessions,
    "wire_comes_back": check_comes_back,
}


def run_wire_checks(history: Iterable[Record], cfg: CheckConfig, facts: RunFacts) -> list[CheckResult]:
    w = Wire(history, durable=facts.extras.get("durable", True))
    return [fn(w, cfg, facts) for name, fn in WIRE_CHECKS.items() if name not in cfg.skip]


def as_events(history: Iterable[Record], durable: bool = True) -> list[Record]:
    """The wire record in the fleet's vocabulary (``publish``/``deliver``/``disconnect``/``reconnect``)
    so that plots drawn from it show a user's services too. QoS 1/2 messages only."""
    history = list(history)
    w = Wire(history, durable=durable)
    out: list[Record] = []
    for i, m in enumerate(w.messages):
        mid = f"wire-{i}"
        out.append({"t": m.t, "event": "publish", "id": mid, "topic": m.topic, "qos": m.qos, "source": m.publisher})
        for s, copies in m.delivered.items():
            out += [{"t": at, "event": "deliver", "id": mid, "topic": m.topic, "client": s} for at, _ in copies]
    seen: set[str] = set()
    for r in history:
        if r.get("event") == "mqtt" and r.get("type") == "gone":
            out.append({"t": r["t"], "event": "disconnect", "client": r.get("client")})
        elif r.get("event") == "mqtt" and r.get("type") == "connect":
            if r.get("client") in seen:
                out.append({"t": r["t"], "event": "reconnect", "client": r.get("client")})
            seen.add(r.get("client"))
    return sorted(out, key=lambda r: r["t"])


def wire_metrics(history: Iterable[Record], cfg: CheckConfig, facts: RunFacts) -> dict[str, Any]:
    w = Wire(history, durable=facts.extras.get("durable", True))
    judged = _judged(w, facts, cfg)
    owed = [(m, s) for m in judged for s in m.owed if s not in m.excused]
    lat = latencies_ms(w)

    def q(x: float) -> float | None:
        return round(quantile(lat, x), 3) if lat else None

    return {
        "published": len(w.messages),
        "delivered": sum(len(m.delivered) for m in w.messages),
        "lost": sum(1 for m, s in owed if s not in m.delivered),
        "duplicated": sum(len(c) - 1 for m in w.messages for c in m.delivered.values()),
        "latency_ms": {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99)},
        "reconnects": len(w.connects) - len(set(w.connects)),
    }
