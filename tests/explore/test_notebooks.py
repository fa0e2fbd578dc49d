"""Both notebooks run top to bottom on a fresh kernel, with no network and no manual steps."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # The notebooks' own asserts are the checks: a failing cell raises CellExecutionError here.
    NotebookClient(
        nb,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return nb


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
