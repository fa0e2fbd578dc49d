"""Checks: pure functions from a history (list of records) to verdicts. No clocks, no sockets.

Each check returns a `CheckResult`; a failed one names the first offending message or
moment so that, with the seed and the replay command the report adds, a person can go
straight to it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

Record = dict[str, Any]


class CheckConfig(BaseModel):
    """Thresholds, as a scenario file's ``[checks]`` table."""

    model_config = ConfigDict(extra="forbid")

    receivers: list[str] = Field(default_factory=lambda: ["recorder"], description="clients whose deliveries count")
    topics: str = Field("#", description="MQTT filter of the messages whose loss counts")
    max_qos1_lost: int = Field(0, ge=0)
    qos0_loss_budget: float = Field(0.05, ge=0, le=1, description="fraction of QoS 0 messages allowed lost")
    max_duplicates: int = Field(0, ge=0)
    order: bool = True
    latency_p50_ms: float | None = Field(None, gt=0)
    latency_p95_ms: float | None = Field(None, gt=0)
    latency_p99_ms: float | None = Field(None, gt=0)
    min_command_success: float = Field(0.9, ge=0, le=1, description="fraction of command round trips that must succeed")
    max_command_latency_ms: float | None = Field(None, gt=0)
    convergence_s: float = Field(60.0, gt=0, description="after the last fault, the fleet must settle within this")
    grace_s: float = Field(5.0, ge=0, description="messages published this close to the end are not judged")
    stale_availability_s: float = Field(30.0, gt=0)
    max_memory_growth_mb: float | None = Field(None, gt=0)
    skip: list[str] = Field(default_factory=list, description="checks not to run")


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    first: Record | None = None  # the first offending record, if any
    at: float | None = None  # the first offending moment

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "detail": self.detail}
        if self.first is not None:
            out["first"] = self.first
        if self.at is not None:
            out["at"] = self.at
        return out


