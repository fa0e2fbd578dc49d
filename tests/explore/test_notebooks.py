"""Both notebooks run top to bottom on a fresh kernel, with no network and no manual steps,
by the command tests/README.md gives a newcomer (`jupyter nbconvert --execute`, from the [test] extra)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _execute(name: str, out_dir: Path) -> nbformat.NotebookNode:
    # The notebooks' own asserts are the checks: a failing cell fails the command.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(NOTEBOOKS / name),
         "--output-dir", str(out_dir), "--ExecutePreprocessor.timeout=240"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return nbformat.read(out_dir / name, as_version=4)


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[str]:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "text" and out.get("output_type") == "stream":
                found.append(out["text"])
            elif kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


@pytest.mark.slow
def test_explore_notebook_runs_and_shows_plots_replay_and_shrink(
    tmp_path: Path,
) -> None:
    nb = _execute("explore.ipynb", tmp_path)
    text = "".join(_outputs(nb, "text"))
    assert "replayed: same trace" in text
    assert "failing checks: qos1_loss" in text
    assert (
        "crash broker" in text
    )  # the shrunk schedule keeps the crash that loses the messages
    assert (
        len(_outputs(nb, "image/png")) == 4
    )  # timeline, latency quantiles, flow, the failing run's timeline


@pytest.mark.slow
def test_sweep_notebook_runs_and_shows_failure_rates_and_p99(tmp_path: Path) -> None:
    nb = _execute("sweep.ipynb", tmp_path)
    text = "".join(_outputs(nb, "text"))
    assert "squall: 0 of 5 seeds failed" in text
    assert "replay: squall sim run" in text
    html = "".join(_outputs(nb, "text/html"))
    assert "failure_rate" in html
    assert len(_outputs(nb, "image/png")) >= 2
