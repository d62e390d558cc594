"""The default run store: one SQLite file in the lab home, ``<home>/runs.sqlite3``.

SQLite is used the way several processes of one machine (the Streamlit server, its
threads, background workers) can share it: WAL journal (readers never block the writer),
a 5 s busy timeout, one connection per thread, and every write in a ``BEGIN IMMEDIATE``
transaction (so a writer waits for the lock up front instead of failing with "database is
locked" when it upgrades a read). That one write lock also serializes the job-slot claims,
so two servers sharing a home cannot exceed the job cap. The schema has a version number
and a list of migrations (``MIGRATIONS``; PostgreSQL's list has the same versions, and from 4 on
the same SQL: ``PORTABLE_MIGRATIONS`` in migrations.py).
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

from core.errors import Code
from core.runs.stores.base import RunStore, StoreError
from core.runs.stores.migrations import PORTABLE_MIGRATIONS

DB_NAME = "runs.sqlite3"
BUSY_TIMEOUT_MS = 5000

# Each migration takes the schema from version i to i + 1. Never edit a released one;
# append a new one instead (and the same version to PostgreSQL's list).
MIGRATIONS: list[list[str]] = [
    [  # 1: runs and metrics
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            status TEXT NOT NULL,
            config TEXT NOT NULL,
            device TEXT,
            precision TEXT,
            best_metrics TEXT,
            last_metrics TEXT,
            tags TEXT NOT NULL DEFAULT '[]'
        )""",
        """CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            name TEXT NOT NULL,
            value REAL,
            wall REAL NOT NULL
        )""",
        "CREATE INDEX metrics_run_name_step ON metrics(run_id, name, step)",
    ],
    [  # 2: job control (worker pid, heartbeat, stop flag, job kind, timestamps, error)
        "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'cli'",
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE runs ADD COLUMN host TEXT",
        "ALTER TABLE runs ADD COLUMN heartbeat REAL",
        "ALTER TABLE runs ADD COLUMN launched REAL",
        "ALTER TABLE runs ADD COLUMN started REAL",
        "ALTER TABLE runs ADD COLUMN finished REAL",
        "ALTER TABLE runs ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN step INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN error TEXT",
        "CREATE INDEX runs_status ON runs(status)",
    ],
    [  # 3: delete a run once its worker has stopped (JobManager.delete)
        "ALTER TABLE runs ADD COLUMN delete_requested INTEGER NOT NULL DEFAULT 0",
    ],
    *PORTABLE_MIGRATIONS,  # 4..7: the same portable SQL on both back ends (core/runs/stores/migrations.py)
]
SCHEMA_VERSION = len(MIGRATIONS)


class SQLiteRunStore(RunStore):
    """Runs and metrics in one SQLite file; safe to share across threads and processes of one machine."""

    MIGRATIONS: ClassVar[list[list[str]]] = MIGRATIONS

    def __init__(self, home: str | Path) -> None:
        self._init_home(home)
        self.path = self.home / DB_NAME
        self.url = None
        self.location = str(self.path)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._migrate()

    # ---------------------------------------------------------------- connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError("store.no_wal", where=Code(str(self.path)), mode=str(mode))
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreError("store.cannot_open", where=Code(str(self.path)), reason=Code(str(exc))) from None
            self._local.conn = conn
            me = threading.current_thread()
            with self._all_lock:
                # Servers run each script in a fresh thread: close the connections of finished ones.
                keep = []
                for thread, other in self._all:
                    if thread.is_alive():
                        keep.append((thread, other))
                    else:
                        with suppress(sqlite3.Error):
                            other.close()
                self._all = [*keep, (me, conn)]
        return conn

    @contextmanager
    def _write(self, lock_slots: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE); that lock
        serializes the job-slot claims too."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN")  # a read transaction: one WAL snapshot for its queries
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _tuples(self, sql: str, args: Iterable[Any]) -> list[tuple]:
        """Rows as plain tuples (sqlite3.Row objects cost ~40% more on metric-sized reads)."""
        cur = self._conn().cursor()
        cur.row_factory = None
        return cur.execute(sql, list(args)).fetchall()

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for _, conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` or the problems found."""
        rows = self._conn().execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)
