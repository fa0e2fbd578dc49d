"""The suite against a fresh embedded broker per statement, as pytest and the CLI both run it.

A fresh broker per statement means one statement's leftovers (retained messages, lingering
sessions) never decide another's verdict, so the in-process counts are reproducible. The
broker gets a user and an ACL, so the credential and ACL checks run too.
"""

from __future__ import annotations

import random

from system.broker.conformance import _checks  # noqa: F401 - registers the statements
from system.broker.conformance._registry import (
    Outcome,
    Statement,
    Target,
    run_check,
)
from system.broker.conformance._runner import Progress, run_each
from system.broker.embedded import EmbeddedBroker

USER, PASSWORD, DENIED = "alice", "wonderland", "forbidden/#"
# anonymous may use everything; alice only squall/#, so DENIED gets SUBACK 0x80
ACL = {"anonymous": ["#"], USER: ["squall/#"]}
# stock amqtt fails many checks by silence: 3 s per expected event is still ample on loopback
TIMEOUTS = {"squall": 10.0, "amqtt": 3.0}


async def run_embedded(st: Statement, flavor: str, rng: random.Random) -> Outcome:
    """One statement against a fresh embedded broker of ``flavor``."""
    async with EmbeddedBroker("127.0.0.1", 0, flavor=flavor, users={USER: PASSWORD}, acl=ACL) as broker:  # type: ignore[arg-type]
        target = Target("127.0.0.1", broker.port, f"embedded {flavor}", USER, PASSWORD, DENIED, timeout=TIMEOUTS[flavor])
        return await run_check(st, target, rng)


async def run_suite_embedded(flavor: str, rng: random.Random, only: str | None = None, progress: Progress | None = None) -> list[Outcome]:
    """Every statement (or those whose name contains ``only``), each on its own fresh broker."""
    return await run_each(only, lambda st: run_embedded(st, flavor, rng), progress)
