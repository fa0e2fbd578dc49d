"""The bad-input corpus through the `squall` CLI: exit 2, one line naming the problem, no traceback.

Most cases run in this process through `sim.cli.main` (the console entry point itself, with
its exit captured), so the corpus costs seconds; a representative few run as real `squall`
subprocesses with a timeout, so the contract also holds for what a user's shell sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _badinput_corpus import CASES, Case, prepare

from sim.cli import main

# One per kind of trouble: undecodable, too deep, would hang, bad option, closed broker, damaged trace.
IN_SUBPROCESS = ["non-utf8", "deep-arrays", "duration-huge", "fault-no-kind", "run-out-under-a-file", "demo-seconds-inf", "chaos-broker-closed", "chaos-toxiproxy-closed", "trace-truncated", "report-a-list"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A real, passing sim run directory; each run-dir case damages its own copy."""
    out = tmp_path_factory.mktemp("base") / "run"
    with pytest.raises(SystemExit) as done:
        main(["sim", "run", "smoke", "--duration", "20", "--out", str(out)])
    assert done.value.code == 0
    return out


def _setup(case: Case, tmp_path: Path, base_run: Path | None) -> tuple[list[str], dict[str, str]]:
    run = None
    if case.needs_run:
        assert base_run is not None
        run = tmp_path / "run"
        shutil.copytree(base_run, run)
    return prepare(case, tmp_path, run)


def assert_one_line_error(case: Case, code: object, out: str, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{case.id}: exit {code}\n{err[-2000:]}"
    assert "Traceback" not in out + err
    assert len(lines) == 1, f"{case.id}: {len(lines)} lines on stderr:\n{err[-2000:]}"
    assert lines[0].startswith("squall: error: "), lines[0]
    assert case.expect in lines[0], f"{case.id}: {case.expect!r} not in {lines[0]!r}"
    assert len(lines[0]) < 1000, f"{case.id}: an error line of {len(lines[0])} characters"


@pytest.fixture
def run_if_needed(request, tmp_path_factory):
    return lambda case: request.getfixturevalue("base_run") if case.needs_run else None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.category}-{c.id}")
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys, run_if_needed):
    argv, env = _setup(case, tmp_path, run_if_needed(case))
    monkeypatch.chdir(tmp_path)  # default output folders land here, not in the checkout
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as done:
        main(argv)
    captured = capsys.readouterr()
    assert_one_line_error(case, done.value.code, captured.out, captured.err)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", [c for c in CASES if c.id in IN_SUBPROCESS], ids=lambda c: c.id)
def test_bad_input_in_a_real_squall_process(case, tmp_path, run_if_needed):
    argv, env = _setup(case, tmp_path, run_if_needed(case))
    environ = {k: v for k, v in os.environ.items() if k != "TOXIPROXY_URL"} | env
    done = subprocess.run([sys.executable, "-m", "sim.cli", *argv], capture_output=True, text=True, errors="replace", timeout=120, cwd=tmp_path, env=environ)
    assert_one_line_error(case, done.returncode, done.stdout, done.stderr)


def test_every_category_has_cases_and_ids_are_unique():
    assert {c.category for c in CASES} == {"scenario", "cli", "run dir"}
    assert len({c.id for c in CASES}) == len(CASES)
    assert set(IN_SUBPROCESS) <= {c.id for c in CASES}