@dataclass
class RunFacts:
    """What the checks need besides the history."""

    duration: float
    quiet_after: float = 0.0  # when the last fault was undone
    end: float | None = None  # when the history ends (default: duration)
    extras: dict[str, Any] = field(default_factory=dict)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT 3.1.1 topic filter matching (``+`` one level, ``#`` the rest; ``$`` topics apart)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation: a p99 is a latency that happened)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class _Index:
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


def _loss(ix: _Index, facts: RunFacts, qos: int) -> tuple[list[Record], int]:
    end = (facts.end if facts.end is not None else facts.duration) - ix.cfg.grace_s
    judged = [r for r in ix.published.values() if r.get("qos") == qos and r["t"] <= end]
    lost = [r for r in judged if not ix.delivered_to_all(r["id"])]
    return sorted(lost, key=lambda r: r["t"]), len(judged)


def check_qos1_loss(ix: _Index, facts: RunFacts) -> CheckResult:
    lost, judged = _loss(ix, facts, 1)
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


def check_qos0_loss(ix: _Index, facts: RunFacts) -> CheckResult:
    lost, judged = _loss(ix, facts, 0)
    ratio = len(lost) / judged if judged else 0.0
    ok = ratio <= ix.cfg.qos0_loss_budget
    first = lost[0] if lost else None
    return CheckResult(
        "qos0_loss", ok, f"{len(lost)} of {judged} QoS 0 messages lost ({ratio:.1%}, budget {ix.cfg.qos0_loss_budget:.1%})",
        first if not ok else None, first["t"] if first and not ok else None,
    )


def check_duplicates(ix: _Index, facts: RunFacts) -> CheckResult:
    dups = sorted((recs[1] for recs in ix.deliveries.values() if len(recs) > 1), key=lambda r: r["t"])
    count = sum(len(recs) - 1 for recs in ix.deliveries.values())
    ok = count <= ix.cfg.max_duplicates
    if not dups:
        return CheckResult("duplicates", ok, "no message delivered twice to a receiver after dedup")
    d = dups[0]
    return CheckResult("duplicates", ok, f"{count} duplicate deliveries after dedup (allowed {ix.cfg.max_duplicates}); first: {d['id']} to {d['client']} at t={d['t']:.3f}s", d, d["t"])


def check_order(ix: _Index, facts: RunFacts) -> CheckResult:
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


def check_latency(ix: _Index, facts: RunFacts) -> CheckResult:
    lat = ix.latencies_ms()
    if not lat:
        return CheckResult("latency", True, "no deliveries to measure")
    qs = {name: quantile(lat, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    limits = {"p50": ix.cfg.latency_p50_ms, "p95": ix.cfg.latency_p95_ms, "p99": ix.cfg.latency_p99_ms}
    over = [f"{k} {qs[k]:.1f} ms > {v:g} ms" for k, v in limits.items() if v is not None and qs[k] > v]
    text = ", ".join(f"{k} {v:.1f} ms" for k, v in qs.items())
    return CheckResult("latency", not over, text + (f"; over threshold: {'; '.join(over)}" if over else ""))


def _disturbed(ix: _Index, facts: RunFacts) -> list[tuple[float, float]]:
    """When the system may fail requests: each fault's window (from the history's ``fault`` and
    ``heal`` records; to the end for a fault never healed), widened by the time the fleet is
    given to settle after it (``convergence_s``)."""
    end = facts.end if facts.end is not None else facts.duration
    started: dict[str, list[float]] = defaultdict(list)
    windows = []
    for r in sorted(ix.by_event.get("fault", []) + ix.by_event.get("heal", []), key=lambda r: r["t"]):
        label = r.get("label", "")
        if r["event"] == "fault":
            started[label].append(r["t"])
        elif started[label]:
            windows.append((started[label].pop(0), r["t"] + ix.cfg.convergence_s))
    windows += [(t, end) for ts in started.values() for t in ts]
    return sorted(windows)


def check_commands(ix: _Index, facts: RunFacts) -> CheckResult:
    """Command round trips started and finished while no fault was acting succeed (a request
    that meets a crash or a cut may time out: that is the fault, not a bug)."""
    disturbed = _disturbed(ix, facts)

    def calm(r: Record) -> bool:
        sent = r["t"] - r.get("latency", 0.0)
        return not any(sent < until and r["t"] > start for start, until in disturbed)

    every = ix.by_event.get("command_done", [])
    trips = [r for r in every if calm(r)]
    spared = f"; {len(every) - len(trips)} more met a fault and are not judged" if len(trips) < len(every) else ""
    if not trips:
        return CheckResult("commands", True, f"no command round trips to judge{spared}")
    ok_trips = [r for r in trips if r.get("outcome") == "ok"]
    ratio = len(ok_trips) / len(trips)
    lat = [r.get("latency", 0.0) * 1000.0 for r in ok_trips]
    p99 = quantile(lat, 0.99) if lat else float("nan")
    failed = [r for r in trips if r.get("outcome") != "ok"]
    ok = ratio >= ix.cfg.min_command_success and (ix.cfg.max_command_latency_ms is None or not lat or p99 <= ix.cfg.max_command_latency_ms)
    first = failed[0] if failed else None
    return CheckResult(
        "commands", ok, f"{len(ok_trips)} of {len(trips)} command round trips succeeded ({ratio:.1%}, need {ix.cfg.min_command_success:.0%}); p99 {p99:.1f} ms{spared}",
        first if not ok else None, first["t"] if first and not ok else None,
    )


def check_availability(ix: _Index, facts: RunFacts) -> CheckResult:
    """A client shown online must be reachable: whenever a client is down (its own view, or its
    host crashed) for longer than ``stale_availability_s``, what a watcher sees for it by then
    must no longer be "online" (the broker publishes its will)."""
    shown: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in ix.by_event.get("availability", []):
        shown[r["subject"]].append((r["t"], r["status"]))
    if not shown:
        return CheckResult("availability", True, "no availability observed")
    ups: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for r in sorted(ix.by_event.get("connect", []) + ix.by_event.get("disconnect", []) + ix.by_event.get("crash", []), key=lambda r: r["t"]):
        who = r.get("client") or r.get("host")
        ups[who].append((r["t"], r["event"] == "connect"))
    end = facts.end if facts.end is not None else facts.duration
    stale = ix.cfg.stale_availability_s

    def status_at(subject: str, t: float) -> str | None:
        seen = [st for at, st in shown[subject] if at <= t]
        return seen[-1] if seen else None

    for subject in sorted(shown):
        timeline = ups.get(subject, [])
        for i, (t_down, up) in enumerate(timeline):
            if up:
                continue
            back = next((t for t, u in timeline[i + 1 :] if u), end)
            judge = t_down + stale
            if judge < back and status_at(subject, judge) == "online":
                return CheckResult(
                    "availability", False,
                    f"stale availability: {subject} down since t={t_down:.3f}s but still shown online at t={judge:.3f}s "
                    f"({stale:g}s later; the broker never published its will)",
                    {"subject": subject, "down_since": t_down, "shown": "online", "judged_at": judge}, judge,
                )
    return CheckResult("availability", True, f"availability of {len(shown)} clients followed their connections")


def check_liveness(ix: _Index, facts: RunFacts) -> CheckResult:
    """Once faults stop, the fleet converges: backlog delivered, clients connected, rooms in band."""
    deadline = facts.quiet_after + ix.cfg.convergence_s
    end = facts.end if facts.end is not None else facts.duration
    if end < deadline:
        return CheckResult("liveness", True, f"not judged: the run ends at {end:g}s, before the convergence deadline {deadline:g}s")
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


def check_memory(ix: _Index, facts: RunFacts) -> CheckResult:
    samples = [r for r in ix.by_event.get("sample", []) if "rss_mb" in r]
    if len(samples) < 2:
        return CheckResult("memory", True, "not measured (no memory samples in this run)")
    settle = samples[len(samples) // 4]  # growth after warm-up, not from an empty process
    growth = samples[-1]["rss_mb"] - settle["rss_mb"]
    limit = ix.cfg.max_memory_growth_mb
    ok = limit is None or growth <= limit
    return CheckResult("memory", ok, f"RSS grew {growth:.1f} MB after warm-up" + (f" (limit {limit:g} MB)" if limit else ""), None if ok else samples[-1], None if ok else samples[-1]["t"])


CHECKS: dict[str, Callable[[_Index, RunFacts], CheckResult]] = {
    "qos1_loss": check_qos1_loss,
    "qos0_loss": check_qos0_loss,
    "duplicates": check_duplicates,
    "order": check_order,
    "latency": check_latency,
    "commands": check_commands,
    "availability": check_availability,
    "liveness": check_liveness,
    "memory": check_memory,
}


def run_checks(history: Iterable[Record], cfg: CheckConfig, facts: RunFacts) -> list[CheckResult]:
    ix = _Index(history, cfg)
    return [fn(ix, facts) for name, fn in CHECKS.items() if name not in cfg.skip]


def metrics(history: Iterable[Record], cfg: CheckConfig, facts: RunFacts) -> dict[str, Any]:
    """The report's ``metrics``: published, delivered, lost, duplicated, latency_ms, reconnects."""
    ix = _Index(history, cfg)
    lost1, _ = _loss(ix, facts, 1)
    lost0, _ = _loss(ix, facts, 0)
    lat = ix.latencies_ms()

    def q(x: float) -> float | None:
        v = quantile(lat, x)
        return None if math.isnan(v) else round(v, 3)

    return {
        "published": len(ix.published),
        "delivered": len(ix.deliveries),
        "lost": len(lost1) + len(lost0),
        "lost_qos1": len(lost1),
        "duplicated": sum(len(v) - 1 for v in ix.deliveries.values()),
        "latency_ms": {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99)},
        "reconnects": len(ix.by_event.get("reconnect", [])),
        "errors": len(ix.by_event.get("error", [])),
        "dropped": len(ix.by_event.get("drop", [])),
    }
