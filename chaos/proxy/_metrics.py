"""Bytes per proxy and direction, exported the way Toxiproxy names them.

Pipes add to plain integers on the hot path; the numbers become Prometheus counters only
when ``/metrics`` is scraped, through a collector on a registry private to one server.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

LABELS = ["direction", "proxy", "listener", "upstream"]


class ByteCounts:
    """``[received, sent]`` per (direction, proxy, listener, upstream); kept after proxies go."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str, str, str], list[int]] = {}

    def cell(self, direction: str, proxy: str, listener: str, upstream: str) -> list[int]:
        key = (direction, proxy, listener, upstream)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = [0, 0]
        return cell

    def items(self) -> list[tuple[tuple[str, str, str, str], list[int]]]:
        return list(self._cells.items())


class _Collector(Collector):
    def __init__(self, counts: ByteCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        received = CounterMetricFamily(
            "toxiproxy_proxy_received_bytes", "Bytes the proxy read, per proxy and direction.", labels=LABELS
        )
        sent = CounterMetricFamily(
            "toxiproxy_proxy_sent_bytes", "Bytes the proxy wrote, per proxy and direction.", labels=LABELS
        )
        for labels, (got, put) in self._counts.items():
            received.add_metric(list(labels), float(got))
            sent.add_metric(list(labels), float(put))
        yield received
        yield sent


def registry_for(counts: ByteCounts) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(counts))
    return registry
