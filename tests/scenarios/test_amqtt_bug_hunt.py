"""The harness finds stock amqtt's MQTT bugs with a seed, and squall's broker passes the same scenario."""

from __future__ import annotations

from pathlib import Path

from sim.scenario import load_scenario, to_toml
from sim.sweep import sweep

SEEDS = [2, 3]


def test_a_sweep_on_stock_amqtt_finds_qos1_loss_and_stale_availability(tmp_path):
    summary = sweep("amqtt-qos1-loss", SEEDS, tmp_path, jobs=1, progress=False)
    failed = {name for r in summary["runs"] for name in r["failed"]}
    assert {"qos1_loss", "availability"} <= failed
    for r in summary["runs"]:
        assert r["replay"] == f"squall sim run amqtt-qos1-loss --seed {r['seed']}"
        report = (Path(r["run_dir"]) / "report.md").read_text()
        assert "qos1_loss" in report and "lost ids:" in report  # the lost message ids, for a person
        assert (Path(r["run_dir"]) / "scenario.toml").exists()  # and what replays it


def test_the_same_scenario_on_squalls_broker_passes_every_check(tmp_path):
    scenario = load_scenario("amqtt-qos1-loss")
    fixed = scenario.model_copy(update={"broker": scenario.broker.model_copy(update={"flavor": "squall"})})
    path = tmp_path / "squall-broker.toml"
    path.write_text(to_toml(fixed))
    summary = sweep(str(path), SEEDS, tmp_path / "out", jobs=1, progress=False)
    assert summary["failed"] == [], [(r["seed"], r["first_failure"]) for r in summary["runs"] if not r["ok"]]
