"""The whole conformance suite in squall's simulated world: virtual time, same seed, same verdict.

Timing statements (keepalive 1.5 x, will on timeout, clients away for a while) run here in
virtual time, exactly: the keepalive disconnect comes at 1.5 virtual seconds, and a broker that
never answers costs its full timeout in virtual time, not in wall time. The broker is the real
embedded one (amqtt with or without squall's fixes) on simulated host "broker".
"""

from __future__ import annotations

import random

import pytest

from sim.pytest_plugin import world_with_broker
from system.broker.conformance import STATEMENTS, Outcome, Statement, Target, run_check
from tests.conformance._suite import ACL, AMQTT_VIOLATIONS, DENIED, PASSWORD, USER


def _run(st: Statement, flavor: str, seed: int) -> tuple[Outcome, float, str, list[str]]:
    world, broker = world_with_broker(seed, flavor, broker_options={"users": {USER: PASSWORD}, "acl": ACL})
    assert broker is not None

    async def main() -> Outcome:
        await broker.ready()
        target = Target(broker.host, broker.port, flavor, USER, PASSWORD, DENIED)
        return await run_check(st, target, random.Random(seed))

    result = world.run(main, until=600)
    return result.value, result.now, result.trace_hash, list(result.errors)


def _params() -> list[object]:
    out: list[object] = []
    for st in STATEMENTS:
        out.append(pytest.param(st, "squall", id=f"{st.name}-squall"))
        marks = (
            [pytest.mark.xfail(strict=True, reason=f"{st.statement}: {AMQTT_VIOLATIONS[st.name]}")]
            if st.name in AMQTT_VIOLATIONS else []
        )
        out.append(pytest.param(st, "amqtt", id=f"{st.name}-amqtt", marks=marks))
    return out


@pytest.mark.parametrize(("st", "flavor"), _params())
def test_statement_in_virtual_time(st: Statement, flavor: str) -> None:
    outcome, _, _, errors = _run(st, flavor, seed=1)
    assert outcome is not None, f"the check did not finish in virtual time: {errors}"
    if outcome.status == "skip":
        pytest.skip(outcome.detail)
    assert outcome.status == "pass", f"{st.statement} on {flavor} (virtual time): {outcome.detail}"


def test_keepalive_disconnect_comes_at_one_and_a_half_keepalives() -> None:
    st = next(s for s in STATEMENTS if s.name == "MQTT_3_1_2_24_keepalive_silence_disconnects")
    outcome, now, _, _ = _run(st, "squall", seed=1)
    assert outcome.status == "pass"
    assert now == pytest.approx(1.5, abs=0.1)  # virtual seconds: exact, no load can stretch them


@pytest.mark.parametrize("flavor", ["squall", "amqtt"])
def test_same_seed_same_run(flavor: str) -> None:
    st = next(s for s in STATEMENTS if s.name == "MQTT_4_4_0_1_unacked_publish_resent_with_dup")
    first, second = _run(st, flavor, seed=7), _run(st, flavor, seed=7)
    assert (first[0], first[1], first[2]) == (second[0], second[1], second[2])
