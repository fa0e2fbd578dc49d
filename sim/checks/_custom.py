"""User checks: ``[[checks.custom]] entry = "pkg.checks:fn"``, a function of the run's history.

    def every_reading_counted(h: CheckInput) -> bool | tuple[bool, str] | Verdict | list[Verdict] | dict:
        pubs = h.mqtt[(h.mqtt.type == "PUBLISH") & (h.mqtt.dir == "in")]
        ...

It gets a `CheckInput`: ``records`` (the raw history, a list of dicts), ``frame`` (all of it
as a pandas DataFrame), ``mqtt`` (only the broker's wire records), ``facts``. It returns a
bool (named after the function, or ``name`` in the scenario), ``(ok, detail)``, a `Verdict`,
a list of them, or ``{name: bool | (ok, detail)}``. A check that raises is a failed verdict
naming the exception; the run goes on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sim.checks._model import CheckConfig, CheckResult, Record, RunFacts

Verdict = CheckResult


@dataclass
class CheckInput:
    records: list[Record]
    facts: RunFacts

    @functools.cached_property
    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.records)

    @functools.cached_property
    def mqtt(self) -> Any:
        import pandas as pd

        cols = ["t", "event", "type", "dir", "client", "topic", "qos", "pid", "dup", "retain", "size", "hash"]
        rows = [r for r in self.records if r.get("event") == "mqtt"]
        frame = pd.DataFrame(rows)
        for c in cols:
            if c not in frame.columns:
                frame[c] = None
        return frame


def _verdicts(name: str, got: Any, prefix: str | None = None) -> list[CheckResult]:
    if isinstance(got, CheckResult):
        return [got]
    if isinstance(got, bool):
        return [CheckResult(name, got, "held" if got else "did not hold")]
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], bool):
        return [CheckResult(name, got[0], str(got[1]))]
    if isinstance(got, dict):
        return [v for k, g in got.items() for v in _verdicts(f"{prefix}:{k}" if prefix else str(k), g)]
    if isinstance(got, list) and all(isinstance(g, CheckResult) for g in got):
        return list(got)
    return [CheckResult(name, False, f"returned {type(got).__name__}; return a bool, (ok, detail), a Verdict, a list of them, or a dict of them")]


def run_custom_checks(records: list[Record], cfg: CheckConfig, facts: RunFacts, paths: list[str]) -> list[CheckResult]:
    from sim.errors import BadInput
    from sim.services import resolve

    data = CheckInput(records, facts)
    out: list[CheckResult] = []
    for c in cfg.custom:
        fn_name = c.entry.split(":", 1)[1]
        name = c.name or fn_name
        try:
            fn = resolve(c.entry, f"checks.custom {c.entry!r}", paths)
            got = fn(data)
        except BadInput as exc:
            out.append(CheckResult(name, False, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a user's check that breaks fails, the run goes on
            out.append(CheckResult(name, False, f"{c.entry} raised {type(exc).__name__}: {exc}"))
            continue
        out.extend(_verdicts(name, got, c.name))
    return out
