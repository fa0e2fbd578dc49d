"""The same scenarios for real: embedded broker, one squall proxy per service, real loopback TCP."""

from __future__ import annotations

import json
import subprocess
import sys


from chaos.runner import run_chaos
from sim.scenario import load_scenario


def test_smoke_runs_for_real_and_passes(tmp_path):
    outcome = run_chaos(load_scenario("smoke"), out=tmp_path / "run", duration=8)
    report = outcome.report
    assert report["mode"] == "chaos" and report["trace_hash"] is None
    assert report["metrics"]["published"] > 20 and report["metrics"]["lost"] == 0
    assert outcome.ok, [c for c in report["checks"] if not c["ok"]]
    assert any(r["event"] == "sample" and r["rss_mb"] > 0 for r in outcome.history.records)
    for f in ("report.json", "report.md", "history.jsonl", "timeline.png"):
        assert (tmp_path / "run" / f).exists()


def test_broker_restart_for_real_loses_no_qos1_message(tmp_path):
    outcome = run_chaos(load_scenario("broker-restart"), out=tmp_path / "run", duration=16)
    kinds = [r.get("kind") for r in outcome.history.records if r["event"] == "fault"]
    assert kinds == ["crash", "crash"]
    assert outcome.report["metrics"]["reconnects"] >= 8  # every service came back, twice
    assert outcome.ok, [c["detail"] for c in outcome.report["checks"] if not c["ok"]]


def test_partition_in_chaos_disables_the_partitioned_services_proxies(tmp_path):
    outcome = run_chaos(load_scenario("partition-heal"), out=tmp_path / "run", duration=20)
    disconnected = {r["client"] for r in outcome.history.records if r["event"] == "disconnect"}
    assert {"sensor-r1-1", "heater-r1"} <= disconnected
    assert "sensor-r2-1" not in disconnected  # its proxy was never touched


def test_nightly_writes_an_index_with_replay_commands(tmp_path):
    out = tmp_path / "nightly"
    done = subprocess.run(
        [sys.executable, "-m", "sim.cli", "chaos", "nightly", "--out", str(out), "--duration", "6", "--seeds", "1-2", "--scenarios", "smoke", "--sweep-scenario", "smoke", "--jobs", "1"],
        capture_output=True, text=True, timeout=300,
    )
    index = json.loads((out / "index.json").read_text())
    assert [r["kind"] for r in index["runs"]] == ["chaos", "sim", "sim"]
    assert all(r["replay"].startswith("squall ") for r in index["runs"])
    assert (out / "index.md").read_text().startswith("# squall nightly")
    assert done.returncode == (0 if index["ok"] else 1)
