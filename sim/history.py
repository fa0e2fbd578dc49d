"""The history of a run: JSON lines of what the system did, the same in sim and in chaos.

Every record is a flat dict with at least ``t`` (seconds since the run started, on the
run's clock: virtual in sim, wall in chaos) and ``event``. The system's observer events
(``publish``, ``deliver``, ``connect``, ``disconnect``, ``reconnect``, ``drop``, ``error``,
``state`` and the fleet's own) are recorded as their ``to_dict()``; the runner adds
``fault`` / ``heal`` records for the schedule and ``sample`` records (memory, backlog).
Checks read nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


class History:
    """An append-only list of records; the system's observer writes into it."""

    def __init__(self, clock: Callable[[], float], origin: float = 0.0) -> None:
        self._clock = clock
        self._origin = origin
        self._sealed = False
        self.records: list[dict[str, Any]] = []

    def __call__(self, event: Any) -> None:
        """The observer hook: record a system event."""
        if self._sealed:
            return  # e.g. a hard-crashed host's code reclaimed after the run: it never ran
        record = event.to_dict() if hasattr(event, "to_dict") else dict(event)
        at = record.pop("at", None)
        record["t"] = round((at if at is not None else self._clock()) - self._origin, 6)
        if record.get("queued"):  # a loop time too (see system.observer.Published)
            record["queued"] = round(record["queued"] - self._origin, 6)
        self.records.append(record)

    def wire(self, record: dict[str, Any]) -> None:
        """The broker's wire tap: a flat record, stamped now (the cheap path: it runs per packet)."""
        if self._sealed:
            return
        record["t"] = round(self._clock() - self._origin, 6)
        self.records.append(record)

    def seal(self) -> None:
        """Record no more system events (the run is over)."""
        self._sealed = True

    def note(self, event: str, **fields: Any) -> None:
        """Record something the runner itself saw (a fault, a sample)."""
        self.records.append({"t": round(self._clock() - self._origin, 6), "event": event, **fields})

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def dump(self, path: Path) -> None:
        write_jsonl(path, self.records)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with path.open("w") as fh:
        for record in records:
            fh.write(json.dumps(record, sort_keys=True, separators=(",", ":"), default=str))
            fh.write("\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    from sim.errors import BadInput

                    raise BadInput(f"{path}:{lineno}: not a JSON line ({exc.msg}); is this a squall history.jsonl?") from None
    return out
