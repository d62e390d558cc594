"""The run store in PostgreSQL, for servers and workers on many hosts (psycopg 3).

``PYTORCH_LAB_STORE_URL=postgresql://user@host:port/db`` selects it (``core.runs.store.open_store``).
Runs and metrics live in the database; checkpoints and logs stay files in the lab home,
which must then be a folder every host shares (an NFS export, say).

How it maps the SQLite store's rules:

- one connection per thread (autocommit; a finished thread's connection is kept for the next
  thread, as Streamlit runs every script in a fresh thread), opened with ``connect_timeout``
  and TCP keepalives, so an unreachable server is a clear ``store.unreachable`` in seconds,
  never a hang;
- writes are explicit ``BEGIN`` ... ``COMMIT`` transactions; where SQLite's ``BEGIN IMMEDIATE``
  serializes the job-slot claims, here each claim first locks the store's one
  ``schema_version`` row (``SELECT ... FOR UPDATE``) and the runs it decides on, so two
  servers sharing the store cannot exceed the job cap;
- ``metrics_since`` reads in a ``REPEATABLE READ`` transaction (one snapshot);
- PostgreSQL has no implicit ``rowid``: the metrics table has an explicit ``rowid BIGSERIAL``
  column, the insertion order the shared queries use;
- migrations have the same versions as SQLite's, run under an advisory lock so two processes
  opening a new database at once do not race;
- a connection the server dropped (a restart) is discarded and the error raised as
  ``StoreUnavailable`` (``store.connection_lost``): the next call connects again, and the
  worker retries its writes (``core.runs.stores.base.retrying``).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from core.errors import Code, first_line
from core.runs.stores.base import (
    STATUSES,
    RunStore,
    StoreError,
    StoreUnavailable,
    masked_url,
)
from core.runs.stores.migrations import PORTABLE_MIGRATIONS

CONNECT_TIMEOUT_S = 3  # an unreachable server is reported after this long (libpq's minimum is 2)
MIGRATION_LOCK = 0x7079746F726368  # pg_advisory_xact_lock key while a process migrates ("pytorch")
T = TypeVar("T")
IDLE_CONNECTIONS = 4  # connections of finished threads kept for the next threads
# Connection-level failures: the connection is gone, or the server is shutting down / starting up.
TRANSIENT_STATES = ("08", "57P01", "57P02", "57P03")

MIGRATIONS: list[list[str]] = [
    [  # 1: runs and metrics
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            created DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            config TEXT NOT NULL,
            device TEXT,
            precision TEXT,
            best_metrics TEXT,
            last_metrics TEXT,
            tags TEXT NOT NULL DEFAULT '[]'
        )""",
        """CREATE TABLE metrics (
            rowid BIGSERIAL NOT NULL,
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step BIGINT NOT NULL,
            epoch BIGINT NOT NULL,
            name TEXT NOT NULL,
            value DOUBLE PRECISION,
            wall DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX metrics_run_name_step ON metrics(run_id, name, step)",
        "CREATE INDEX metrics_run_rowid ON metrics(run_id, rowid)",
    ],
    [  # 2: job control (worker pid, heartbeat, stop flag, job kind, timestamps, error)
        "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'cli'",
        "ALTER TABLE runs ADD COLUMN pid BIGINT",
        "ALTER TABLE runs ADD COLUMN host TEXT",
        "ALTER TABLE runs ADD COLUMN heartbeat DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN launched DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN started DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN finished DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN step BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN error TEXT",
        "CREATE INDEX runs_status ON runs(status)",
    ],
    [  # 3: delete a run once its worker has stopped (JobManager.delete)
        "ALTER TABLE runs ADD COLUMN delete_requested INTEGER NOT NULL DEFAULT 0",
    ],
    *PORTABLE_MIGRATIONS,  # 4..7: the same portable SQL on both back ends (core/runs/stores/migrations.py)
]


@lru_cache(maxsize=256)
def _sql(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (the shared SQL has no ``%``)."""
    return sql.replace("?", "%s")


