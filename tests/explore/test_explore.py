"""sim.explore: run and sweep directories as DataFrames, and their plots (on real runs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.checks import quantile, topic_matches
from sim.errors import BadInput
from sim.explore import (
    failure_rate_by_fault_kind,
    load_run,
    load_sweep,
    plot_flow,
    plot_latency_quantiles,
    plot_p99_distribution,
    plot_timeline,
)
from sim.history import read_jsonl
from sim.scenario import load_scenario, to_toml
from sim.sweep import sweep


def test_a_run_is_its_report_and_its_history(partition_run_dir: Path) -> None:
    run = load_run(partition_run_dir)
    assert run.report == json.loads((partition_run_dir / "report.json").read_text())
    assert len(run.history) == len(read_jsonl(partition_run_dir / "history.jsonl"))
    assert run.ok and run.checks["ok"].all()
    assert run.faults[["at", "until", "kind"]].to_dict("records") == [
        {"at": 60.0, "until": 105.0, "kind": "partition"},
        {"at": 140.0, "until": 150.0, "kind": "partition"},
    ]
    assert "partition-heal" in repr(run) and "ok" in repr(run)


def test_every_delivery_carries_its_publish_time_and_latency(
    partition_run_dir: Path,
) -> None:
    run = load_run(partition_run_dir)
    records = read_jsonl(partition_run_dir / "history.jsonl")
    first_publish: dict[str, dict] = {}
    for r in records:
        if r["event"] == "publish":
            first_publish.setdefault(r["id"], r)
    d = run.deliveries
    assert len(d) == sum(r["event"] == "deliver" for r in records)
    for row in d.itertuples():
        pub = first_publish[row.id]
        assert row.published_t == pub["t"]
        assert row.latency_ms == pytest.approx(
            (row.t - pub.get("queued", pub["t"])) * 1000.0
        )


def test_the_deliveries_give_the_reports_own_figures(partition_run_dir: Path) -> None:
    run = load_run(partition_run_dir)
    cfg = load_scenario("partition-heal").checks
    d = run.deliveries
    first = d[d["client"].isin(cfg.receivers)].drop_duplicates(
        ["client", "id"]
    )  # first delivery of each message to each receiver
    metrics = run.report["metrics"]
    assert len(first) == metrics["delivered"]
    judged = set(
        run.publishes[
            run.publishes["topic"].map(lambda t: topic_matches(cfg.topics, t))
        ]["id"]
    )
    latencies = list(first[first["id"].isin(judged)]["latency_ms"])
    for q in ("p50", "p95", "p99"):
        assert (
            round(quantile(latencies, int(q[1:]) / 100), 3) == metrics["latency_ms"][q]
        )


def test_flow_shows_the_partitioned_devices_cut_off(partition_run_dir: Path) -> None:
    run = load_run(partition_run_dir)
    d = run.deliveries
    during = d[(d["t"] > 61) & (d["t"] < 104)]
    assert (during["source"] == "sensor-r1-1").sum() == 0  # partitioned from 60 to 105
    assert (
        during["source"] == "sensor-r2-1"
    ).sum() > 0  # its neighbour room keeps flowing
    assert {"sensor-r1-1", "sensor-r2-1", "heater-r1", "controller"} <= set(
        run.flow.index
    )
    assert (run.flow.loc["sensor-r1-1", ["published", "delivered"]] > 0).all()
    assert run.flow.loc["recorder", "received"] > 0


def test_plots_draw_the_run_with_its_fault_windows(partition_run_dir: Path) -> None:
    run = load_run(partition_run_dir)
    ax = plot_timeline(run)
    assert len(ax.patches) == len(run.faults)  # one shaded window per fault
    assert [line.get_label() for line in ax.get_lines()] == [
        "published/s",
        "deliveries/s",
    ]
    assert sum(ax.get_lines()[0].get_ydata()) > 0
    ax = plot_latency_quantiles(run)
    assert [line.get_label() for line in ax.get_lines()] == ["p50", "p95", "p99"]
    ax = plot_flow(run)
    [image] = ax.get_images()
    assert image.get_array().shape[0] == int((run.flow["published"] > 0).sum())


def test_a_directory_with_only_a_report_loads_with_empty_frames(
    partition_run_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "report.json").write_text(
        (partition_run_dir / "report.json").read_text()
    )  # a passing seed of a sweep
    run = load_run(tmp_path)
    assert run.history.empty and run.publishes.empty and run.deliveries.empty
    assert "latency_ms" in run.deliveries.columns and "source" in run.publishes.columns
    plot_timeline(run)
    plot_latency_quantiles(run)
    plot_flow(run)


def test_a_failing_run_names_its_failed_check(failing_run_dir: Path) -> None:
    run = load_run(failing_run_dir)
    assert not run.ok
    assert run.checks.set_index("name").loc["qos1_loss", "ok"] == False
    assert "FAILED" in repr(run)


def test_bad_directories_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        BadInput,
        match=r"is not a squall run directory \(no report.json\); make one with squall sim run",
    ):
        load_run(tmp_path)
    with pytest.raises(
        BadInput,
        match=r"is not a squall sweep directory \(no sweep.json\); make one with squall sim sweep",
    ):
        load_sweep(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(BadInput, match="is not JSON"):
        load_run(tmp_path)


def test_a_damaged_history_names_the_file_and_line(
    partition_run_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "report.json").write_text(
        (partition_run_dir / "report.json").read_text()
    )
    (tmp_path / "history.jsonl").write_text(
        '{"t": 0, "event": "connect"}\n{"t": 1, "ev\n'
    )
    with pytest.raises(
        BadInput,
        match=r"history.jsonl:2: not a JSON line .*is this a squall history.jsonl\?",
    ):
        _ = load_run(tmp_path).history


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped swarm, short, on stock amqtt with the broker among the crash hosts: some seeds fail."""
    base = load_scenario("swarm")
    variant = base.model_copy(
        update={
            "name": "swarm-short-amqtt",
            "duration": 100.0,
            "swarm_quiet": 40.0,
            "broker": base.broker.model_copy(update={"flavor": "amqtt"}),
            "swarm": base.swarm.model_copy(
                update={"crash_hosts": [*base.swarm.crash_hosts, "broker"]}
            ),
        }
    )
    root = tmp_path_factory.mktemp("sweep")
    (root / "swarm.toml").write_text(to_toml(variant))
    sweep(str(root / "swarm.toml"), [1, 2, 3, 4], root / "out", jobs=1, progress=False)
    return root / "out"


