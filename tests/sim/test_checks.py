"""Checks are pure: histories in, verdicts out. Each failure names the first offender."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sim.checks import CheckConfig, RunFacts, metrics, quantile, run_checks, topic_matches

CFG = CheckConfig(receivers=["recorder"], topics="fleet/#", grace_s=0)
FACTS = RunFacts(duration=100.0)


def pub(i: int, t: float, qos: int = 1, source: str = "s1", topic: str = "fleet/r1/t") -> dict:
    return {"event": "publish", "t": t, "client": source, "id": f"m{i}", "source": source, "seq": i, "qos": qos, "topic": topic}


def dlv(i: int, t: float, qos: int = 1, source: str = "s1", client: str = "recorder", topic: str = "fleet/r1/t") -> dict:
    return {"event": "deliver", "t": t, "client": client, "id": f"m{i}", "source": source, "seq": i, "qos": qos, "topic": topic}


def verdicts(history, cfg=CFG, facts=FACTS) -> dict:
    return {c.name: c for c in run_checks(history, cfg, facts)}


def test_a_clean_history_passes_every_check():
    history = [r for i in range(10) for r in (pub(i, i), dlv(i, i + 0.01))]
    results = verdicts(history)
    assert all(c.ok for c in results.values()), {n: c.detail for n, c in results.items() if not c.ok}


def test_qos1_loss_names_the_first_lost_message():
    history = [pub(0, 1), dlv(0, 1.1), pub(1, 2), pub(2, 3), dlv(2, 3.1), pub(3, 4)]
    c = verdicts(history)["qos1_loss"]
    assert not c.ok
    assert c.first["id"] == "m1" and c.at == 2
    assert "2 of 4 QoS 1 messages lost" in c.detail and "m1" in c.detail and "m3" in c.detail


def test_messages_published_within_the_grace_period_are_not_judged():
    cfg = CFG.model_copy(update={"grace_s": 5})
    assert verdicts([pub(0, 97)], cfg)["qos1_loss"].ok
    assert not verdicts([pub(0, 94)], cfg)["qos1_loss"].ok


def test_qos0_loss_is_judged_against_its_budget():
    history = [pub(i, i, qos=0) for i in range(20)] + [dlv(i, i + 0.1, qos=0) for i in range(19)]
    assert verdicts(history)["qos0_loss"].ok  # 5% lost, budget 5%
    assert not verdicts(history[:20] + history[20:37])["qos0_loss"].ok


def test_duplicates_after_dedup_fail():
    c = verdicts([pub(0, 1), dlv(0, 1.1), dlv(0, 1.2)])["duplicates"]
    assert not c.ok and c.first["t"] == 1.2


def test_order_per_publisher_is_checked():
    c = verdicts([pub(0, 1), pub(1, 2), dlv(1, 2.1), dlv(0, 2.2)])["order"]
    assert not c.ok and "seq 0" in c.detail
    other_sources = [pub(0, 1, source="a"), pub(0, 1, source="b")]
    other_sources[1]["id"] = "b0"
    d0 = dlv(0, 1.5, source="b")
    d0["id"] = "b0"
    assert verdicts(other_sources + [dlv(0, 1.1, source="a"), d0])["order"].ok


def test_latency_quantiles_against_thresholds():
    history = [r for i in range(100) for r in (pub(i, i), dlv(i, i + (0.5 if i == 99 else 0.01)))]
    assert verdicts(history)["latency"].ok
    cfg = CFG.model_copy(update={"latency_p99_ms": 100})
    c = verdicts(history, cfg)["latency"]
    assert c.ok  # p99 is the 99th of 100: 10 ms
    cfg = CFG.model_copy(update={"latency_p50_ms": 5})
    assert not verdicts(history, cfg)["latency"].ok


def test_liveness_fails_when_a_client_never_comes_back():
    history = [{"event": "connect", "t": 1, "client": "s1"}, {"event": "disconnect", "t": 10, "client": "s1"}]
    c = verdicts(history, facts=RunFacts(duration=200, quiet_after=20))["liveness"]
    assert not c.ok and "s1" in c.detail
    back = history + [{"event": "connect", "t": 30, "client": "s1"}]
    assert verdicts(back, facts=RunFacts(duration=200, quiet_after=20))["liveness"].ok


def test_liveness_fails_when_the_controller_leaves_a_cold_room_unheated_after_the_deadline():
    def room(t, temp, heater):
        return {"event": "room_temperature", "t": t, "room": "r1", "temperature": temp, "low": 19, "high": 23, "heater": heater}

    facts = RunFacts(duration=200, quiet_after=50)
    c = verdicts([room(60, 12.0, False), room(150, 15.0, False)], facts=facts)["liveness"]
    assert not c.ok and "r1" in c.detail and c.at == 150
    assert verdicts([room(60, 12.0, False), room(150, 15.0, True)], facts=facts)["liveness"].ok
    assert not verdicts([room(150, 25.0, True)], facts=facts)["liveness"].ok


def test_stale_availability_is_caught():
    history = [
        {"event": "connect", "t": 1, "client": "dev"},
        {"event": "availability", "t": 1.1, "subject": "dev", "status": "online"},
        {"event": "crash", "t": 10, "host": "dev"},
    ]
    c = verdicts(history)["availability"]
    assert not c.ok and "stale availability" in c.detail
    offline = history + [{"event": "availability", "t": 20, "subject": "dev", "status": "offline"}]
    assert verdicts(offline)["availability"].ok


def test_commands_success_ratio():
    trips = [{"event": "command_done", "t": i, "outcome": "ok" if i % 4 else "timeout", "latency": 0.01} for i in range(8)]
    assert not verdicts(trips)["commands"].ok  # 75% < 90%
    assert verdicts(trips, CFG.model_copy(update={"min_command_success": 0.7}))["commands"].ok


def test_skipped_checks_do_not_run():
    names = {c.name for c in run_checks([], CFG.model_copy(update={"skip": ["memory", "order"]}), FACTS)}
    assert "memory" not in names and "order" not in names and "qos1_loss" in names


def test_topic_matching_follows_mqtt():
    assert topic_matches("fleet/#", "fleet/a/b") and topic_matches("fleet/+/t", "fleet/x/t")
    assert not topic_matches("fleet/+", "fleet/a/b") and not topic_matches("#", "$SYS/x")
    assert topic_matches("#", "a") and topic_matches("a/#", "a")


@given(st.integers(1, 60), st.data())
def test_loss_counts_exactly_the_undelivered(n, data):
    delivered = data.draw(st.sets(st.integers(0, n - 1)))
    history = [pub(i, i) for i in range(n)] + [dlv(i, i + 0.5) for i in sorted(delivered)]
    m = metrics(history, CFG, RunFacts(duration=1000))
    assert m["lost"] == n - len(delivered)
    assert m["published"] == n and m["delivered"] == len(delivered)
    assert verdicts(history, facts=RunFacts(duration=1000))["qos1_loss"].ok == (len(delivered) == n)


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1), st.floats(0.01, 1))
def test_quantile_is_a_value_that_happened_and_monotone(values, q):
    v = quantile(values, q)
    assert v in values
    assert quantile(values, min(1.0, q + 0.1)) >= v


def test_command_round_trips_that_meet_a_fault_are_not_judged_but_calm_ones_are():
    cfg = CFG.model_copy(update={"convergence_s": 10.0})
    faults = [{"event": "fault", "t": 50, "kind": "crash", "label": "crash broker"}, {"event": "heal", "t": 55, "kind": "crash", "label": "crash broker"}]
    calm_ok = {"event": "command_done", "t": 20, "outcome": "ok", "latency": 0.01}
    # Sent at 48, timed out at 53: it met the crash.
    during = {"event": "command_done", "t": 53, "outcome": "timeout", "latency": 5.0}
    # Sent at 62, while the fleet is still settling (heal at 55 + 10 s).
    settling = {"event": "command_done", "t": 67, "outcome": "timeout", "latency": 5.0}
    c = verdicts(faults + [calm_ok, during, settling], cfg)["commands"]
    assert c.ok and "1 of 1" in c.detail and "2 more met a fault" in c.detail
    # Long after the fault, a timeout is a failure again, and it is the one named.
    late = {"event": "command_done", "t": 90, "outcome": "timeout", "latency": 5.0}
    c = verdicts(faults + [calm_ok, during, late], cfg)["commands"]
    assert not c.ok and c.first == late and "1 of 2" in c.detail


def test_a_fault_that_is_never_healed_spares_every_later_round_trip():
    faults = [{"event": "fault", "t": 50, "kind": "down", "label": "down broker:1883"}]
    after = {"event": "command_done", "t": 80, "outcome": "timeout", "latency": 5.0}
    assert verdicts(faults + [after])["commands"].ok


def test_reconnect_judges_the_cap_to_the_millisecond_in_sim_and_with_the_runs_slack_in_chaos():
    # Attempt 3 of a 0.1 s / 0.4 s backoff may wait at most 0.4 s; it waited 0.534 s.
    history = [
        {"event": "disconnect", "t": 10.0, "client": "heater-r2", "reason": "lost"},
        {"event": "connecting", "t": 10.534, "client": "heater-r2", "attempt": 3, "initial": 0.1, "maximum": 0.4},
    ]
    sim = verdicts(history)["reconnect"]
    assert not sim.ok and "waited 0.534s before reconnect attempt 3" in sim.detail and sim.at == 10.534
    chaos = verdicts(history, facts=RunFacts(duration=100.0, extras={"timing_slack": 0.5}))["reconnect"]
    assert chaos.ok, chaos.detail


def test_a_check_with_nothing_to_judge_is_skipped_not_passed():
    # No reconnects, restarts, supervised services or memory samples: those checks say so.
    history = [r for i in range(5) for r in (pub(i, i), dlv(i, i + 0.01))]
    results = verdicts(history)
    for name in ("reconnect", "restore", "resubscribe", "supervisor", "memory"):
        assert results[name].skipped and results[name].ok, (name, results[name].detail)
        assert results[name].to_json()["skipped"] is True
    assert not results["qos1_loss"].skipped


def test_latency_budgets_hold_exactly_in_sim_and_with_the_runs_slack_in_chaos():
    history = [r for i in range(10) for r in (pub(i, i), dlv(i, i + 0.3))]  # 300 ms each
    cfg = CFG.model_copy(update={"latency_p99_ms": 50.0})
    sim = verdicts(history, cfg)["latency"]
    assert not sim.ok and "p99 300.0 ms > 50 ms" in sim.detail
    chaos = verdicts(history, cfg, RunFacts(duration=100.0, extras={"timing_slack": 0.5}))["latency"]
    assert chaos.ok, chaos.detail
