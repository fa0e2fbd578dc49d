"""Memory: the process does not grow without bound."""

from __future__ import annotations

from sim.checks._index import Index
from sim.checks._model import CheckResult, RunFacts

def check_memory(ix: Index, facts: RunFacts) -> CheckResult:
    samples = [r for r in ix.by_event.get("sample", []) if "rss_mb" in r]
    if len(samples) < 2:
        return CheckResult.skip("memory", "not measured: no memory samples in this run")
    settle = samples[len(samples) // 4]  # growth after warm-up, not from an empty process
    growth = samples[-1]["rss_mb"] - settle["rss_mb"]
    limit = ix.cfg.max_memory_growth_mb
    ok = limit is None or growth <= limit
    return CheckResult("memory", ok, f"RSS grew {growth:.1f} MB after warm-up" + (f" (limit {limit:g} MB)" if limit else ""), None if ok else samples[-1], None if ok else samples[-1]["t"])

