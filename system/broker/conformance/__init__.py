"""MQTT 3.1.1 broker conformance: one check per normative statement, over raw sockets.

Shared by the pytest suite (tests/conformance) and ``squall broker --conformance``.
"""

from system.broker.conformance._embedded import run_embedded, run_suite_embedded
from system.broker.conformance._registry import (
    STATEMENTS,
    Outcome,
    Statement,
    Target,
    run_check,
)
from system.broker.conformance._runner import format_table, run_suite

__all__ = [
    "STATEMENTS", "Outcome", "Statement", "Target", "format_table", "run_check", "run_embedded", "run_suite",
    "run_suite_embedded",
]
