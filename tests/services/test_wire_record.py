"""The broker's wire record (system/broker/_tap.py) and the checks over it (sim/checks/_wire.py).

The tap is tested on the wire: a hand-encoded MQTT client (the conformance suite's RawClient)
against the real broker on loopback, both flavors. The checks are pure functions of records.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.checks import CheckConfig, RunFacts
from sim.checks._wire import (
    Wire,
    check_comes_back,
    check_delivery,
    check_duplicates,
    check_order,
    check_resubscribe,
    check_sessions,
    check_wills,
)
from system.broker import EmbeddedBroker
from system.broker.conformance._wire import PUBLISH, RawClient, publish_bytes


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "the broker never reported it"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("flavor", ["squall", "amqtt"])
def test_the_tap_records_every_packet_with_its_fields(flavor: str) -> None:
    records: list[dict[str, Any]] = []

    async def main() -> None:
        async with EmbeddedBroker(port=0, flavor=flavor, observer=records.append) as broker:
            sub = await RawClient.open("127.0.0.1", broker.port)
            await sub.connect("sub", clean=False, keepalive=30, will=("status/sub", b"gone", 1, True))
            assert await sub.subscribe([("a/#", 1)], pid=3) == [1]
            pub = await RawClient.open("127.0.0.1", broker.port)
            await pub.connect("pub")
            await pub.publish("a/b", b"xyz", qos=1, pid=7)
            got = await sub.recv(PUBLISH, timeout=5)
            await sub.ack(got)
            await pub.send(publish_bytes("a/b", b"xyz", qos=1, pid=7, dup=True))
            await _until(lambda: sum(r["type"] == "PUBLISH" and r["dir"] == "in" for r in records) == 2)
            await pub.disconnect()
            await sub.abort()
            await _until(lambda: sum(r["type"] == "gone" for r in records) == 2)

    asyncio.run(main())
    by = lambda **kw: [r for r in records if all(r.get(k) == v for k, v in kw.items())]
    (c,) = by(type="connect", client="sub")
    assert c["clean"] is False and c["keepalive"] == 30 and c["session_present"] is False
    assert c["will_topic"] == "status/sub" and c["will_qos"] == 1 and c["will_retain"] is True
    assert by(type="SUBSCRIBE", client="sub") == [{"event": "mqtt", "type": "SUBSCRIBE", "dir": "in", "client": "sub", "pid": 3, "filters": [["a/#", 1]]}]
    assert by(type="SUBACK", client="sub")[0]["codes"] == [1]
    first, again = by(type="PUBLISH", dir="in", client="pub")
    assert (first["topic"], first["qos"], first["pid"], first["dup"], first["retain"], first["size"]) == ("a/b", 1, 7, False, False, 3)
    assert first["hash"] == hashlib.blake2b(b"xyz", digest_size=8).hexdigest() and again["dup"] is True
    assert by(type="PUBACK", dir="out", client="pub", pid=7)
    out = by(type="PUBLISH", dir="out", client="sub")[0]
    assert out["topic"] == "a/b" and out["hash"] == first["hash"] and out["qos"] == 1
    assert by(type="PUBACK", dir="in", client="sub", pid=out["pid"])
    assert by(type="DISCONNECT", dir="in", client="pub")
    assert {r["client"]: r["graceful"] for r in by(type="gone")} == {"pub": True, "sub": False}
    assert not by(type="tap-error")


def test_watching_the_wire_changes_nothing_in_the_run() -> None:
    from sim.runner import run_scenario
    from sim.scenario import load_scenario

    base = load_scenario("smoke").model_copy(update={"duration": 20.0})
    watched = base.model_copy(update={"checks": base.checks.model_copy(update={"wire": True})})
    plain, seen = run_scenario(base, 2, plots=False), run_scenario(watched, 2, plots=False)
    assert plain.report["trace_hash"] == seen.report["trace_hash"]
    assert not any(r["event"] == "mqtt" for r in plain.history.records)
    assert sum(r["event"] == "mqtt" for r in seen.history.records) > 100
    assert {"wire_delivery", "wire_resubscribe"} <= {c["name"] for c in seen.report["checks"]}


# ---- the checks, over hand-written records

def _m(t: float, type_: str, client: str, **kw: Any) -> dict[str, Any]:
    return {"t": t, "event": "mqtt", "type": type_, "client": client, **kw}


def _pub(t: float, pid: int, payload: str, *, dup: bool = False, qos: int = 1, client: str = "p") -> list[dict[str, Any]]:
    h = hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()
    ack = "PUBACK" if qos == 1 else "PUBREC"
    return [_m(t, "PUBLISH", client, dir="in", topic="a/b", qos=qos, pid=pid, dup=dup, hash=h), _m(t, ack, client, dir="out", pid=pid)]


def _out(t: float, pid: int, payload: str, client: str = "s", qos: int = 1) -> list[dict[str, Any]]:
    h = hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()
    ack = "PUBACK" if qos == 1 else "PUBREC"
    return [_m(t, "PUBLISH", client, dir="out", topic="a/b", qos=qos, pid=pid, dup=False, hash=h), _m(t + 0.001, ack, client, dir="in", pid=pid)]


def _sub(t: float, client: str = "s", clean: bool = False, present: bool = False, qos: int = 1) -> list[dict[str, Any]]:
    return [_m(t, "connect", client, clean=clean, session_present=present), _m(t, "SUBSCRIBE", client, dir="in", pid=1, filters=[["a/#", qos]]), _m(t, "SUBACK", client, dir="out", pid=1, codes=[qos])]


CFG = CheckConfig(grace_s=0)
FACTS = RunFacts(duration=100)


def test_a_persistent_subscriber_is_owed_what_was_published_while_it_was_away() -> None:
    away = [*_sub(0), _m(0, "connect", "p", clean=True, session_present=False), _m(10, "gone", "s", graceful=False), *_pub(20, 1, "r1")]
    lost = check_delivery(Wire(away + [_m(30, "connect", "s", clean=False, session_present=True)]), CFG, FACTS)
    assert not lost.ok and "never reached s" in lost.detail and "'a/b' from p" in lost.detail
    delivered = away + [_m(30, "connect", "s", clean=False, session_present=True), *_out(30, 5, "r1")]
    assert check_delivery(Wire(delivered), CFG, FACTS).ok
    # a clean session's debts end with its connection; a DUP re-send is the same message
    clean = [*_sub(0, clean=True), *_pub(5, 1, "r1"), _m(6, "gone", "s", graceful=False), *_pub(7, 1, "r1", dup=True)]
    assert check_delivery(Wire(clean), CFG, FACTS).ok and len(Wire(clean).messages) == 1


def test_a_broker_that_forgets_a_persistent_session_fails_sessions_and_delivery() -> None:
    forgot = [*_sub(0), _m(0, "connect", "p", clean=True, session_present=False), _m(10, "gone", "s", graceful=False), *_pub(20, 1, "r1"),
              _m(30, "connect", "s", clean=False, session_present=False)]
    bad = check_sessions(Wire(forgot), CFG, FACTS)
    assert not bad.ok and "MQTT-3.1.2-4" in bad.detail and bad.at == 30
    assert not check_delivery(Wire(forgot), CFG, FACTS).ok  # what it held is lost, not excused
    # after a crash of a broker without durable state, losing it is expected
    crashed = forgot[:3] + [{"t": 15, "event": "crash", "host": "broker"}] + forgot[3:]
    assert check_sessions(Wire(crashed, durable=False), CFG, FACTS).ok and check_delivery(Wire(crashed, durable=False), CFG, FACTS).ok
    assert not check_sessions(Wire(crashed, durable=True), CFG, FACTS).ok
    resumed_clean = [*_sub(0, clean=True), _m(5, "gone", "s", graceful=True), _m(6, "connect", "s", clean=True, session_present=True)]
    assert "MQTT-3.2.2-1" in check_sessions(Wire(resumed_clean), CFG, FACTS).detail


def test_qos2_duplicates_fail_and_qos1_duplicates_are_counted() -> None:
    twice = [*_sub(0, qos=2), *_pub(1, 1, "x", qos=2), *_out(2, 4, "x", qos=2), *_out(3, 5, "x", qos=2)]
    got = check_duplicates(Wire(twice), CFG, FACTS)
    assert not got.ok and "1 QoS 2 duplicates" in got.detail
    once_more = [*_sub(0), *_pub(1, 1, "x"), *_out(2, 4, "x"), *_out(3, 5, "x")]
    assert check_duplicates(Wire(once_more), CFG, FACTS).ok
    assert not check_duplicates(Wire(once_more), CheckConfig(max_qos1_duplicates=0), FACTS).ok


def test_order_resubscribe_wills_and_coming_back() -> None:
    swapped = [*_sub(0), *_pub(1, 1, "first"), *_pub(2, 2, "second"), *_out(3, 8, "second"), *_out(4, 9, "first")]
    assert not check_order(Wire(swapped), CFG, FACTS).ok
    forgot = [*_sub(0, clean=True), _m(5, "gone", "s", graceful=False), _m(6, "connect", "s", clean=True, session_present=False)]
    bad = check_resubscribe(Wire(forgot), CFG, FACTS)
    assert not bad.ok and "'a/#'" in bad.detail
    assert check_resubscribe(Wire(forgot + _sub(7, clean=True)[1:]), CFG, FACTS).ok
    assert not check_comes_back(Wire(forgot[:4]), CFG, FACTS).ok and check_comes_back(Wire(forgot), CFG, FACTS).ok
    will = [*_sub(0), _m(1, "connect", "d", clean=True, session_present=False, will_topic="a/d", will_hash="h1"), _m(5, "gone", "d", graceful=False)]
    assert not check_wills(Wire(will), CFG, FACTS).ok
    sent = will + [_m(5.001, "PUBLISH", "s", dir="out", topic="a/d", qos=1, pid=3, hash="h1")]
    assert check_wills(Wire(sent), CFG, FACTS).ok


# ---- properties: a faithful transcript passes every check; any one lost delivery is named



@st.composite
def transcripts(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    """Subscribers with persistent or clean sessions, publishers publishing QoS 1 in order, and
    the broker delivering each message once, in order, to every subscriber."""
    subs = draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=1, max_size=3, unique=True))
    n = draw(st.integers(1, 25))
    records: list[dict[str, Any]] = []
    for s in subs:
        records += _sub(0, client=s, clean=draw(st.booleans()))
    records.append(_m(0, "connect", "p", clean=True, session_present=False))
    pids = dict.fromkeys(subs, 0)
    for i in range(n):
        t = 1.0 + i
        records += _pub(t, i % 65535 + 1, f"m{i}")
        for s in subs:
            pids[s] += 1
            records += _out(t + 0.01, pids[s], f"m{i}", client=s)
    return records, n


@settings(max_examples=60, deadline=None)
@given(transcripts(), st.data())
def test_a_faithful_broker_passes_and_a_dropped_delivery_is_named(case: tuple[list[dict[str, Any]], int], data: st.DataObject) -> None:
    records, n = case
    w = Wire(records)
    for check in (check_delivery, check_duplicates, check_order, check_resubscribe, check_wills, check_sessions, check_comes_back):
        assert check(w, CFG, FACTS).ok, check(w, CFG, FACTS).detail
    assert len(w.messages) == n
    outs = [i for i, r in enumerate(records) if r["type"] == "PUBLISH" and r["dir"] == "out"]
    drop = data.draw(st.sampled_from(outs))
    lost = records[drop]
    without = records[:drop] + records[drop + 2 :]  # the PUBLISH out and its PUBACK
    got = check_delivery(Wire(without), CFG, FACTS)
    assert not got.ok and f"never reached {lost['client']}" in got.detail and lost["hash"] in got.detail
