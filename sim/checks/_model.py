"""What every check shares: thresholds, verdicts, run facts and the MQTT helpers they need."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field

Record = dict[str, Any]


class CustomCheck(BaseModel):
    """``[[checks.custom]] entry = "pkg.checks:fn"``: a user's check over the history."""

    model_config = ConfigDict(extra="forbid")

    entry: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description='"package.module:function" taking a sim.checks.CheckInput')
    name: str | None = Field(None, description="the verdict's name when the function returns a bare bool (default: the function's name)")


class CheckConfig(BaseModel):
    """Thresholds, as a scenario file's ``[checks]`` table."""

    model_config = ConfigDict(extra="forbid")

    receivers: list[str] = Field(default_factory=lambda: ["recorder"], description="clients whose deliveries count")
    topics: str = Field("#", description="MQTT filter of the messages whose loss counts")
    max_qos1_lost: int = Field(0, ge=0)
    qos0_loss_budget: float = Field(0.05, ge=0, le=1, description="fraction of QoS 0 messages allowed lost")
    max_duplicates: int = Field(0, ge=0, description="deliveries of one message twice to a receiver whose dedup memory was not reset by a restart")
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
    control_p99_ms: float | None = Field(
        2000.0, gt=0, description="p99 of control-band messages' hand-over to broker, while connected (None: measured, not judged)"
    )
    skip: list[str] = Field(default_factory=list, description="checks not to run")
    wire: bool | None = Field(None, description="judge the broker's wire record (default: when the scenario has [[services]])")
    resubscribe_s: float = Field(10.0, gt=0, description="a client whose session was lost must subscribe again within this")
    will_s: float = Field(5.0, gt=0, description="a will must reach its subscribers within this after an ungraceful end")
    max_qos1_duplicates: int | None = Field(None, ge=0, description="QoS 1 copies beyond the first allowed on the wire (default: reported, not judged)")
    custom: list[CustomCheck] = Field(default_factory=list)


@dataclass
class CheckResult:
    """A verdict. ``skipped``: the run gave the check nothing to judge (``ok`` stays True, so
    exit codes keep their meaning, but a report says "skipped", never "ok")."""

    name: str
    ok: bool
    detail: str
    first: Record | None = None  # the first offending record, if any
    at: float | None = None  # the first offending moment
    skipped: bool = False

    @classmethod
    def skip(cls, name: str, detail: str) -> "CheckResult":
        return cls(name, True, detail, skipped=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "detail": self.detail}
        if self.skipped:
            out["skipped"] = True
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


def end_of(facts: RunFacts) -> float:
    return facts.end if facts.end is not None else facts.duration


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

