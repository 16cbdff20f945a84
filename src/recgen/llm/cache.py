"""Persistent LLM response cache in SQLite, keyed by backend, model, call kind, prompt and parameters.

The standard library's ``sqlite3`` is used rather than SQLAlchemy: one table, one key, no migrations, and the
cache must work in the bare install. Writes are transactions (a crash never leaves a half-written entry);
several processes may share a cache file (SQLite's locking, WAL journal, 30 s busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything that determines a response."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    """``get(key)`` / ``put(key, value, meta)`` over a SQLite file (values are JSON)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                "meta TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._conn.execute("CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._conn.execute("INSERT OR IGNORE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"cannot open the LLM cache {self.path} ({exc}); delete the file or pass another --cache path"
            ) from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        try:
            value = json.loads(row[0])
        except (json.JSONDecodeError, TypeError):  # a damaged entry is a miss: the call runs again and replaces it
            log.warning("%s: cache entry %s... is not valid JSON; treated as a miss", self.path, key[:12])
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Any, meta: dict[str, Any] | None = None) -> None:
        text = json.dumps(value)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (key, text, json.dumps(meta or {}, default=str), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
