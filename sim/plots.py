"""Plots a person would rather see than read: timeline with fault windows, latency, reconnects."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

# Bare Figures, never pyplot: no global backend switch (Jupyter keeps its inline plots), no
# display needed on CI machines or in sweep workers, nothing left open between runs.
from matplotlib.figure import Figure

from sim.checks import quantile, topic_matches

_FAULT_COLOURS = {"toxic": "tab:orange", "partition": "tab:red", "crash": "tab:purple", "down": "tab:brown", "skew": "tab:olive"}


def shade_faults(ax: Any, faults: Iterable[dict[str, Any]], end: float) -> None:
    seen = set()
    for f in faults:
        until = f["until"] if f["until"] is not None else end
        label = f["kind"] if f["kind"] not in seen else None
        seen.add(f["kind"])
        ax.axvspan(f["at"], until, color=_FAULT_COLOURS.get(f["kind"], "grey"), alpha=0.18, label=label)


def _buckets(end: float) -> float:
    return max(1.0, round(end / 120.0))


def plot_run(out: Path, history: list[dict[str, Any]], report: dict[str, Any]) -> None:
    end = float(report["virtual_seconds"]) or 1.0
    width = _buckets(end)
    judged = report.get("judged", {})
    topics, receivers = judged.get("topics", "#"), set(judged.get("receivers", []))
    if not any(r.get("event") == "publish" for r in history) and any(r.get("event") == "mqtt" for r in history):
        from sim.checks._wire import as_events

        history, receivers = as_events(history), set()  # user services: drawn from the broker's wire record
    published = {r["id"]: r.get("queued", r["t"]) for r in history if r.get("event") == "publish" and r.get("id") and topic_matches(topics, r.get("topic", ""))}
    sent: dict[int, int] = defaultdict(int)
    got: dict[int, int] = defaultdict(int)
    lat: dict[int, list[float]] = defaultdict(list)
    for r in history:
        if r.get("event") == "publish" and r.get("id") in published:
            sent[int(r["t"] // width)] += 1
        elif r.get("event") == "deliver" and r.get("id") in published and (not receivers or r.get("client") in receivers):
            b = int(r["t"] // width)
            got[b] += 1
            lat[b].append((r["t"] - published[r["id"]]) * 1000.0)
    xs = [i * width for i in range(int(end // width) + 1)]

    fig = Figure(figsize=(11, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.plot(xs, [sent[i] / width for i in range(len(xs))], label="published/s")
    ax1.plot(xs, [got[i] / width for i in range(len(xs))], label="delivered/s")
    shade_faults(ax1, report.get("faults", []), end)
    ax1.set_ylabel("messages / s")
    ax1.legend(loc="upper right", fontsize="small")
    title = f"{report['scenario']} ({report['mode']}, seed {report['seed']}): {'passed' if report['ok'] else 'FAILED'}"
    ax1.set_title(title)
    for q, style in ((0.5, "-"), (0.99, "--")):
        ax2.plot(xs, [quantile(lat[i], q) if lat[i] else float("nan") for i in range(len(xs))], style, label=f"p{int(q * 100)}")
    shade_faults(ax2, report.get("faults", []), end)
    seen = [v for vs in lat.values() for v in vs]
    if seen and max(seen) > 50 * max(1.0, quantile(seen, 0.5)):
        ax2.set_yscale("symlog", linthresh=1.0)  # faults stretch latency by orders of magnitude
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("time (s)")
    ax2.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=90)

    all_lat = sorted(v for vs in lat.values() for v in vs)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    if all_lat:
        ax.plot(all_lat, [i / len(all_lat) for i in range(1, len(all_lat) + 1)])
        for q in (0.5, 0.95, 0.99):
            v = quantile(all_lat, q)
            ax.axvline(v, linestyle=":", color="grey")
            ax.annotate(f"p{int(q * 100)} {v:.1f} ms", (v, q), fontsize="small")
        if all_lat[0] > 0:
            ax.set_xscale("log")
    ax.set_xlabel("delivery latency (ms)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title("latency distribution")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)

    fig = Figure(figsize=(11, 3.5))
    ax = fig.subplots()
    clients = sorted({r["client"] for r in history if r.get("event") in ("reconnect", "disconnect") and r.get("client")})
    for row, client in enumerate(clients):
        downs = [r["t"] for r in history if r.get("client") == client and r.get("event") == "disconnect"]
        ups = [r["t"] for r in history if r.get("client") == client and r.get("event") == "reconnect"]
        ax.scatter(downs, [row] * len(downs), marker="v", color="tab:red", s=18)
        ax.scatter(ups, [row] * len(ups), marker="^", color="tab:green", s=18)
    shade_faults(ax, report.get("faults", []), end)
    ax.set_yticks(range(len(clients)), clients, fontsize="x-small")
    ax.set_xlim(0, end)
    ax.set_xlabel("time (s)")
    ax.set_title(f"disconnects (v) and reconnects (^): {report['metrics'].get('reconnects', 0)} reconnects")
    fig.tight_layout()
    fig.savefig(out / "reconnects.png", dpi=90)
