"""A `CacheStore` in one SQLite file, shared by every process on the machine (local mode)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Final

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
WAIT_POLL_INTERVAL_S: Final = 0.02
SETUP_RETRY_INTERVAL_S: Final = 0.01
PRUNE_EVERY_PUTS: Final = 1000  # entries older than max_age_s are deleted at open and after this many puts

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cache_entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_entries_by_age ON cache_entries (created_at);
CREATE TABLE IF NOT EXISTS cache_reservations (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""
_PUT: Final = """
INSERT INTO cache_entries (key, value, created_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at
"""
# One statement, so the check and the write are atomic across processes.
_RESERVE: Final = """
INSERT INTO cache_reservations (key, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE cache_reservations.owner = excluded.owner OR cache_reservations.expires_at <= ?
"""


class SQLiteCacheStore:
    """Cache entries and reservations in a SQLite file (WAL mode), created with its parent directories.

    The connection opens on first use and is shared by all threads behind a lock; a forked child opens its own.
    Calls are synchronous inside the async methods: they take well under a millisecond, except while another
    process holds the write lock (up to `SQLITE_BUSY_TIMEOUT_MS`). Reservation expiry uses the wall clock, the
    only clock processes share.

    Args:
        path: The database file.
        max_age_s: Entries older than this are deleted (when the file is opened, then every `PRUNE_EVERY_PUTS`
            puts); None keeps them.
    """

    def __init__(self, path: str | Path, max_age_s: float | None = None) -> None:
        self.path = Path(path)
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._puts = 0

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None."""
        return self._get(key)

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key`; the last write wins."""
        self._execute(_PUT, (key, value, time.time()))
        self._puts += 1
        if self._puts % PRUNE_EVERY_PUTS == 0:
            with self._lock:
                self._prune(self._connection())

    async def reserve(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take or refresh `owner`'s reservation of `key`; False if another owner holds an unexpired one."""
        now = time.time()
        return self._execute(_RESERVE, (key, owner, now + ttl_s, now)) == 1

    async def release(self, key: str, owner: str) -> None:
        """Drop `owner`'s reservation of `key`, if it holds it."""
        self._execute("DELETE FROM cache_reservations WHERE key = ? AND owner = ?", (key, owner))

    async def wait_for(self, key: str, timeout_s: float, seen: bytes | None = None) -> bytes | None:
        """Poll every `WAIT_POLL_INTERVAL_S` until `key` has a value other than `seen` or no live reservation, or
        the timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self._get(key)
            if value is not None and value != seen:
                return value
            if not self._reserved(key):
                # The holder may have written and released between the two reads.
                value = self._get(key)
                return value if value != seen else None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(WAIT_POLL_INTERVAL_S, remaining))

    async def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._connection().execute("SELECT value FROM cache_entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _reserved(self, key: str) -> bool:
        query = "SELECT 1 FROM cache_reservations WHERE key = ? AND expires_at > ?"
        with self._lock:
            return self._connection().execute(query, (key, time.time())).fetchone() is not None

    def _execute(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            return self._connection().execute(sql, params).rowcount

    def _connection(self) -> sqlite3.Connection:
        # A connection inherited through fork is unusable: each process opens its own.
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit: every statement is its own transaction
            check_same_thread=False,
        )
        try:
            self._set_up(conn)
            self._prune(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prune(self, conn: sqlite3.Connection) -> None:
        if self.max_age_s is not None:
            conn.execute("DELETE FROM cache_entries WHERE created_at < ?", (time.time() - self.max_age_s,))

    @staticmethod
    def _set_up(conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL fails at once with "database is locked" (the busy handler is not used) while
        # another process is doing the same, so retry until the busy timeout.
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(SETUP_RETRY_INTERVAL_S)

    def __repr__(self) -> str:
        return f"SQLiteCacheStore({str(self.path)!r})"
