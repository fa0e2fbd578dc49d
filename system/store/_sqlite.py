"""``Store``: JSON values by (namespace, key) in one sqlite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Self

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
)
"""


class Store:
    """A sqlite file of JSON values. Each ``put`` is its own transaction, so what was put
    before a crash is there after it. ``path=":memory:"`` keeps nothing."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def get(self, namespace: str, key: str, default: Any = None) -> Any:
        row = self._db.execute(
            "SELECT value FROM kv WHERE namespace=? AND key=?", (namespace, key)
        ).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, namespace: str, key: str, value: Any) -> None:
        """Write ``value`` (JSON-serialisable); raises ``TypeError`` for anything else."""
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        self._db.execute(
            "INSERT INTO kv(namespace, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT(namespace, key) DO UPDATE SET value=excluded.value",
            (namespace, key, text),
        )

    def put_many(self, items: list[tuple[str, str, Any]]) -> None:
        """Write several values in one transaction (all or none)."""
        rows = [
            (ns, k, json.dumps(v, separators=(",", ":"), allow_nan=False))
            for ns, k, v in items
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO kv(namespace, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(namespace, key) DO UPDATE SET value=excluded.value",
                rows,
            )

    def delete(self, namespace: str, key: str) -> None:
        self._db.execute("DELETE FROM kv WHERE namespace=? AND key=?", (namespace, key))

    def items(self, namespace: str) -> dict[str, Any]:
        rows = self._db.execute(
            "SELECT key, value FROM kv WHERE namespace=? ORDER BY key", (namespace,)
        )
        return {k: json.loads(v) for k, v in rows}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
