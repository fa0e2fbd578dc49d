"""Runs and sweeps as pandas DataFrames, and the plots a notebook wants of them.

    from sim.explore import load_run, plot_timeline
    run = load_run("out/smoke-1")          # a directory written by squall sim run --out
    run.deliveries.latency_ms.describe()
    plot_timeline(run)

    sweep = load_sweep("out/sweep")        # a directory written by squall sim sweep --out
    failure_rate_by_fault_kind(sweep)

Everything here reads the files of a run directory (see `sim.report`); nothing reruns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from sim.errors import BadInput

__all__ = [
    "Run",
    "failure_rate_by_fault_kind",
    "load_run",
    "load_sweep",
    "plot_flow",
    "plot_latency_quantiles",
    "plot_p99_distribution",
    "plot_timeline",
]

_PUBLISH_COLUMNS = [
    "t",
    "client",
    "topic",
    "qos",
    "retain",
    "id",
    "source",
    "seq",
    "kind",
    "size",
    "queued",
]
_DELIVER_COLUMNS = [
    "t",
    "client",
    "topic",
    "qos",
    "id",
    "source",
    "seq",
    "kind",
    "published_t",
    "queued_t",
    "latency_ms",
]
_FAULT_COLUMNS = ["at", "until", "kind", "label"]


@dataclass(frozen=True)
class Run:
    """One run directory, read lazily: the report as a dict, the history as DataFrames."""

    path: Path
    report: dict[str, Any]

    @cached_property
    def history(self) -> pd.DataFrame:
        """Every history record, one row each (columns: the union of the records' keys)."""
        from sim.history import read_jsonl

        path = self.path / "history.jsonl"
        records = (
            read_jsonl(path) if path.is_file() else []
        )  # a sweep keeps only report.json of passing seeds
        kinds = {r.get("event") for r in records}
        if "mqtt" in kinds and "publish" not in kinds:
            # User services: nothing of theirs is instrumented, so read the broker's wire record in
            # the fleet's vocabulary (publish/deliver/disconnect/reconnect), as the report's plots do.
            from sim.checks._wire import as_events

            records = records + as_events(records)
        frame = pd.DataFrame.from_records(records)
        return frame if not frame.empty else pd.DataFrame(columns=["t", "event"])

    def events(self, name: str) -> pd.DataFrame:
        """The history records of one event kind (``"reconnect"``, ``"fault"``, ...)."""
        h = self.history
        return h[h["event"] == name].dropna(axis=1, how="all").reset_index(drop=True)

    @cached_property
    def publishes(self) -> pd.DataFrame:
        """What was handed to the broker: t (acknowledged), queued (handed to the client), client, topic, qos, id, ..."""
        frame = self.events("publish")
        return frame.reindex(
            columns=[c for c in _PUBLISH_COLUMNS if c in frame.columns]
            or _PUBLISH_COLUMNS
        )

    @cached_property
    def deliveries(self) -> pd.DataFrame:
        """What each receiver got, joined with its publish: ``published_t``, ``queued_t``, ``latency_ms``.

        Latency runs from the moment the message was queued by its publisher (the publish time
        where the history has no queue time), as the checks measure it.
        """
        frame = self.events("deliver")
        if frame.empty or "id" not in frame.columns:
            return pd.DataFrame(columns=_DELIVER_COLUMNS)
        pubs = self.publishes.drop_duplicates("id")
        first = pd.DataFrame(
            {
                "id": pubs["id"],
                "published_t": pubs["t"],
                "queued_t": pubs["queued"].fillna(pubs["t"])
                if "queued" in pubs
                else pubs["t"],
            }
        )
        joined = frame.merge(first, on="id", how="left")
        joined["latency_ms"] = (joined["t"] - joined["queued_t"]) * 1000.0
        return joined.reindex(
            columns=[c for c in _DELIVER_COLUMNS if c in joined.columns]
        )

    @cached_property
    def faults(self) -> pd.DataFrame:
        """The fault windows of the run: at, until (NaN: never undone), kind, label."""
        return pd.DataFrame(self.report.get("faults", []), columns=_FAULT_COLUMNS)

    @property
    def checks(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.report.get("checks", []), columns=["name", "ok", "detail"]
        )

    @property
    def ok(self) -> bool:
        return bool(
            self.report.get("ok", all(c["ok"] for c in self.report.get("checks", [])))
        )

    @property
    def duration(self) -> float:
        return float(self.report.get("virtual_seconds") or 0.0) or float(
            self.history["t"].max() if len(self.history) else 1.0
        )

    @property
    def flow(self) -> pd.DataFrame:
        """Per device: messages it published, deliveries of them, and messages it received."""
        pubs = self.publishes.groupby("source").size().rename("published")
        delivered = self.deliveries.groupby("source").size().rename("delivered")
        received = self.deliveries.groupby("client").size().rename("received")
        frame = pd.concat([pubs, delivered, received], axis=1).fillna(0).astype(int)
        frame.index.name = "device"
        return frame.sort_index()

    def __repr__(self) -> str:
        r = self.report
        return f"<Run {r.get('scenario')} {r.get('mode')} seed {r.get('seed')}: {'ok' if self.ok else 'FAILED'} ({self.path})>"


def load_run(path: str | Path) -> Run:
    """A run directory (written by ``squall sim run --out``, or a failing seed of a sweep)."""
    path = Path(path)
    report_path = path / "report.json"
    if not report_path.is_file():
        raise BadInput(
            f"{path} is not a squall run directory (no report.json); make one with squall sim run SCENARIO --out {path}"
        )
    try:
        report = json.loads(report_path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{report_path} is not JSON ({exc.msg}); run the scenario again with --out"
        ) from None
    return Run(path, report)


def load_sweep(path: str | Path) -> pd.DataFrame:
    """A sweep directory as one row per seed (index ``seed``).

    Columns: ok, failed (names of failing checks), first_failure, published, delivered, lost,
    duplicated, reconnects, p50/p95/p99 (ms), faults (kinds, one per fault), replay, run_dir,
    then ``fail:<check>`` for every check that failed in some seed and ``fault:<kind>`` for
    every fault kind some seed had (both bool).
    """
    path = Path(path)
    summary = path / "sweep.json"
    if not summary.is_file():
        raise BadInput(
            f"{path} is not a squall sweep directory (no sweep.json); make one with squall sim sweep SCENARIO --seeds 1-20 --out {path}"
        )
    runs = json.loads(summary.read_text()).get("runs", [])
    rows = []
    for r in runs:
        m = r.get("metrics", {})
        lat = m.get("latency_ms") or {}
        run_dir = path / f"seed-{r['seed']}"
        rows.append(
            {
                "seed": r["seed"],
                "ok": bool(r["ok"]),
                "failed": list(r.get("failed", [])),
                "first_failure": r.get("first_failure", ""),
                **{
                    k: m.get(k)
                    for k in (
                        "published",
                        "delivered",
                        "lost",
                        "duplicated",
                        "reconnects",
                    )
                },
                **{q: lat.get(q) for q in ("p50", "p95", "p99")},
                "faults": list(r.get("faults", [])),
                "replay": r.get("replay", ""),
                "run_dir": str(run_dir if run_dir.is_dir() else r.get("run_dir", "")),
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "seed",
            "ok",
            "failed",
            "first_failure",
            "published",
            "delivered",
            "lost",
            "duplicated",
            "reconnects",
            "p50",
            "p95",
            "p99",
            "faults",
            "replay",
            "run_dir",
        ],
    )
    for col in ("p50", "p95", "p99"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    for check in sorted({c for names in frame["failed"] for c in names}):
        frame[f"fail:{check}"] = frame["failed"].map(lambda names, c=check: c in names)
    for kind in sorted({k for kinds in frame["faults"] for k in kinds}):
        frame[f"fault:{kind}"] = frame["faults"].map(lambda kinds, k=kind: k in kinds)
    return frame.set_index("seed").sort_index()


def failure_rate_by_fault_kind(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per fault kind: how many seeds had it, how many of those failed, and the rate.

    A seed counts once per kind however many faults of that kind it had; ``(none)`` is the
    seeds without any fault. Sorted by failure rate, worst first.
    """
    rows = []
    kinds = sorted({k for kinds in sweep["faults"] for k in kinds})
    for kind in kinds:
        having = sweep[sweep["faults"].map(lambda ks, k=kind: k in ks)]
        rows.append((kind, len(having), int((~having["ok"]).sum())))
    bare = sweep[sweep["faults"].map(len) == 0]
    if len(bare):
        rows.append(("(none)", len(bare), int((~bare["ok"]).sum())))
    frame = pd.DataFrame(rows, columns=["kind", "seeds", "failed"]).set_index("kind")
    frame["failure_rate"] = (frame["failed"] / frame["seeds"]).astype(float)
    return frame.sort_values(["failure_rate", "seeds"], ascending=[False, False])


# -- plots --------------------------------------------------------------------------------------


def _axes(ax: Any, figsize: tuple[float, float] = (10, 3.5)) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    # A bare Figure: no pyplot state, so nothing leaks between calls, and Jupyter shows it
    # when a cell ends with it (or with ax.figure).
    return Figure(figsize=figsize, layout="constrained").subplots()


def _bucket(run: Run) -> float:
    return max(1.0, round(run.duration / 120.0))


def _shade(ax: Any, run: Run) -> None:
    from sim.plots import shade_faults

    faults = (
        run.faults.astype(object).where(run.faults.notna(), None).to_dict("records")
    )
    shade_faults(ax, faults, run.duration)


def plot_timeline(run: Run, ax: Any = None) -> Any:
    """Messages published and deliveries made per second, fault windows shaded; returns the Axes."""
    ax = _axes(ax)
    width = _bucket(run)
    edges = [i * width for i in range(int(run.duration // width) + 2)]
    for frame, label in (
        (run.publishes, "published/s"),
        (run.deliveries, "deliveries/s"),
    ):
        counts = (
            pd.cut(frame["t"].astype(float), edges, right=False).value_counts(
                sort=False
            )
            / width
        )
        ax.plot(edges[:-1], counts.to_numpy(), label=label)
    _shade(ax, run)
    ax.set_xlim(0, run.duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("messages / s")
    r = run.report
    ax.set_title(
        f"{r.get('scenario')} seed {r.get('seed')}: {'passed' if run.ok else 'FAILED'}"
    )
    ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_latency_quantiles(
    run: Run, ax: Any = None, quantiles: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> Any:
    """Delivery latency quantiles over time (by delivery time), fault windows shaded; returns the Axes."""
    ax = _axes(ax)
    d = run.deliveries.dropna(subset=["latency_ms"])
    width = _bucket(run)
    if len(d):
        buckets = (d["t"].astype(float) // width) * width
        table = d.groupby(buckets)["latency_ms"].quantile(list(quantiles)).unstack()
        for q in quantiles:
            ax.plot(
                table.index, table[q], "-" if q == 0.5 else "--", label=f"p{q * 100:g}"
            )
        if (
            table.to_numpy().max() > 10
        ):  # a log scale for seconds-long outliers, not for a flat line
            ax.set_yscale("symlog")
        ax.legend(loc="upper right", fontsize="small")
    _shade(ax, run)
    ax.set_xlim(0, run.duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("delivery latency")
    return ax


def plot_flow(run: Run, ax: Any = None) -> Any:
    """Per-device message flow: deliveries of each device's messages per time bucket, as a heat map.

    A device cut off by a fault shows as a gap in its row. Returns the Axes.
    """
    d = run.deliveries
    devices = sorted(run.flow.index[run.flow["published"] > 0]) or sorted(
        d["source"].dropna().unique()
    )
    ax = _axes(ax, figsize=(10, 0.35 * max(4, len(devices)) + 1))
    if not devices:
        ax.text(
            0.5,
            0.5,
            "no messages in this run's history",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return ax
    width = _bucket(run)
    columns = int(run.duration // width) + 1
    grid = pd.DataFrame(0.0, index=devices, columns=range(columns))
    if len(d) and devices:
        counts = (
            d[d["source"].isin(devices)]
            .groupby(["source", (d["t"].astype(float) // width).astype(int)])
            .size()
        )
        for (device, col), n in counts.items():
            if col < columns:
                grid.loc[device, col] = n / width
    values = grid.to_numpy()
    positive = values[values > 0]
    # Saturate the burst after a heal, or it would wash out the steady flow and the gaps.
    vmax = float(pd.Series(positive).quantile(0.98)) if positive.size else 1.0
    image = ax.imshow(
        values,
        aspect="auto",
        interpolation="nearest",
        cmap="viridis",
        vmin=0,
        vmax=vmax,
        extent=(0, columns * width, len(devices) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(devices)), devices, fontsize="x-small")
    for _, f in run.faults.iterrows():
        until = f["until"] if pd.notna(f["until"]) else run.duration
        ax.axvline(f["at"], color="white", linestyle=":", linewidth=0.8)
        ax.axvline(until, color="white", linestyle=":", linewidth=0.8)
    ax.set_xlabel("time (s)")
    ax.set_title(
        "deliveries of each device's messages (per second); faults between dotted lines"
    )
    ax.figure.colorbar(image, ax=ax, label="deliveries / s")
    return ax


def plot_p99_distribution(sweep: pd.DataFrame, ax: Any = None) -> Any:
    """Latency p99 of every seed in a sweep, passing and failing seeds apart; returns the Axes."""
    ax = _axes(ax, figsize=(8, 3.5))
    p99 = sweep["p99"].dropna()
    groups = [
        (p99[sweep.loc[p99.index, "ok"]], "passed", "tab:blue"),
        (p99[~sweep.loc[p99.index, "ok"]], "failed", "tab:red"),
    ]
    shown = [(v, label, colour) for v, label, colour in groups if len(v)]
    if shown:
        ax.hist(
            [v.to_numpy() for v, _, _ in shown],
            bins=min(20, max(3, len(p99))),
            stacked=True,
            color=[c for *_, c in shown],
            label=[f"{label} ({len(v)})" for v, label, _ in shown],
        )
        ax.axvline(
            float(p99.median()),
            color="grey",
            linestyle=":",
            label=f"median {p99.median():.1f} ms",
        )
        ax.legend(fontsize="small")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("latency p99 (ms)")
    ax.set_ylabel("seeds")
    ax.set_title(f"p99 across {len(sweep)} seeds")
    return ax
