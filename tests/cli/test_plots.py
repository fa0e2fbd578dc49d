"""The report's plots read as a person expects: plain numbers, named fault windows, lost messages marked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.ticker import ScalarFormatter

from sim.plots import NO_RECONNECTS, latency_figure, reconnects_figure, timeline_figure
from sim.report import markdown
from sim.runner import run_scenario
from sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "sim" / "scenarios"


def _drawn(fig):
    FigureCanvasAgg(fig).draw()  # tick labels and offset texts exist only once drawn
    return fig


def _tick_labels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


@pytest.fixture(scope="module")
def clean_run():
    outcome = run_scenario(load_scenario("smoke").model_copy(update={"duration": 20.0}), 1, keep_trace=False, plots=False)
    assert outcome.ok and outcome.report["metrics"]["reconnects"] == 0
    return outcome.history.records, outcome.report


@pytest.fixture(scope="module")
def lossy_run(tmp_path_factory):
    # Stock amqtt behind a partition loses QoS 1 messages from t=14s; 60 virtual seconds hold both.
    text = re.sub(r"(?m)^duration = \d+", "duration = 60", (SCENARIOS / "amqtt-qos1-loss.toml").read_text(), count=1)
    path = tmp_path_factory.mktemp("lossy") / "lossy.toml"
    path.write_text(text)
    outcome = run_scenario(load_scenario(str(path)), 1, keep_trace=False, plots=False)
    assert outcome.report["metrics"]["lost"] > 0 and outcome.report["faults"]
    return outcome.history.records, outcome.report


def test_a_flat_latency_series_has_plain_ticks_and_no_offset(clean_run) -> None:
    history, report = clean_run
    for fig, axis in ((timeline_figure(history, report), "yaxis"), (latency_figure(history, report), "xaxis")):
        ax = _drawn(fig).axes[-1]
        a = getattr(ax, axis)
        fmt = a.get_major_formatter()
        assert isinstance(fmt, ScalarFormatter) and fmt.get_useOffset() is False
        assert a.get_offset_text().get_text() == ""
        labels = _tick_labels(a)
        assert labels and all(re.fullmatch(r"−?\d+(\.\d+)?", t) for t in labels), labels  # no 1e-12, no 2x10^0
        assert "2" in {t.rstrip("0").rstrip(".") for t in labels}  # 2 ms reads as 2


def test_a_clean_run_says_there_were_no_reconnects(clean_run) -> None:
    history, report = clean_run
    fig = reconnects_figure(history, report)
    assert NO_RECONNECTS in [t.get_text() for t in fig.axes[0].texts]
    md = markdown(report)
    assert "Reconnects: none in this run" in md and "![reconnects]" not in md


def test_each_fault_window_is_labelled_with_its_fault_and_host(lossy_run) -> None:
    history, report = lossy_run
    fig = timeline_figure(history, report)
    labels = [t.get_text().strip() for t in fig.axes[0].texts if t.get_gid() == "fault-label"]
    assert labels == [f["label"] for f in report["faults"]]
    assert any("sensor-r1-1" in label for label in labels)  # the host the partition cut off


def test_lost_messages_are_marked_on_the_timeline_as_the_check_counts_them(lossy_run) -> None:
    history, report = lossy_run
    fig = timeline_figure(history, report)
    lost = [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == "lost"]
    assert len(lost) == 1
    assert len(lost[0].get_xdata()) == report["metrics"]["lost"]
    assert f"lost ({report['metrics']['lost']}" in lost[0].get_label()


def test_a_lossless_run_draws_no_lost_markers(clean_run) -> None:
    history, report = clean_run
    assert not [line for ax in timeline_figure(history, report).axes for line in ax.get_lines() if line.get_gid() == "lost"]
