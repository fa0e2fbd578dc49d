"""Plots a person would rather see than read: timeline with fault windows, latency, reconnects.

Each figure is built by its own function (tests read its axes) and `plot_run` saves them.
Tick labels are plain numbers: no offset text (``1e-12+2``) and no scientific notation
(``2x10^0``), since a flat latency series is the common, healthy case and must read as "2".
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

# Bare Figures, never pyplot: no global backend switch (Jupyter keeps its inline plots), no
# display needed on CI machines or in sweep workers, nothing left open between runs.
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

from sim.checks import quantile, topic_matches

_FAULT_COLOURS = {"toxic": "tab:orange", "partition": "tab:red", "crash": "tab:purple", "down": "tab:brown", "skew": "tab:olive"}
NO_RECONNECTS = "no disconnects or reconnects in this run"


def shade_faults(ax: Any, faults: Iterable[dict[str, Any]], end: float) -> None:
    seen = set()
    for f in faults:
        until = f["until"] if f["until"] is not None else end
        legend = f["kind"] if f["kind"] not in seen else None
        seen.add(f["kind"])
        ax.axvspan(f["at"], until, color=_FAULT_COLOURS.get(f["kind"], "grey"), alpha=0.18, label=legend)


def fault_lanes(ax: Any, faults: list[dict[str, Any]], end: float) -> None:
    """One row per fault window, named by its label (fault and host): the key to the shading below.

    A row each, not text on the shading: a swarm's windows overlap, and their labels would too.
    """
    for row, f in enumerate(faults):
        until = f["until"] if f["until"] is not None else end
        colour = _FAULT_COLOURS.get(f["kind"], "grey")
        ax.barh(row, max(until - f["at"], end / 400), left=f["at"], height=0.7, color=colour, alpha=0.55)
        label = f" {f.get('label', f['kind'])} " + ("(to the end)" if f["until"] is None else "")
        right = until < end * 0.6  # text after the bar, or before it when the bar ends late
        ax.text(until if right else f["at"], row, label, ha="left" if right else "right", va="center", fontsize="x-small", gid="fault-label")
    ax.set_ylim(len(faults) - 0.5, -0.5)
    ax.set_yticks([])
    ax.set_ylabel("faults", fontsize="small")


def _plain(ax: Any, axis: str = "y") -> None:
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    getattr(ax, f"{axis}axis").set_major_formatter(fmt)


def _plain_log(ax: Any, axis: str = "x") -> None:
    a = getattr(ax, f"{axis}axis")
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def _buckets(end: float) -> float:
    return max(1.0, round(end / 120.0))


def _series(history: list[dict[str, Any]], report: dict[str, Any]) -> dict[str, Any]:
    """What the figures show, read from the history the way the checks read it."""
    end = float(report["virtual_seconds"]) or 1.0
    width = _buckets(end)
    judged = report.get("judged", {})
    topics, receivers = judged.get("topics", "#"), set(judged.get("receivers", []))
    if not any(r.get("event") == "publish" for r in history) and any(r.get("event") == "mqtt" for r in history):
        from sim.checks._wire import as_events

        history, receivers = as_events(history), set()  # user services: drawn from the broker's wire record
    published: dict[str, dict[str, Any]] = {}
    got_by: dict[str, set[str]] = defaultdict(set)
    sent: dict[int, int] = defaultdict(int)
    got: dict[int, int] = defaultdict(int)
    lat: dict[int, list[float]] = defaultdict(list)
    for r in history:
        if r.get("event") == "publish" and r.get("id") and topic_matches(topics, r.get("topic", "")):
            published.setdefault(r["id"], r)
    for r in history:
        if r.get("event") == "publish" and r.get("id") in published:
            sent[int(r["t"] // width)] += 1
        elif r.get("event") == "deliver" and r.get("id") in published and (not receivers or r.get("client") in receivers):
            got_by[r["id"]].add(r.get("client", ""))
            b = int(r["t"] // width)
            got[b] += 1
            pub = published[r["id"]]
            # Rounded to a nanosecond: float noise of 1e-12 ms is not a latency anyone can see.
            lat[b].append(round((r["t"] - pub.get("queued", pub["t"])) * 1000.0, 6))
    # Lost as the loss checks count it: QoS 0/1, published before the grace period, missing at a receiver.
    cutoff = end - float(judged.get("grace_s", 0.0))
    lost = sorted(
        p["t"] for i, p in published.items()
        if p.get("qos") in (0, 1) and p["t"] <= cutoff and receivers and not receivers <= got_by[i]
    )
    return {"end": end, "width": width, "sent": sent, "got": got, "lat": lat, "lost": lost}


def timeline_figure(history: list[dict[str, Any]], report: dict[str, Any]) -> Figure:
    s = _series(history, report)
    end, width, lat = s["end"], s["width"], s["lat"]
    xs = [i * width for i in range(int(end // width) + 1)]
    faults = report.get("faults", [])

    lanes = 0.25 * len(faults) + 0.3 if faults else 0.0
    fig = Figure(figsize=(11, 6 + lanes))
    if faults:
        ax0, ax1, ax2 = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [lanes, 3, 3]})
        fault_lanes(ax0, faults, end)
    else:
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.plot(xs, [s["sent"][i] / width for i in range(len(xs))], label="published/s")
    ax1.plot(xs, [s["got"][i] / width for i in range(len(xs))], label="delivered/s")
    if s["lost"]:
        ax1.plot(s["lost"], [0.0] * len(s["lost"]), "x", color="tab:red", markersize=6, clip_on=False, zorder=5,
                 label=f"lost ({len(s['lost'])}, at publish time)", gid="lost")
    shade_faults(ax1, faults, end)
    ax1.set_ylabel("messages / s")
    ax1.set_ylim(bottom=0)
    _plain(ax1)
    ax1.legend(loc="upper right", fontsize="small")
    (ax0 if faults else ax1).set_title(f"{report['scenario']} ({report['mode']}, seed {report['seed']}): {'passed' if report['ok'] else 'FAILED'}")
    for q, style in ((0.5, "-"), (0.99, "--")):
        ax2.plot(xs, [quantile(lat[i], q) if lat[i] else float("nan") for i in range(len(xs))], style, label=f"p{int(q * 100)}")
    shade_faults(ax2, faults, end)
    seen = [v for vs in lat.values() for v in vs]
    if seen and max(seen) > 50 * max(1.0, quantile(seen, 0.5)):
        ax2.set_yscale("symlog", linthresh=1.0)  # faults stretch latency by orders of magnitude
        _plain_log(ax2, "y")
    else:
        ax2.set_ylim(0, max(seen, default=1.0) * 1.15 or 1.0)  # from zero: a flat 2 ms reads as 2 ms
        _plain(ax2)
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("time (s)")
    _plain(ax2, "x")
    ax2.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def latency_figure(history: list[dict[str, Any]], report: dict[str, Any]) -> Figure:
    all_lat = sorted(v for vs in _series(history, report)["lat"].values() for v in vs)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    if all_lat:
        ax.plot(all_lat, [i / len(all_lat) for i in range(1, len(all_lat) + 1)], drawstyle="steps-post")
        for q in (0.5, 0.95, 0.99):
            v = quantile(all_lat, q)
            ax.axvline(v, linestyle=":", color="grey")
            ax.annotate(f"p{int(q * 100)} {v:.1f} ms", (v, q), fontsize="small")
        if all_lat[0] > 0 and all_lat[-1] > 10 * all_lat[0]:
            ax.set_xscale("log")  # only when the latencies span more than a decade
            _plain_log(ax, "x")
        else:
            ax.set_xlim(0, all_lat[-1] * 1.15 or 1.0)
            _plain(ax, "x")
    else:
        ax.text(0.5, 0.5, "no deliveries in this run", transform=ax.transAxes, ha="center", va="center")
    _plain(ax, "y")
    ax.set_xlabel("delivery latency (ms)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title("latency distribution")
    fig.tight_layout()
    return fig


def reconnects_figure(history: list[dict[str, Any]], report: dict[str, Any]) -> Figure:
    end = float(report["virtual_seconds"]) or 1.0
    fig = Figure(figsize=(11, 3.5))
    ax = fig.subplots()
    clients = sorted({r["client"] for r in history if r.get("event") in ("reconnect", "disconnect") and r.get("client")})
    for row, client in enumerate(clients):
        downs = [r["t"] for r in history if r.get("client") == client and r.get("event") == "disconnect"]
        ups = [r["t"] for r in history if r.get("client") == client and r.get("event") == "reconnect"]
        ax.scatter(downs, [row] * len(downs), marker="v", color="tab:red", s=18)
        ax.scatter(ups, [row] * len(ups), marker="^", color="tab:green", s=18)
    shade_faults(ax, report.get("faults", []), end)
    if clients:
        ax.set_yticks(range(len(clients)), clients, fontsize="x-small")
        ax.set_title(f"disconnects (v) and reconnects (^): {report['metrics'].get('reconnects', 0)} reconnects")
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, NO_RECONNECTS, transform=ax.transAxes, ha="center", va="center", fontsize="large")
        ax.set_title("disconnects and reconnects: none")
    ax.set_xlim(0, end)
    _plain(ax, "x")
    ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_run(out: Path, history: list[dict[str, Any]], report: dict[str, Any]) -> None:
    for name, build in (("timeline", timeline_figure), ("latency", latency_figure), ("reconnects", reconnects_figure)):
        build(history, report).savefig(out / f"{name}.png", dpi=90)
