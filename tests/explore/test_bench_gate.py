"""`squall bench --check`: ratios against the committed baseline (the comparison, and the CLI on quick figures)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.bench import FIGURES
from sim.bench._check import (
    ATTEMPTS,
    DEFAULT_BASELINE,
    TOLERANCE,
    baseline_doc,
    best_of,
    compare,
    gated,
    load_baseline,
)
from sim.cli import main
from sim.errors import BadInput

positive = st.floats(0.01, 1e6, allow_nan=False, allow_infinity=False)


@given(base=positive, factor=st.floats(0.0, 3.0, allow_nan=False))
def test_a_ratio_fails_exactly_when_it_falls_more_than_the_tolerance(
    base: float, factor: float
) -> None:
    [row] = compare({"f": {"a_over_b": base}}, {"f": {"a_over_b": base * factor}})
    assert row.failed == (base * factor < base * (1 - TOLERANCE))
    assert (row.status == "improved") == (base * factor > base * (1 + TOLERANCE))


def test_only_ratios_are_gated_and_missing_or_new_ones_are_reported() -> None:
    baseline = {
        "burst": {"sim_over_real": 1.2, "gone_over_x": 2.0},
        "notrun": {"x_over_y": 1.0},
    }
    figures = {
        "burst": {
            "sim_over_real": 1.19,
            "sim_msgs_per_wall_s": 10.0,
            "bench_wall_seconds": 3.0,
            "new_over_old": 1.0,
        }
    }
    rows = {(r.figure, r.measure): r for r in compare(baseline, figures)}
    assert set(rows) == {
        ("burst", "sim_over_real"),
        ("burst", "gone_over_x"),
        ("burst", "new_over_old"),
    }
    assert rows["burst", "sim_over_real"].status == "ok"
    assert (
        rows["burst", "gone_over_x"].status == "missing"
        and rows["burst", "gone_over_x"].failed
    )
    assert (
        rows["burst", "new_over_old"].status == "new"
        and not rows["burst", "new_over_old"].failed
    )
    assert (
        gated("virtual_per_wall")
        and gated("proxy_over_direct_amqtt")
        and not gated("wall_seconds")
    )


def test_updating_one_figure_keeps_the_others() -> None:
    previous = {
        "tolerance": 0.15,
        "figures": {"a": {"x_over_y": 1.0}, "b": {"p_over_q": 2.0}},
    }
    doc = baseline_doc(
        {"a": {"x_over_y": 1.5, "wall_seconds": 9.0}}, quick=False, previous=previous
    )
    assert doc["figures"] == {"a": {"x_over_y": 1.5}, "b": {"p_over_q": 2.0}}
    assert doc["tolerance"] == 0.15


def test_a_figure_measured_twice_keeps_each_ratio_at_its_best() -> None:
    a = {
        "burst": {"sim_over_real": 0.8, "wall_seconds": 3.0},
        "dev": {"virtual_per_wall": 300.0},
    }
    b = {"burst": {"sim_over_real": 1.1, "wall_seconds": 5.0}}
    assert best_of(a, b) == {
        "burst": {"sim_over_real": 1.1, "wall_seconds": 3.0},
        "dev": {"virtual_per_wall": 300.0},
    }


def test_the_committed_baseline_covers_every_figure_with_ratios_only() -> None:
    doc = load_baseline(DEFAULT_BASELINE)
    assert doc["quick"] is False
    assert set(doc["figures"]) <= set(FIGURES)
    for measures in doc["figures"].values():
        assert measures and all(gated(k) and v > 0 for k, v in measures.items())


def _squall(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


@pytest.fixture(autouse=True)
def _wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "COLUMNS", "200"
    )  # rich would otherwise squeeze the table for a pipe


def test_check_fails_on_a_regressed_ratio_and_passes_on_an_improved_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "baseline.json"
    quick = ["bench", "--only", "devices_10", "--quick", "--baseline", str(path)]
    code, out, _ = _squall([*quick, "--update-baseline"], capsys)
    assert code == 0 and "bench baseline written" in out
    doc = json.loads(path.read_text())
    measured = doc["figures"]["devices_10"]["virtual_per_wall"]
    assert doc["quick"] is True and measured > 0

    doc["figures"]["devices_10"]["virtual_per_wall"] = (
        measured * 100
    )  # this machine got 100x slower
    path.write_text(json.dumps(doc))
    code, out, _ = _squall(
        [*quick, "--check", "--json", str(tmp_path / "figures.json")], capsys
    )
    assert code == 1
    assert f"attempt {ATTEMPTS} of {ATTEMPTS}" in out  # measured again before it counts
    assert "REGRESSED" in out and "devices_10.virtual_per_wall fell" in out
    assert (
        json.loads((tmp_path / "figures.json").read_text())["figures"]["devices_10"][
            "virtual_per_wall"
        ]
        > 0
    )
    assert f"squall bench --update-baseline --baseline {path}" in out

    doc["figures"]["devices_10"]["virtual_per_wall"] = measured / 100
    path.write_text(json.dumps(doc))
    code, out, _ = _squall([*quick, "--check"], capsys)
    assert (
        code == 0 and "improved" in out and "0 failed" in out and "attempt" not in out
    )


def test_check_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = _squall(
        ["bench", "--check", "--quick", "--baseline", str(missing)], capsys
    )
    assert (
        code == 2
        and err.strip()
        == f"squall: error: bench baseline {missing} not found; record one with squall bench --update-baseline --baseline {missing}"
    )

    code, _, err = _squall(["bench", "--check", "--update-baseline"], capsys)
    assert code == 2 and "choose one" in err

    for mode in (
        "--check",
        "--update-baseline",
    ):  # the committed baseline is a full run: no quick figures in it
        code, _, err = _squall(
            ["bench", mode, "--quick", "--only", "devices_10"], capsys
        )
        assert (
            code == 2
            and "was recorded without --quick" in err
            and len(err.strip().splitlines()) == 1
        )


@given(
    rounds=st.lists(st.tuples(positive, positive), min_size=1, max_size=15),
    slow=st.floats(0.1, 1.0, allow_nan=False),
)
def test_a_paired_ratio_ignores_how_fast_the_machine_was_in_each_round(rounds: list[tuple[float, float]], slow: float) -> None:
    from sim.bench._paired import paired

    true_ratio = 1.3
    # Round i runs both sides at that round's machine speed; the ratio within it is exact.
    speeds = [a for a, _ in rounds]
    numerators = [true_ratio * s for s in speeds]
    assert paired(numerators, speeds) == pytest.approx(true_ratio, abs=1e-3)
    # A neighbour spoiling a minority of rounds (one side only) does not move the median.
    if len(rounds) >= 3:
        spoiled = [n * slow if i < (len(rounds) - 1) // 2 else n for i, n in enumerate(numerators)]
        assert paired(spoiled, speeds) == pytest.approx(true_ratio, abs=1e-3)


def test_a_paired_ratio_needs_matching_rounds() -> None:
    from sim.bench._paired import paired

    with pytest.raises(ValueError, match="as many numerators as denominators"):
        paired([1.0, 2.0], [1.0])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind (.ci/run installs it)")
def test_the_instructions_figure_repeats_where_wall_clocks_drift() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sim.bench.instructions import instructions

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: instructions("sim", 2), range(2))
    assert first > 1e8
    assert abs(first - second) / first < 1e-4  # wall-clock runs of it differ by a third here


def test_the_instructions_figure_without_valgrind_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sim.bench.instructions as figure

    monkeypatch.setattr(figure.shutil, "which", lambda _name: None)
    with pytest.raises(BadInput, match=r"needs valgrind: install it \(Debian package valgrind\)"):
        figure.figure(quick=True)
