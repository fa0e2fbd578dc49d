"""The checks of issue 14 (accounting, overflow, control, unfinished requests, duplicates per
receiver, availability as the watcher saw it, skipped verdicts), on small histories."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.checks import CheckConfig, RunFacts, run_checks
from sim.report import culprit, markdown
from system.bus._flow import FlowQueue, OverflowPolicy

CFG = CheckConfig(receivers=["recorder"], topics="fleet/#", grace_s=0, convergence_s=10)
FACTS = RunFacts(duration=100.0)
T = "fleet/r1/t"


def hand(i: int, t: float, *, client: str = "s1", topic: str = T, band: str = "data", policy: str = "block", qos: int = 1) -> dict:
    return {"event": "handover", "t": t, "client": client, "id": f"m{i}", "topic": topic, "qos": qos, "band": band, "policy": policy}


def pub(i: int, t: float, *, client: str = "s1", topic: str = T, queued: float | None = None, qos: int = 1) -> dict:
    return {"event": "publish", "t": t, "client": client, "id": f"m{i}", "source": client, "seq": i, "qos": qos, "topic": topic,
            "queued": t if queued is None else queued}


def dlv(i: int, t: float, *, client: str = "recorder", topic: str = T, source: str = "s1", retain: bool = False) -> dict:
    return {"event": "deliver", "t": t, "client": client, "id": f"m{i}", "source": source, "seq": i, "qos": 1, "topic": topic, "retain": retain}


def drop(i: int, t: float, reason: str, policy: str | None, *, client: str = "s1", direction: str = "out", by: int | None = None) -> dict:
    return {"event": "drop", "t": t, "client": client, "direction": direction, "topic": T, "reason": reason, "id": f"m{i}",
            "band": "data" if policy else None, "policy": policy, "replaced_by": None if by is None else f"m{by}"}


def flow(i: int, t: float, **kw) -> list[dict]:
    """A message that went all the way: handed over, published, delivered."""
    return [hand(i, t, **kw), pub(i, t + 0.01), dlv(i, t + 0.02)]


def verdicts(history, cfg=CFG, facts=FACTS) -> dict:
    return {c.name: c for c in run_checks(history, cfg, facts)}


# -- accounting --------------------------------------------------------------------------------


def test_accounting_names_a_message_the_bus_lost_before_the_broker():
    history = flow(0, 1) + [hand(1, 2)] + flow(2, 3)  # m1 handed over, never sent, m2 overtook it
    c = verdicts(history)["accounting"]
    assert not c.ok and c.first["id"] == "m1" and c.at == 2
    assert "m1" in c.detail and "t=2.000s" in c.detail and "later message on its topic" in c.detail


def test_accounting_accepts_a_drop_on_record_and_a_crashed_sender():
    history = flow(0, 1) + [hand(1, 2, policy="drop"), drop(1, 2, "overflow", "drop")] + [hand(2, 3)]
    history += [{"event": "crash", "t": 4, "host": "s1"}] + flow(3, 50)
    c = verdicts(history)["accounting"]
    assert c.ok, c.detail
    assert "1 dropped by an overflow policy" in c.detail and "1 gone with their client" in c.detail


def test_accounting_waits_for_the_backlog_only_until_the_fleet_has_settled():
    assert verdicts([hand(0, 95)])["accounting"].ok  # still queued when the run ends: not judged
    assert not verdicts([hand(0, 50)])["accounting"].ok  # 50 s unsent with nothing in the way


def test_accounting_exempts_an_inbound_policy_drop_and_qos1_loss_agrees():
    history = [hand(0, 1, policy="latest"), pub(0, 1.1), drop(0, 1.2, "superseded", "latest", client="recorder", direction="in", by=1)]
    history += flow(1, 1.15)
    v = verdicts(history)
    assert v["accounting"].ok and v["qos1_loss"].ok, (v["accounting"].detail, v["qos1_loss"].detail)


# -- overflow ----------------------------------------------------------------------------------


def test_block_never_drops():
    c = verdicts(flow(0, 1) + [hand(1, 2), drop(1, 2, "overflow", "block")])["overflow"]
    assert not c.ok and "block dropped m1" in c.detail and c.at == 2


def test_drop_discards_the_new_message_not_a_queued_one():
    ok = flow(0, 1) + [hand(1, 2, policy="drop"), drop(1, 2, "overflow", "drop")]
    assert verdicts(ok)["overflow"].ok
    bad = flow(0, 1) + [hand(1, 2, policy="drop"), drop(1, 3, "overflow", "drop")]
    assert "instead of the message being handed over" in verdicts(bad)["overflow"].detail


def test_latest_evicts_only_for_a_newer_message():
    good = [hand(0, 1, policy="latest"), hand(1, 2, policy="latest"), drop(0, 2, "superseded", "latest", by=1), pub(1, 3), dlv(1, 3.1)]
    assert verdicts(good)["overflow"].ok
    bad = [hand(0, 1, policy="latest"), hand(1, 2, policy="latest"), drop(1, 2, "superseded", "latest", by=0), pub(0, 3), dlv(0, 3.1)]
    c = verdicts(bad)["overflow"]
    assert not c.ok and "not newer" in c.detail


def test_a_message_dropped_on_record_must_not_go_out_anyway():
    history = [hand(0, 1, policy="drop"), drop(0, 1, "overflow", "drop"), pub(0, 2), dlv(0, 2.1)]
    assert "yet it went on" in verdicts(history)["overflow"].detail


def test_coalesce_must_send_the_merged_message():
    merged = [hand(0, 1, policy="coalesce"), hand(1, 2, policy="coalesce"), drop(0, 2, "coalesced", "coalesce", by=1)]
    assert verdicts(merged + [pub(1, 3), dlv(1, 3.1)])["overflow"].ok
    assert "never went out" in verdicts(merged)["overflow"].detail


def test_per_policy_counts_must_add_up():
    history = [hand(0, 1, policy="drop", topic="fleet/x"), *flow(1, 2, policy="drop")]
    c = verdicts(history)["overflow"]
    assert not c.ok and "counts do not add up: 2 handed over, 1 went out, 0 dropped on record, 1 unaccounted" in c.detail


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), min_size=1, max_size=60), st.sampled_from(["drop", "latest"]))
def test_the_real_queue_keeps_every_promise(steps, mode):
    """Whatever is offered and popped, the history the bus would write from FlowQueue's own
    answers passes the overflow and accounting checks."""
    q: FlowQueue[str] = FlowQueue(3, policies=[("fleet/#", OverflowPolicy(mode))])
    history: list[dict] = []
    for n, (sub, pop) in enumerate(steps):
        topic, t = f"fleet/{sub}", float(n)
        history.append({**hand(n, t, policy=mode, topic=topic), "id": f"m{n}"})
        for e in q.offer(topic, f"m{n}").evicted:
            history.append({**drop(0, t, e.reason, e.policy), "id": e.value, "topic": e.topic,
                            "replaced_by": e.replaced_by})
        if pop and (item := q.pop()) is not None:
            history += [{**pub(0, t + 0.5, topic=item[0]), "id": item[1]}, {**dlv(0, t + 0.6, topic=item[0]), "id": item[1]}]
    for item in q.drain():
        history += [{**pub(0, 500.0, topic=item[0]), "id": item[1]}, {**dlv(0, 500.1, topic=item[0]), "id": item[1]}]
    history.sort(key=lambda r: r["t"])
    v = verdicts(history, facts=RunFacts(duration=600.0))
    assert v["overflow"].ok, v["overflow"].detail
    assert v["accounting"].ok, v["accounting"].detail


# -- control band ------------------------------------------------------------------------------


def connect(t: float, client: str = "s1") -> dict:
    return {"event": "connect", "t": t, "client": client, "url": "mqtt://b", "attempt": 1}


def health(i: int, t: float, late: float) -> list[dict]:
    topic = "squall/health/s1"
    return [hand(i, t, topic=topic, band="control", policy="latest", qos=0), pub(i, t + late, topic=topic, queued=t, qos=0)]


def test_control_band_latency_is_bounded_behind_a_data_backlog():
    backlog = [hand(i, 1) for i in range(10, 30)] + [pub(i, 20 + i) for i in range(10, 30)]
    cfg = CFG.model_copy(update={"control_p99_ms": 500})
    fast = sorted([connect(0), *backlog, *health(0, 2, 0.1)], key=lambda r: r["t"])
    c = verdicts(fast, cfg)["control"]
    assert c.ok and "1 sent behind a data backlog, deepest 20" in c.detail, c.detail
    slow = sorted([connect(0), *backlog, *health(0, 2, 5.0)], key=lambda r: r["t"])
    c = verdicts(slow, cfg)["control"]
    assert not c.ok and c.first["id"] == "m0" and "behind 20 data messages" in c.detail and c.at == 7


def test_control_wait_across_a_disconnect_is_not_judged():
    history = [connect(0), *health(0, 2, 0.0)[:1], {"event": "disconnect", "t": 3, "client": "s1", "reason": "lost"}, connect(9), health(0, 2, 8.0)[1]]
    c = verdicts(history, CFG.model_copy(update={"control_p99_ms": 500}))["control"]
    assert c.ok and c.skipped


# -- unfinished requests -----------------------------------------------------------------------


def sent(n: int, t: float, client: str = "controller", timeout: float = 5.0) -> dict:
    return {"event": "command_sent", "t": t, "client": client, "topic": "fleet/r1/heater/cmd/set", "command": "set", "request": n, "timeout": timeout}


def done(n: int, t: float, outcome: str = "ok", client: str = "controller") -> dict:
    return {"event": "command_done", "t": t, "client": client, "topic": "fleet/r1/heater/cmd/set", "command": "set", "request": n, "outcome": outcome, "latency": 0.01}


def test_a_request_that_never_finishes_fails_commands_and_is_named():
    c = verdicts([sent(0, 1), done(0, 1.01), sent(1, 10)])["commands"]
    assert not c.ok and c.first["request"] == 1 and c.at == 15
    assert "request 1" in c.detail and "never finished" in c.detail


def test_pending_requests_are_excused_by_a_crash_and_by_the_end_of_the_run():
    crash = {"event": "crash", "t": 12, "host": "controller"}
    assert verdicts([sent(0, 1), done(0, 1.01), sent(1, 10), crash, sent(1, 30), done(1, 30.01)])["commands"].ok
    assert verdicts([sent(0, 1), done(0, 1.01), sent(1, 97)])["commands"].ok  # its timeout is not up yet


# -- duplicates --------------------------------------------------------------------------------


def test_duplicates_count_per_receiver_and_a_restart_excuses_them():
    cfg = CFG.model_copy(update={"receivers": ["recorder", "controller"]})
    history = flow(0, 1) + [dlv(0, 1.5, client="controller"), dlv(0, 2, client="controller"), dlv(0, 3)]
    c = verdicts(history, cfg)["duplicates"]
    assert not c.ok and "per receiver: controller 1, recorder 1" in c.detail and c.at == 2
    restarted = flow(0, 1) + [{"event": "crash", "t": 2, "host": "recorder"}, dlv(0, 3), dlv(0, 4, retain=True)]
    c = verdicts(restarted)["duplicates"]
    assert c.ok and "1 more across a restart" in c.detail


# -- availability ------------------------------------------------------------------------------


def seen(t: float, status: str, subject: str = "s1") -> dict:
    return {"event": "availability", "t": t, "subject": subject, "status": status, "watcher": "monitor"}


def test_availability_is_judged_only_while_the_watcher_could_see():
    base = [connect(0, "monitor"), connect(0), seen(0.5, "online"), {"event": "disconnect", "t": 10, "client": "s1", "reason": "lost"}]
    # The monitor itself cut off from 5 to 60: what it shows then is not the subject's fault.
    blind = base + [{"event": "disconnect", "t": 5, "client": "monitor", "reason": "lost"}, connect(60, "monitor"), seen(61, "offline"), connect(99)]
    c = verdicts(sorted(blind, key=lambda r: r["t"]))["availability"]
    assert c.ok and "1 down spells judged" in c.detail
    # Back at 60 but still shown online 30 s later (at 90): the will never came.
    lying = base + [{"event": "disconnect", "t": 5, "client": "monitor", "reason": "lost"}, connect(60, "monitor"), connect(99)]
    c = verdicts(sorted(lying, key=lambda r: r["t"]))["availability"]
    assert not c.ok and c.at == 90 and c.first["subject"] == "s1"


# -- skipped and the report's table ------------------------------------------------------------


def test_not_measured_is_a_skip_in_json_and_markdown():
    results = verdicts([])
    assert results["memory"].ok and results["memory"].skipped
    assert results["memory"].to_json()["skipped"] is True
    assert "skipped" not in results["duplicates"].to_json()
    report = {"scenario": "x", "mode": "sim", "seed": 1, "ok": False, "replay": "squall sim run x --seed 1", "virtual_seconds": 1, "wall_seconds": 1,
              "metrics": {"published": 0, "delivered": 0, "lost": 0, "duplicated": 0, "reconnects": 0, "latency_ms": {}},
              "checks": [results["memory"].to_json(), verdicts([sent(1, 10)])["commands"].to_json()]}
    md = markdown(report)
    assert "| memory | skipped |" in md
    assert "| commands | **FAILED** | request 1 (controller) at t=15.000s |" in md


def test_the_culprit_names_a_message_and_its_client():
    c = verdicts(flow(0, 1) + [hand(1, 2)] + flow(2, 3))["accounting"].to_json()
    assert culprit(c) == "`m1` (s1) at t=2.000s"
    assert culprit({"ok": True}) == "-"
