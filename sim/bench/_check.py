"""`squall bench --check`: this run's ratio figures against the committed baseline.

Only ratios are gated (``*_over_*`` and ``*_per_wall`` measures): each compares two
measurements taken in the same run, so it holds across machines and load far better than an
absolute figure does. Higher is better for every one of them, and a ratio more than the
baseline's tolerance (10%) below its baseline value fails the check (exit 1).

Timing noise on a shared machine mostly pulls figures down, so a ratio that looks regressed
is measured again (``ATTEMPTS`` in all) and its best value counts: a real regression stays
down every time, a busy moment does not.

`squall bench --update-baseline` writes the ratios of this run as the new baseline (with
``--only``, just those figures are replaced).
"""

from __future__ import annotations

import json
import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import BadInput

DEFAULT_BASELINE = Path(__file__).with_name("baseline.json")
TOLERANCE = 0.10
ATTEMPTS = 3  # measurements of a figure before a regression counts
Figures = Mapping[str, Mapping[str, Any]]


def gated(measure: str) -> bool:
    """Is this measure a ratio the gate compares?"""
    return "_over_" in measure or measure.endswith("_per_wall")


@dataclass(frozen=True)
class Row:
    figure: str
    measure: str
    baseline: float | None
    value: float | None
    status: str  # ok | regressed | improved | missing (baseline has it, the run does not) | new

    @property
    def change(self) -> float | None:
        """Relative change from the baseline (+0.05 is 5% better)."""
        if self.baseline is None or self.value is None or self.baseline == 0:
            return None
        return self.value / self.baseline - 1.0

    @property
    def failed(self) -> bool:
        return self.status in ("regressed", "missing")


def compare(
    baseline: Figures, figures: Figures, tolerance: float = TOLERANCE
) -> list[Row]:
    """One row per gated measure of every figure that ran (figures that did not run are skipped)."""
    rows = []
    for name in sorted(figures):
        measured = {k: float(v) for k, v in figures[name].items() if gated(k)}
        expected = {k: float(v) for k, v in baseline.get(name, {}).items()}
        for measure in sorted(set(measured) | set(expected)):
            base, value = expected.get(measure), measured.get(measure)
            if base is None:
                status = "new"
            elif value is None:
                status = "missing"
            elif value < base * (1.0 - tolerance):
                status = "regressed"
            elif value > base * (1.0 + tolerance):
                status = "improved"
            else:
                status = "ok"
            rows.append(Row(name, measure, base, value, status))
    return rows


def best_of(a: Figures, b: Figures) -> dict[str, dict[str, Any]]:
    """Both runs' figures, each gated ratio at its better (higher) value."""
    out = {name: dict(measures) for name, measures in a.items()}
    for name, measures in b.items():
        mine = out.setdefault(name, {})
        for key, value in measures.items():
            mine[key] = (
                max(mine[key], value)
                if gated(key) and key in mine
                else mine.get(key, value)
            )
    return out


def load_baseline(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BadInput(
            f"bench baseline {path} not found; record one with squall bench --update-baseline --baseline {path}"
        )
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"bench baseline {path} is not JSON ({exc.msg}); record it again with squall bench --update-baseline"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict):
        raise BadInput(
            f"bench baseline {path} has no 'figures' table; record it again with squall bench --update-baseline"
        )
    return doc


def baseline_doc(
    figures: Figures, quick: bool, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The baseline file's content: the gated measures of these figures (merged over previous ones)."""
    kept = dict(previous["figures"]) if previous else {}
    for name, measures in figures.items():
        ratios = {k: v for k, v in measures.items() if gated(k)}
        if ratios:
            kept[name] = dict(sorted(ratios.items()))
    return {
        "tolerance": float(previous.get("tolerance", TOLERANCE))
        if previous
        else TOLERANCE,
        "quick": quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "figures": dict(sorted(kept.items())),
    }


def render(rows: list[Row], tolerance: float) -> Any:
    from rich.table import Table

    bad = sum(r.failed for r in rows)
    table = Table(
        title=f"squall bench --check: {len(rows) - bad} ok, {bad} failed (tolerance {tolerance:.0%}, higher is better)"
    )
    for col in ("figure", "measure", "baseline", "this run", "change", "result"):
        table.add_column(
            col,
            justify="right" if col in ("baseline", "this run", "change") else "left",
        )
    style = {
        "regressed": "[red]REGRESSED[/red]",
        "missing": "[red]MISSING[/red]",
        "improved": "[green]improved[/green]",
        "new": "new (not in baseline)",
        "ok": "ok",
    }
    for r in rows:
        table.add_row(
            r.figure,
            r.measure,
            "-" if r.baseline is None else f"{r.baseline:,.3f}",
            "-" if r.value is None else f"{r.value:,.3f}",
            "-" if r.change is None else f"{r.change:+.1%}",
            style[r.status],
        )
    return table


def run_check(
    *,
    baseline: Path | None,
    json_out: Path | None,
    only: str | None,
    quick: bool,
    update: bool,
) -> int:
    """Run the bench, then compare with (or, with ``update``, rewrite) the baseline; the exit code."""
    from rich.console import Console

    from sim.bench import run_bench

    path = baseline or DEFAULT_BASELINE
    previous = load_baseline(path) if (not update or path.is_file()) else None
    if previous is not None and bool(previous.get("quick", False)) != quick:
        recorded = "with --quick" if previous.get("quick") else "without --quick"
        raise BadInput(
            f"bench baseline {path} was recorded {recorded}: run the same way, or keep another baseline with --baseline FILE"
        )
    console = Console()

    def measure(names: str | None) -> dict[str, dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="squall-bench-") as tmp:
            out = Path(tmp) / "bench.json"
            run_bench(json_out=out, only=names, quick=quick)
            return json.loads(out.read_text())["figures"]

    def save(figures: dict[str, dict[str, Any]]) -> None:
        if json_out is not None:
            doc = {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "quick": quick,
                "figures": figures,
            }
            json_out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    figures = measure(only)
    if update:
        for attempt in range(
            2, ATTEMPTS + 1
        ):  # the baseline is a best-of too, as the checks are
            console.print(
                f"measuring again for the baseline (attempt {attempt} of {ATTEMPTS}) ..."
            )
            figures = best_of(figures, measure(only))
        save(figures)
        doc = baseline_doc(figures, quick, previous)
        path.write_text(json.dumps(doc, indent=2) + "\n")
        console.print(
            f"bench baseline written: {path} ({sum(len(v) for v in doc['figures'].values())} ratios)"
        )
        return 0
    assert previous is not None
    tolerance = float(previous.get("tolerance", TOLERANCE))
    rows = compare(previous["figures"], figures, tolerance)
    for attempt in range(2, ATTEMPTS + 1):
        suspects = sorted({r.figure for r in rows if r.status == "regressed"})
        if not suspects:
            break
        console.print(
            f"measuring {', '.join(suspects)} again to confirm (attempt {attempt} of {ATTEMPTS}) ..."
        )
        figures = best_of(figures, measure(",".join(suspects)))
        rows = compare(previous["figures"], figures, tolerance)
    save(figures)
    console.print(render(rows, tolerance))
    failed = [r for r in rows if r.failed]
    for r in failed:
        what = (
            "is gone from this run"
            if r.status == "missing"
            else f"fell {-(r.change or 0):.1%} below its baseline"
        )
        console.print(f"[red]{r.figure}.{r.measure}[/red] {what}")
    if failed:
        console.print(
            f"if the change is intended, record a new baseline: squall bench --update-baseline --baseline {path}"
        )
    return 1 if failed else 0