def test_a_sweep_is_one_row_per_seed_with_failure_columns(sweep_dir: Path) -> None:
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    df = load_sweep(sweep_dir)
    assert list(df.index) == [1, 2, 3, 4]
    for r in summary["runs"]:
        row = df.loc[r["seed"]]
        assert (
            row["ok"] == r["ok"]
            and row["failed"] == r["failed"]
            and row["faults"] == r["faults"]
        )
        assert row["lost"] == r["metrics"]["lost"] and row["replay"] == r["replay"]
        for check in r["failed"]:
            assert row[f"fail:{check}"]
        for kind in r["faults"]:
            assert row[f"fault:{kind}"]
    assert not df["ok"].all(), "stock amqtt should fail some seeds of this sweep"
    failing = df[~df["ok"]].iloc[0]
    assert (
        load_run(failing["run_dir"]).report["seed"] == failing.name
    )  # failing seeds keep a full run directory


def test_failure_rate_by_fault_kind_recounts_the_sweep(sweep_dir: Path) -> None:
    runs = json.loads((sweep_dir / "sweep.json").read_text())["runs"]
    rates = failure_rate_by_fault_kind(load_sweep(sweep_dir))
    for kind, row in rates.iterrows():
        having = [
            r
            for r in runs
            if (kind in r["faults"] if kind != "(none)" else not r["faults"])
        ]
        assert row["seeds"] == len(having)
        assert row["failed"] == sum(not r["ok"] for r in having)
    assert list(rates["failure_rate"]) == sorted(rates["failure_rate"], reverse=True)


def test_p99_distribution_plots_every_seed_with_a_p99(sweep_dir: Path) -> None:
    df = load_sweep(sweep_dir)
    ax = plot_p99_distribution(df)
    heights = sum(p.get_height() for p in ax.patches)
    assert heights == df["p99"].notna().sum()


@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.lists(
                st.sampled_from(["toxic", "partition", "crash", "down", "skew"]),
                max_size=4,
            ),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_failure_rate_by_fault_kind_counts_each_seed_once_per_kind(
    seeds: list[tuple[bool, list[str]]],
) -> None:
    frame = pd.DataFrame(
        {"ok": [ok for ok, _ in seeds], "faults": [kinds for _, kinds in seeds]},
        index=range(1, len(seeds) + 1),
    )
    rates = failure_rate_by_fault_kind(frame)
    kinds = {k for _, ks in seeds for k in ks} | (
        {"(none)"} if any(not ks for _, ks in seeds) else set()
    )
    assert set(rates.index) == kinds
    for kind, row in rates.iterrows():
        having = [
            ok for ok, ks in seeds if (kind in ks if kind != "(none)" else not ks)
        ]
        assert (row["seeds"], row["failed"]) == (len(having), having.count(False))
        assert math.isclose(row["failure_rate"], having.count(False) / len(having))


def test_a_run_of_user_services_explores_from_the_broker_wire(tmp_path: Path) -> None:
    # No fleet records, only the broker's wire record: publishes and deliveries still come out,
    # with latency from the publisher's PUBLISH to the subscriber's PUBACK (as wire_latency measures).
    wire = [
        {"t": 0.0, "event": "mqtt", "type": "connect", "dir": "out", "client": "sub", "clean": True, "keepalive": 5, "session_present": False},
        {"t": 0.0, "event": "mqtt", "type": "connect", "dir": "out", "client": "pub", "clean": True, "keepalive": 5, "session_present": False},
        {"t": 0.1, "event": "mqtt", "type": "SUBSCRIBE", "dir": "in", "client": "sub", "pid": 1, "filters": [["r/#", 1]]},
        {"t": 0.1, "event": "mqtt", "type": "SUBACK", "dir": "out", "client": "sub", "pid": 1, "codes": [1]},
        {"t": 1.0, "event": "mqtt", "type": "PUBLISH", "dir": "in", "client": "pub", "pid": 1, "qos": 1, "dup": False, "retain": False, "topic": "r/a", "size": 1, "hash": "aa"},
        {"t": 1.0, "event": "mqtt", "type": "PUBACK", "dir": "out", "client": "pub", "pid": 1},
        {"t": 1.004, "event": "mqtt", "type": "PUBLISH", "dir": "out", "client": "sub", "pid": 1, "qos": 1, "dup": False, "retain": False, "topic": "r/a", "size": 1, "hash": "aa"},
        {"t": 1.006, "event": "mqtt", "type": "PUBACK", "dir": "in", "client": "sub", "pid": 1},
    ]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in wire))
    (tmp_path / "report.json").write_text(json.dumps({"scenario": "mine", "mode": "sim", "seed": 1, "checks": [], "ok": True}))
    run = load_run(tmp_path)
    assert list(run.publishes["topic"]) == ["r/a"]
    assert list(run.deliveries["client"]) == ["sub"]
    assert run.deliveries["latency_ms"].iloc[0] == pytest.approx(6.0)