class PgRow:
    """A result row read by position (``row[0]``) or by column (``row["status"]``), like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index, self._values = index, values

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> Iterable[str]:
        return self._index.keys()

    def __len__(self) -> int:
        return len(self._values)


def _pg_row(cursor: Any) -> Any:
    index = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: PgRow(index, values)


class _Conn:
    """A psycopg connection speaking the shared SQL: ``?`` placeholders, connection errors as
    ``StoreUnavailable`` (and the broken connection discarded).

    A connection can die while it sits unused (the server restarted): a read or a ``BEGIN``
    outside any transaction that finds it dead connects again and runs once more, so a page or
    a manager does not see an error for a server that is back. Inside a transaction the error
    is raised (the transaction is lost; the caller decides, e.g. ``retrying``).
    """

    __slots__ = ("dead", "raw", "store")

    def __init__(self, raw: psycopg.Connection, store: PostgresRunStore) -> None:
        self.raw, self.store, self.dead = raw, store, False

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self._run(sql, lambda raw: raw.execute(_sql(sql), parameters or None))

    def tuples(self, sql: str, parameters: Sequence[Any]) -> list[tuple]:
        def read(raw: psycopg.Connection) -> list[tuple]:
            with raw.cursor(row_factory=tuple_row) as cur:
                return cur.execute(_sql(sql), parameters or None).fetchall()

        return self._run(sql, read)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        def write(raw: psycopg.Connection) -> None:
            with raw.cursor() as cur:
                cur.executemany(_sql(sql), parameters)

        self._run(sql, write)

    def _run(self, sql: str, action: Callable[[psycopg.Connection], T]) -> T:
        idle = not self.dead and self.raw.info.transaction_status == TransactionStatus.IDLE
        try:
            return action(self.raw)
        except psycopg.OperationalError as exc:
            error = self.store._failed(self, exc)
            if not (idle and isinstance(error, StoreUnavailable) and sql.startswith(("SELECT", "BEGIN"))):
                raise error from None
        _close(self)
        self.raw, self.dead = self.store._connect().raw, False  # may raise store.unreachable
        try:
            return action(self.raw)
        except psycopg.OperationalError as exc:
            raise self.store._failed(self, exc) from None


class PostgresRunStore(RunStore):
    """Runs and metrics in a PostgreSQL database; checkpoints in ``home`` (a folder all hosts share)."""

    MIGRATIONS: ClassVar[list[list[str]]] = MIGRATIONS
    FOR_UPDATE: ClassVar[str] = " FOR UPDATE"
    SETTING: ClassVar[str] = "PYTORCH_LAB_STORE_URL"

    def __init__(self, url: str, home: str | Path) -> None:
        self.url = url
        self.location = masked_url(url)
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreError("store.bad_url_option", setting=Code(self.SETTING), url=Code(self.location),
                             reason=Code(first_line(exc))) from None
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "pytorch-lab")
        # A server host that vanishes without closing the connection is noticed in about 25 s.
        for key, value in (("keepalives", 1), ("keepalives_idle", 10), ("keepalives_interval", 5),
                           ("keepalives_count", 3), ("tcp_user_timeout", 25_000)):
            params.setdefault(key, value)
        self._params = params
        self.connect_timeout = float(params["connect_timeout"])
        self._init_home(home)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, _Conn]] = []
        self._idle: list[_Conn] = []
        self._all_lock = threading.Lock()
        self._migrate()

    # ---------------------------------------------------------------- connections
    def _connect(self) -> _Conn:
        try:
            raw = psycopg.connect(autocommit=True, row_factory=_pg_row, **self._params)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable("store.unreachable", where=Code(self.location), seconds=self.connect_timeout,
                                   reason=Code(first_line(exc)), setting=Code(self.SETTING)) from None
        except psycopg.ProgrammingError as exc:  # an option libpq does not know
            raise StoreError("store.bad_url_option", setting=Code(self.SETTING), url=Code(self.location),
                             reason=Code(first_line(exc))) from None
        return _Conn(raw, self)

    def _conn(self) -> _Conn:
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.dead:
            return conn
        me = threading.current_thread()
        reuse = None
        with self._all_lock:
            keep = []
            for thread, other in self._all:
                if other is conn:
                    continue  # this thread's dead connection
                if thread.is_alive():
                    keep.append((thread, other))
                elif not other.dead and len(self._idle) < IDLE_CONNECTIONS:
                    self._idle.append(other)
                else:
                    _close(other)
            self._all = keep
            while self._idle and reuse is None:
                candidate = self._idle.pop()
                if candidate.dead or candidate.raw.closed or candidate.raw.broken:
                    _close(candidate)
                else:
                    reuse = candidate
        if conn is not None:
            _close(conn)
        conn = reuse or self._connect()
        self._local.conn = conn
        with self._all_lock:
            self._all.append((me, conn))
        return conn

    def _failed(self, conn: _Conn, exc: psycopg.OperationalError) -> BaseException:
        """The exception to raise for ``exc``: a lost connection is discarded and becomes ``StoreUnavailable``."""
        state = getattr(exc, "sqlstate", None) or ""
        if conn.raw.closed or conn.raw.broken or state.startswith(TRANSIENT_STATES):
            conn.dead = True
            return StoreUnavailable("store.connection_lost", where=Code(self.location), reason=Code(first_line(exc)))
        return exc

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[_Conn]:
        conn = self._conn()
        conn.execute(begin)
        try:
            yield conn
        except BaseException:
            if not conn.dead:
                with suppress(psycopg.Error):
                    conn.raw.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @contextmanager
    def _write(self, lock_slots: bool = False) -> Iterator[_Conn]:
        with self._transaction("BEGIN") as conn:
            if lock_slots:  # one claim at a time, across every server and worker sharing the store
                conn.execute("SELECT version FROM schema_version FOR UPDATE")
            yield conn

    def _snapshot(self) -> AbstractContextManager[_Conn]:
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _lock_migrations(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def _tuples(self, sql: str, args: Iterable[Any]) -> list[tuple]:
        return self._conn().tuples(sql, list(args))

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._all_lock:
            conns = [c for _, c in self._all] + self._idle
            self._all, self._idle = [], []
        for conn in conns:
            _close(conn)
        self._local = threading.local()

    # ---------------------------------------------------------------- checks
    def integrity_check(self) -> str:
        """``"ok"`` or the problems: the schema version, metrics without a run, runs with a bad status or
        unreadable JSON, and (where the ``amcheck`` extension is installed) every B-tree index of the store."""
        problems = []
        conn = self._conn()
        if self.schema_version != len(self.MIGRATIONS):
            problems.append(f"schema version {self.schema_version}, expected {len(self.MIGRATIONS)}")
        orphans = conn.execute("SELECT COUNT(*) FROM metrics m LEFT JOIN runs r ON r.id = m.run_id "
                               "WHERE r.id IS NULL").fetchone()[0]
        if orphans:
            problems.append(f"{orphans} metric rows of runs that do not exist")
        for row in conn.execute("SELECT id, status, config, best_metrics, last_metrics, tags FROM runs"):
            if row["status"] not in STATUSES:
                problems.append(f"run {row['id']}: unknown status {row['status']!r}")
            for key in ("config", "best_metrics", "last_metrics", "tags"):
                if row[key] is not None:
                    try:
                        json.loads(row[key])
                    except ValueError:
                        problems.append(f"run {row['id']}: {key} is not JSON")
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone():
            indexes = conn.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am a ON a.oid = c.relam "
                "WHERE a.amname = 'btree' AND t.relnamespace = current_schema()::regnamespace "
                "AND t.relname IN ('runs', 'metrics', 'schema_version')").fetchall()
            for (name,) in ((r[0],) for r in indexes):
                try:
                    conn.execute("SELECT bt_index_check(?::regclass, true)", (name,))
                except psycopg.Error as exc:
                    problems.append(f"index {name}: {first_line(exc)}")
        return "\n".join(problems) or "ok"


def _close(conn: _Conn) -> None:
    with suppress(psycopg.Error, OSError):
        conn.raw.close()
