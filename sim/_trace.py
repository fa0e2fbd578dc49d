"""The network trace of a run: what happened on the wire, when, and its hash.

Two runs of one seed must produce the same trace; `first_divergence` says where two traces part.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence


@dataclass(frozen=True, slots=True)
class TraceEvent:
    t: float
    kind: str  # connect, accept, refused, send, recv, eof, close, reset, fault, crash, restart, ...
    conn: int  # connection id (0 where none)
    detail: str

    def line(self) -> str:
        return f"{self.t:.9f} {self.kind} {self.conn} {self.detail}"


class Trace:
    """Append-only event log with a running sha256. ``keep=False`` keeps only the hash."""

    def __init__(self, keep: bool = True) -> None:
        self._hash = hashlib.sha256()
        self.keep = keep
        self.events: list[TraceEvent] = []
        self.count = 0
        # Events come in bursts at one instant: repr() of a float is the dear part of a line.
        self._t = -1.0
        self._t_repr = "-1.0"

    def add(self, t: float, kind: str, conn: int = 0, detail: str = "") -> None:
        if t != self._t or type(t) is not type(self._t):  # 0 == 0.0, but their reprs differ
            self._t, self._t_repr = t, repr(t)
        self._hash.update(f"{self._t_repr} {kind} {conn} {detail}\n".encode())
        self.count += 1
        if self.keep:
            self.events.append(TraceEvent(t, kind, conn, detail))

    def add_bytes(self, t: float, kind: str, conn: int, host: str, data: bytes) -> None:
        """A send or receive: hashed with the bytes themselves, shown with their length and CRC."""
        if t != self._t or type(t) is not type(self._t):
            self._t, self._t_repr = t, repr(t)
        update = self._hash.update
        update(f"{self._t_repr} {kind} {conn} {host}\n".encode())
        update(data)
        self.count += 1
        if self.keep:
            self.events.append(TraceEvent(t, kind, conn, f"{host} {len(data)} {zlib.crc32(data):08x}"))

    @property
    def hash(self) -> str:
        return self._hash.hexdigest()

    def dump(self, path: Path) -> None:
        with path.open("w") as fh:
            for e in self.events:
                fh.write(json.dumps([e.t, e.kind, e.conn, e.detail]) + "\n")

    @staticmethod
    def load(path: Path) -> list[TraceEvent]:
        return [TraceEvent(*json.loads(line)) for line in path.read_text().splitlines() if line]


@dataclass(frozen=True)
class Divergence:
    index: int
    left: TraceEvent | None
    right: TraceEvent | None

    def __str__(self) -> str:
        def show(e: TraceEvent | None) -> str:
            return e.line() if e else "<trace ended>"

        return f"traces diverge at event {self.index}:\n  left:  {show(self.left)}\n  right: {show(self.right)}"


def first_divergence(left: Sequence[TraceEvent] | Iterable[TraceEvent], right: Sequence[TraceEvent] | Iterable[TraceEvent]) -> Divergence | None:
    """The first event where two traces differ, or None when they are identical."""
    left, right = list(left), list(right)
    for i, (a, b) in enumerate(zip(left, right, strict=False)):
        if a.line() != b.line():
            return Divergence(i, a, b)
    if len(left) != len(right):
        i = min(len(left), len(right))
        return Divergence(i, left[i] if i < len(left) else None, right[i] if i < len(right) else None)
    return None
