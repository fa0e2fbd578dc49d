"""Checks: pure functions from a history (list of records) to verdicts. No clocks, no sockets.

Each check returns a `CheckResult`; a failed one names the first offending message or
moment so that, with the seed and the replay command the report adds, a person can go
straight to it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from sim.checks._accounting import check_accounting
from sim.checks._availability import check_availability
from sim.checks._commands import check_commands
from sim.checks._control import check_control
from sim.checks._custom import CheckInput, Verdict, run_custom_checks
from sim.checks._delivery import loss, check_duplicates, check_latency, check_order, check_qos0_loss, check_qos1_loss
from sim.checks._index import Index
from sim.checks._liveness import check_liveness
from sim.checks._memory import check_memory
from sim.checks._overflow import check_overflow
from sim.checks._reconnect import check_reconnect
from sim.checks._restore import check_restore
from sim.checks._resubscribe import check_resubscribe
from sim.checks._supervisor import check_supervisor
from sim.checks._model import CheckConfig, CheckResult, CustomCheck, Record, RunFacts, quantile, topic_matches
from sim.checks._wire import WIRE_CHECKS, run_wire_checks, wire_metrics

__all__ = [
    "CHECKS", "FLEET_ONLY", "WIRE_CHECKS", "CheckConfig", "CheckInput", "CheckResult", "CustomCheck", "Record", "RunFacts", "Verdict",
    "metrics", "quantile", "run_checks", "run_custom_checks", "run_wire_checks", "topic_matches", "wire_metrics",
]

# The report lists checks in this order.
CHECKS: dict[str, Callable[[Index, RunFacts], CheckResult]] = {
    "qos1_loss": check_qos1_loss,
    "qos0_loss": check_qos0_loss,
    "accounting": check_accounting,
    "overflow": check_overflow,
    "duplicates": check_duplicates,
    "order": check_order,
    "latency": check_latency,
    "control": check_control,
    "commands": check_commands,
    "availability": check_availability,
    "liveness": check_liveness,
    "restore": check_restore,
    "reconnect": check_reconnect,
    "resubscribe": check_resubscribe,
    "supervisor": check_supervisor,
    "memory": check_memory,
}


# Checks that read the observer records of squall's own bus and fleet: a scenario of user
# services only (no [fleet]) has none of those, so it skips them and is judged on the wire.
FLEET_ONLY = set(CHECKS) - {"memory"}


def run_checks(history: Iterable[Record], cfg: CheckConfig, facts: RunFacts) -> list[CheckResult]:
    """``facts.extras``: ``fleet`` (default True) runs the fleet's checks; ``wire`` the broker
    wire checks; ``durable`` whether the broker keeps sessions across a crash."""
    history = list(history)
    ix = Index(history, cfg)
    fleet = facts.extras.get("fleet", True)
    out = [fn(ix, facts) for name, fn in CHECKS.items() if name not in cfg.skip and (fleet or name not in FLEET_ONLY)]
    if facts.extras.get("wire", False):
        out += run_wire_checks(history, cfg, facts)
    return out


def metrics(history: Iterable[Record], cfg: CheckConfig, facts: RunFacts) -> dict[str, Any]:
    """The report's ``metrics``: published, delivered, lost, duplicated, latency_ms, reconnects."""
    ix = Index(history, cfg)
    lost1, _ = loss(ix, facts, 1)
    lost0, _ = loss(ix, facts, 0)
    lat = ix.latencies_ms()

    def q(x: float) -> float | None:
        v = quantile(lat, x)
        return None if math.isnan(v) else round(v, 3)

    out = {
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
    if not facts.extras.get("fleet", True):  # user services: the broker's wire is the only record
        out.update(wire_metrics(ix.by_event.get("mqtt", []) + ix.by_event.get("crash", []), cfg, facts))
    return out
