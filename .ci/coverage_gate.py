"""Coverage floor for the core modules of sim and system, after `coverage run -m pytest`.

`coverage report` enforces the overall floor (pyproject's ``fail_under``, 80%); this enforces
90% on the core modules of each package, taken together. In sim: what every run goes through
(the kernel, the fault vocabulary, scenarios, the runner, history, checks, reports; not the
CLI, sweep, replay, shrink or bench tools). In system: the envelope, the observer, the bus
and the broker. Each module's own figure is printed and those under 90% are marked, so the
next test goes where it helps. Run from the repository root after `coverage combine`; exit 1
when a package's core is under the floor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import coverage

FLOOR = 90.0
CORE = {
    "sim": [
        "sim/_loop.py",
        "sim/_world.py",
        "sim/_network.py",
        "sim/_links.py",
        "sim/_toxic_pipe.py",
        "sim/_pins.py",
        "sim/_rng.py",
        "sim/_trace.py",
        "sim/faults/*.py",
        "sim/scenario.py",
        "sim/runner.py",
        "sim/history.py",
        "sim/checks/*.py",
        "sim/report.py",
    ],
    "system": [
        "system/envelope.py",
        "system/observer.py",
        "system/bus/*.py",
        "system/broker/embedded.py",
        "system/broker/_fixes.py",
        "system/broker/_handler.py",
        "system/broker/_validate.py",
        "system/broker/_plugins.py",
    ],
}


def counts(cov: coverage.Coverage, path: Path) -> tuple[int, int]:
    """(statements, missed) of one file; a file no test imported counts as all missed."""
    _, statements, _, missing, _ = cov.analysis2(str(path.resolve()))
    return len(statements), len(missing)


def main() -> int:
    root = Path.cwd()
    cov = coverage.Coverage()
    cov.load()
    failed = []
    for package, patterns in CORE.items():
        files = sorted({p for pattern in patterns for p in root.glob(pattern)})
        if not files:
            print(
                f"coverage gate: no {package} core modules under {root}; run it from the repository root",
                file=sys.stderr,
            )
            return 2
        print(f"{package} core modules:")
        total_statements = total_missed = 0
        for path in files:
            statements, missed = counts(cov, path)
            total_statements += statements
            total_missed += missed
            pct = 100.0 * (statements - missed) / statements if statements else 100.0
            mark = "" if pct >= FLOOR else f"   (under {FLOOR:g}%)"
            print(
                f"  {path.relative_to(root)!s:36} {statements:5} stmts {missed:4} missed {pct:6.1f}%{mark}"
            )
        together = (
            100.0 * (total_statements - total_missed) / total_statements
            if total_statements
            else 100.0
        )
        print(
            f"  {'together':36} {total_statements:5} stmts {total_missed:4} missed {together:6.1f}%  (floor {FLOOR:g}%)"
        )
        if together < FLOOR:
            failed.append(f"{package} core {together:.1f}%")
    if failed:
        print(
            f"coverage gate: under {FLOOR:g}%: {', '.join(failed)}; add tests for the modules marked above",
            file=sys.stderr,
        )
        return 1
    print(f"coverage gate: sim and system core modules at or above {FLOOR:g}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
