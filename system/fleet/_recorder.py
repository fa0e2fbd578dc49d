"""The recorder: every telemetry message into sqlite, once (deduplicated by envelope id)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from system.bus import Message
from system.fleet._common import make_app
from system.observer import Observer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS telemetry (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    data TEXT NOT NULL
)
"""


class TelemetryLog:
    """Rows buffered in memory and written in one transaction per ``flush``; a message seen
    before (same envelope id, in memory or on disk) is counted as a duplicate, not stored."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._pending: dict[str, tuple[str, str, str, int, float, str]] = {}
        self.rows = self._db.execute("SELECT COUNT(*) FROM telemetry").fetchone()[0]
        self.duplicates = 0

    def add(self, msg: Message) -> None:
        env = msg.envelope
        if (
            env.id in self._pending
            or self._db.execute(
                "SELECT 1 FROM telemetry WHERE id=?", (env.id,)
            ).fetchone()
        ):
            self.duplicates += 1
            return
        self._pending[env.id] = (
            env.id,
            msg.topic,
            env.source,
            env.seq,
            env.ts,
            json.dumps(env.data, separators=(",", ":")),
        )

    def flush(self) -> int:
        if not self._pending:
            return 0
        rows = list(self._pending.values())
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO telemetry VALUES (?, ?, ?, ?, ?, ?)", rows
            )
        self._pending.clear()
        self.rows += len(rows)
        return len(rows)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM telemetry").fetchone()[0]

    def close(self) -> None:
        self.flush()
        self._db.close()


async def run_recorder(
    flush_interval: float,
    broker_url: str,
    seed: int,
    observer: Observer,
    data_dir: Path,
    *,
    record_seconds: float = 0.0,
    telemetry_policy: str = "block",
) -> None:
    """``record_seconds``: how long storing one message takes (a slow consumer backs up its
    inbound queue, and then the broker)."""
    name = "recorder"
    app = make_app(name, broker_url, seed, observer, telemetry_policy=telemetry_policy)
    log = TelemetryLog(data_dir / "telemetry.db")
    device = app.device("recorder")

    @app.on("+/+/telemetry/#")
    async def record(msg: Message) -> None:
        if record_seconds:
            await asyncio.sleep(record_seconds)
        log.add(msg)

    @device.every(flush_interval)
    def flush() -> None:
        log.flush()

    @device.telemetry("stats", interval=flush_interval * 6)
    def stats() -> dict[str, int]:
        return {"rows": log.rows + log.pending, "duplicates": log.duplicates}

    try:
        await app.run()
    finally:
        log.close()
