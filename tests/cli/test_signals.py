"""Ctrl-C stops squall cleanly: exit 130, no traceback, and a sweep keeps what it finished."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import psutil
import pytest

TERMINAL = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "NO_COLOR": "1"}
SEEDS = 400  # far more than can finish before the signal: the sweep is interrupted, not done


def _proxies(pid: int) -> list[psutil.Process]:
    """The chaos proxy processes under ``pid``."""
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if "chaos.proxy._child" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:  # exited while we looked
            pass
    return found


@pytest.mark.parametrize(("jobs", "sig"), [(1, signal.SIGINT), (2, signal.SIGINT), (2, signal.SIGTERM)])
def test_ctrl_c_or_sigterm_on_a_sweep_stops_the_workers_writes_a_partial_summary_and_exits_128_plus_the_signal(tmp_path: Path, start_squall, jobs: int, sig: signal.Signals) -> None:
    out = tmp_path / "sweep"
    # A terminal-like stderr so the progress bar draws: it counts the seeds the sweep has taken in.
    run = start_squall("sim", "sweep", "smoke", "--seeds", f"1-{SEEDS}", "--jobs", str(jobs), "--out", str(out), **TERMINAL)
    run.wait_until(lambda: re.search(rf"\b[1-9]\d*/{SEEDS}\b", run.err) is not None, "a first finished seed")
    code, stdout, stderr = run.ctrl_c(sig=sig)
    assert code == 128 + sig.value, stderr[-2000:]  # 130 for Ctrl-C, 143 for SIGTERM (a CI job cancelled)
    assert "Traceback" not in stderr + stdout
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["partial"] is True and summary["interrupted_by"] == sig.name
    done = summary["seeds_done"]
    assert done and len(done) < SEEDS
    assert [r["seed"] for r in summary["runs"]] == done
    assert all((out / f"seed-{s}" / "report.json").exists() for s in done)
    assert f"interrupted ({sig.name})" in stderr and f"of {SEEDS} seeds done" in stderr
    assert run.group_gone(), "a sweep worker outlived the interrupted sweep"


def test_a_finished_sweep_says_it_is_complete(tmp_path: Path) -> None:
    from sim.sweep import sweep

    summary = sweep("smoke", [1], tmp_path, jobs=1, progress=False)
    on_disk = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["partial"] is False and on_disk["partial"] is False
    assert on_disk["seeds_done"] == [1]


def test_ctrl_c_on_a_sim_run_exits_130_without_a_traceback(start_squall) -> None:
    # A terminal-like stderr so the progress bar draws: it shows the run has really started.
    run = start_squall("sim", "run", "soak", "--out", "run", **TERMINAL)
    run.wait_until(lambda: re.search(r"[1-9][\d,]* of 86,400 virtual s", run.err) is not None, "virtual time passing")
    code, stdout, stderr = run.ctrl_c()
    assert code == 130
    assert "Traceback" not in stderr + stdout


def test_ctrl_c_on_a_chaos_run_exits_130_without_a_traceback_and_leaves_no_proxy(start_squall) -> None:
    run = start_squall("chaos", "run", "smoke", "--duration", "60", "--out", "run", **TERMINAL)
    run.wait_until(lambda: re.search(r"[1-9][\d,]* published", run.err) is not None, "the fleet publishing through the proxy")
    proxies = _proxies(run.proc.pid)
    code, stdout, stderr = run.ctrl_c()
    assert code == 130, stderr[-2000:]
    assert "Traceback" not in stderr + stdout
    assert "internal error" not in stderr
    assert proxies, "the chaos run had no proxy process"
    _, alive = psutil.wait_procs(proxies, timeout=30)
    assert not alive, "the proxy outlived the interrupted chaos run"


def test_ctrl_c_on_a_nightly_still_writes_an_index_of_what_ran(tmp_path: Path, start_squall) -> None:
    run = start_squall("chaos", "nightly", "--out", "nightly", "--duration", "60", "--scenarios", "smoke", "--seeds", "1-2", "--sweep-scenario", "smoke", **TERMINAL)
    run.wait_until(lambda: (tmp_path / "nightly").is_dir() and re.search(r"nightly chaos smoke", run.err) is not None, "the first chaos run")
    # The proxy process is up once the chaos run has started its fleet.
    run.wait_until(lambda: bool(_proxies(run.proc.pid)), "the chaos proxy")
    code, stdout, stderr = run.ctrl_c()
    assert code == 130, stderr[-2000:]
    assert "Traceback" not in stderr + stdout
    index = json.loads((tmp_path / "nightly" / "index.json").read_text())
    assert index["ok"] is False and index["interrupted_by"] == "SIGINT"
    assert "INTERRUPTED (SIGINT)" in (tmp_path / "nightly" / "index.md").read_text()
