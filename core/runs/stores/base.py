"""The run store's interface and the logic its back ends share.

A run store holds runs (one row each) and their metrics (many rows each); checkpoints and
logs are files in the lab home (``Settings.home``, env ``PYTORCH_LAB_HOME``)::

    <home>/runs/<run_id>/        last.pt, best.pt, worker.log

``RunStore`` is the interface every part of the lab uses (the job manager, the worker, the
CLI, the pages). Two back ends implement it, chosen by ``core.runs.store.open_store``:

- ``SQLiteRunStore`` (core/runs/stores/sqlite.py), the default: one file, ``<home>/runs.sqlite3``,
  shared by the processes of one machine;
- ``PostgresRunStore`` (core/runs/stores/postgres.py): a PostgreSQL database that servers and
  workers on many hosts share (``PYTORCH_LAB_STORE_URL=postgresql://...``); then the lab home
  must be a folder all those hosts share, because the checkpoints stay files there.

Both run the same SQL (written with ``?`` placeholders) through the hooks a back end
provides: a connection per thread (``_conn``), a write transaction (``_write``; the job-slot
claims ask it to serialize them with ``lock_slots=True``), a read snapshot (``_snapshot``),
``FOR_UPDATE`` for the rows a transaction decides on, and its list of migrations (the
same schema versions in both).

Run ids are generated (``r20250101-120000-3fa2c1``) and checked against a strict pattern
wherever one is used to build a path, so a run id can never reach outside ``runs/``.

What the store hands out has documented shapes: a run is a ``RunRow`` (its JSON columns
parsed, its flags as bools), its summary metrics a ``RunMetrics``, and a metric value a
``MetricRow`` (one row of ``metrics()``'s long frame; ``MetricPoint`` is what
``log_metrics`` takes). They are TypedDicts: plain dicts at run time, so ``run["status"]``
and ``run.get("started")`` read as before, and pandas builds frames from them directly.

Errors a user can see are ``StoreError``s (coded ``LabError``s, ``store.*``); a server that
cannot be reached, or went away in the middle of an operation, is a ``StoreUnavailable``,
which ``retrying`` retries with backoff for a bounded time (the worker's writes use it, so a
run survives a restart of its PostgreSQL).
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import socket
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypedDict, TypeVar, cast, get_args
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from core.errors import Code, LabError
from core.settings import settings_environ

RUNS_DIR = "runs"
Status = Literal["queued", "running", "completed", "stopped", "failed"]
Kind = Literal["job", "cli"]  # a background job (JobManager) or a run started in a terminal
STATUSES: tuple[Status, ...] = get_args(Status)
FINISHED: tuple[Status, ...] = ("completed", "stopped", "failed")
KINDS: tuple[Kind, ...] = get_args(Kind)
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_NAME = 200
MAX_TAGS = 32
MAX_TAG = 40
# A worker retries a write that failed because its store's server went away (a restart, a
# network blip) with growing pauses for this long in all, then gives up (the run fails).
RETRY_BUDGET_S = 60.0
RETRY_FIRST_DELAY_S = 0.25
RETRY_MAX_DELAY_S = 5.0


class RunMetrics(TypedDict, total=False):
    """A run's ``last_metrics`` / ``best_metrics``: the worker's summary of an epoch (values may be None)."""

    epoch: int
    step: int
    train_loss: float | None
    train_acc: float | None
    val_loss: float | None    # the validation split (model selection); absent in runs made before it existed
    val_acc: float | None
    test_loss: float | None   # the test split: reported, never used to choose
    test_acc: float | None
    lr: float | None
    seconds: float | None


class RunRow(TypedDict):
    """One run as the store returns it (``get_run``, ``run``, ``runs``); keys are the table's columns."""

    id: str
    name: str
    created: float                    # time.time() when stored
    status: Status
    config: dict[str, Any]            # the run's TrainConfig as a dict (TrainConfig.to_dict())
    device: str | None                # the device the worker trained on ("cpu", "cuda:0"), once known
    precision: str | None             # fp32, bf16, fp16
    best_metrics: RunMetrics | None   # the epoch best.pt holds: the best validation score so far
    last_metrics: RunMetrics | None   # the last finished epoch
    tags: list[str]
    kind: Kind                        # job (a background worker) or cli (a terminal)
    pid: int | None                   # the worker process
    host: str | None                  # the machine it runs on
    heartbeat: float | None           # the worker's last sign of life
    launched: float | None            # a job handed to a worker process, not yet claimed by it
    started: float | None
    finished: float | None
    stop_requested: bool              # the worker stops at its next heartbeat
    epoch: int                        # epochs completed
    step: int                         # optimizer steps done
    error: str | None                 # why a failed run failed
    delete_requested: bool            # deleted as soon as its worker has stopped (JobManager.delete)
    parent: str | None                # the run this one was cloned from (Runs page: clone, tweak, enqueue)
    sweep: str | None                 # the sweep that queued it (core.runs.sweep), linking its runs
    executor: str | None              # the executor that launched the job: local, ray (None: not launched yet)
    job_ref: str | None               # the job's handle in its executor (a Ray Job's submission id)
    world_size: int                   # processes of a DDP run (1: one process)
    learner: str | None               # the learner it was started for (the classroom's fair-share queue)


class MetricRow(TypedDict):
    """One stored metric value: a row of ``metrics()`` / ``metrics_since()`` (columns ``METRIC_COLUMNS``)."""

    run_id: str
    step: int            # optimizer steps done when it was measured
    epoch: int           # 1-based for step metrics (the epoch in progress), epochs done for epoch metrics
    name: str            # loss, lr, grad_norm, samples_per_s, train_loss, train_acc, test_loss, ...
    value: float | None  # None when it was not finite
    wall: float          # time.time() when logged


class _MetricValue(TypedDict):
    step: int
    epoch: int
    name: str
    value: float | None


class MetricPoint(_MetricValue, total=False):
    """A metric value to store (``log_metrics``): step, epoch, name, value; ``wall`` defaults to now."""

    wall: float


MetricTuple = tuple[int, int, str, float | None] | tuple[int, int, str, float | None, float]
"""``(step, epoch, name, value)`` or ``(step, epoch, name, value, wall)``: ``log_metrics``'s compact rows."""


class StoreError(LabError, RuntimeError):
    """The run store cannot be opened or used (``store.*`` codes; the message says why)."""


class StoreUnavailable(StoreError):
    """The store's server cannot be reached now (``store.unreachable``) or went away during an
    operation (``store.connection_lost``): a later try may succeed (see ``retrying``)."""


T = TypeVar("T")


def retrying(action: Callable[[int], T], budget_s: float = RETRY_BUDGET_S,
             on_retry: Callable[[StoreUnavailable, float], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """``action(attempt)`` (attempt 0, 1, ...), tried again after a ``StoreUnavailable`` with pauses
    of 0.25, 0.5, 1, 2, 4, 5, 5, ... s while the pauses add up to at most ``budget_s``; then the
    last error is raised. Any other exception is raised at once. ``on_retry(error, pause)`` is
    told before each pause (the worker writes a line to its log)."""
    delay, waited, attempt = RETRY_FIRST_DELAY_S, 0.0, 0
    while True:
        try:
            return action(attempt)
        except StoreUnavailable as exc:
            if waited + delay > budget_s:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
            waited += delay
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
            attempt += 1


def note_retry(exc: StoreUnavailable, pause: float) -> None:
    """``retrying``'s ``on_retry`` for a worker: one line on stderr (its log)."""
    print(f"note: {exc} (retrying in {pause:g} s)", file=sys.stderr, flush=True)


def new_run_id() -> str:
    """A fresh run id: ``r`` + UTC timestamp + 6 random hex digits."""
    return "r" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def check_run_id(run_id: Any) -> str:
    """``run_id`` if it matches the strict pattern (letters, digits, ``_``, ``-``), else ValueError."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"invalid run id {run_id!r}: use 1-64 letters, digits, '_' or '-', starting with a "
                         "letter or digit")
    return run_id


MAX_WORLD_SIZE = 1024


def check_world_size(world_size: Any) -> int:
    """``world_size`` (processes of a DDP run) if it is a whole number from 1 to ``MAX_WORLD_SIZE``, else ValueError."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or not 1 <= world_size <= MAX_WORLD_SIZE:
        raise ValueError(f"a run's world size (processes) must be a whole number from 1 to {MAX_WORLD_SIZE}, "
                         f"got {world_size!r}")
    return world_size


JSON_FIELDS = ("config", "best_metrics", "last_metrics", "tags")
FLAGS = ("stop_requested", "delete_requested")
UPDATABLE = {"name", "status", "device", "precision", "best_metrics", "last_metrics", "tags", "kind", "pid",
             "host", "heartbeat", "launched", "started", "finished", "stop_requested", "epoch", "step", "error",
             "config", "delete_requested", "parent", "sweep", "executor", "job_ref", "world_size"}
METRIC_COLUMNS = list(MetricRow.__annotations__)
RUN_COLUMNS = list(RunRow.__annotations__)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, allow_nan=False, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    try:
        return float(value)  # numpy / torch scalars
    except (TypeError, ValueError):
        raise TypeError(f"{type(value).__name__} is not JSON serializable") from None


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _clean_metrics(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    out = {}
    for k, v in metrics.items():
        if isinstance(v, float):
            out[str(k)] = _finite_or_none(v)
        else:
            out[str(k)] = v
    return out


def _check_tags(tags: Iterable[str]) -> list[str]:
    tags = list(tags)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    for t in tags:
        if not isinstance(t, str) or not 1 <= len(t.strip()) <= MAX_TAG:
            raise ValueError(f"a tag must be 1 to {MAX_TAG} characters, got {t!r}")
    return sorted({t.strip() for t in tags})


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise ValueError(f"a run name must be text of at most {MAX_NAME} characters")
    return name.strip()


def masked_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "postgresql://…"


class Cursor(Protocol):
    """What the shared SQL needs of a cursor (sqlite3's and the PostgreSQL back end's)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the shared SQL needs of a connection: ``execute`` and ``executemany`` with ``?`` placeholders;
    rows answer both ``row[0]`` and ``row["column"]``."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class RunStore(ABC):
    """Runs and metrics of one lab: the interface, with the logic both back ends share.

    ``home`` is the lab home (checkpoints and logs in ``runs/<id>/``), ``url`` the store's URL
    (``None`` for the SQLite file in the home), ``location`` where the store is, for messages
    (a URL without its password). A store is safe to share across threads and processes.
    """

    MIGRATIONS: ClassVar[list[list[str]]]  # each back end's DDL; version i -> i + 1
    FOR_UPDATE: ClassVar[str] = ""          # appended to the SELECTs whose rows a write transaction decides on
    SETTING: ClassVar[str] = "PYTORCH_LAB_HOME"  # the setting that chooses this store (for messages)

    home: Path
    url: str | None
    location: str

    def _init_home(self, home: str | Path) -> None:
        self.home = Path(home).expanduser()
        try:
            (self.home / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError("store.no_home", home=Code(str(self.home)), reason=exc.strerror or str(exc)) from None

    # ---------------------------------------------------------------- back-end hooks
    @abstractmethod
    def _conn(self) -> Connection:
        """This thread's connection (opened on first use)."""

    @abstractmethod
    def _write(self, lock_slots: bool = False) -> AbstractContextManager[Connection]:
        """A write transaction; ``lock_slots`` serializes it with every other job-slot claim."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Connection]:
        """A read transaction: its queries see one snapshot."""

    @abstractmethod
    def _tuples(self, sql: str, args: Iterable[Any]) -> list[tuple]:
        """Rows as plain tuples (cheaper than named rows on metric-sized reads)."""

    def _lock_migrations(self, conn: Connection) -> None:  # noqa: B027 - a hook: most back ends need nothing
        """Serialize migrations of processes that open the store at once (SQLite's write lock does)."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""

    @abstractmethod
    def integrity_check(self) -> str:
        """``"ok"``, or the problems found in the stored data."""

    def worker_env(self) -> dict[str, str]:
        """The environment that makes a worker process (here or on another host) open this same store."""
        return settings_environ(home=self.home, store_url=self.url or "")

    # ---------------------------------------------------------------- schema
    @property
    def schema_version(self) -> int:
        row = self._conn().execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        migrations = self.MIGRATIONS
        with self._write() as conn:
            self._lock_migrations(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > len(migrations):
                raise StoreError("store.newer_schema", where=Code(self.location), version=version,
                                 supported=len(migrations), setting=Code(self.SETTING))
            for i in range(version, len(migrations)):
                for sql in migrations[i]:
                    conn.execute(sql)
                conn.execute("UPDATE schema_version SET version = ?", (i + 1,))

    # ---------------------------------------------------------------- paths
    def run_dir(self, run_id: str, create: bool = False) -> Path:
        path = self.home / RUNS_DIR / check_run_id(run_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    # ---------------------------------------------------------------- runs
    def create_run(self, config: dict, name: str = "", tags: Iterable[str] = (), status: str = "queued",
                   kind: str = "cli", run_id: str | None = None, device: str | None = None,
                   precision: str | None = None, parent: str | None = None, sweep: str | None = None,
                   world_size: int = 1, learner: str | None = None) -> str:
        """Store a new run; ``parent`` is the run it was cloned from, ``sweep`` the sweep that queued it,
        ``world_size`` its DDP processes, ``learner`` who started it (a checked learner name)."""
        run_id = check_run_id(run_id) if run_id is not None else new_run_id()
        parent = check_run_id(parent) if parent is not None else None
        sweep = check_run_id(sweep) if sweep is not None else None
        world_size = check_world_size(world_size)
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if not isinstance(config, dict):
            raise ValueError("config must be a dict")
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (id, name, created, status, config, device, precision, tags, kind, host, started, "
                "heartbeat, parent, sweep, world_size, learner) VALUES (" + ", ".join("?" * 16) + ")",
                (run_id, _check_name(name), now, status, _json(config), device, precision, _json(_check_tags(tags)),
                 kind, socket.gethostname(), now if status == "running" else None,
                 now if status == "running" else None, parent, sweep, world_size,
                 learner))
        return run_id

    @staticmethod
    def _row(row: Any) -> RunRow:
        out = dict(row)
        for key in JSON_FIELDS:
            if key in out and out[key] is not None:
                out[key] = json.loads(out[key])
        for key in FLAGS:
            out[key] = bool(out.get(key))
        return cast(RunRow, out)

    def get_run(self, run_id: str) -> RunRow | None:
        row = self._conn().execute("SELECT * FROM runs WHERE id = ?", (check_run_id(run_id),)).fetchone()
        return None if row is None else self._row(row)

    def run(self, run_id: str) -> RunRow:
        """Like ``get_run`` but a missing run is a ``KeyError`` with a clear message."""
        found = self.get_run(run_id)
        if found is None:
            raise KeyError(f"no run {run_id!r} in {self.location}")
        return found

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run (status, metrics dicts, heartbeat, pid, ...)."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update run field(s): {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if not fields:
            return
        values = []
        for key, value in fields.items():
            if key in ("best_metrics", "last_metrics"):
                value = _json(_clean_metrics(value))
            elif key == "tags":
                value = _json(_check_tags(value))
            elif key == "config":
                value = _json(value)
            elif key == "name":
                value = _check_name(value)
            elif key in FLAGS:
                value = int(bool(value))
            elif key == "world_size":
                value = check_world_size(value)
            values.append(value)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._write() as conn:
            cur = conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values, check_run_id(run_id)))
        if cur.rowcount == 0:
            raise KeyError(f"no run {run_id!r} in {self.location}")

    def heartbeat(self, run_id: str, epoch: int | None = None, step: int | None = None) -> None:
        fields: dict[str, Any] = {"heartbeat": time.time()}
        if epoch is not None:
            fields["epoch"] = int(epoch)
        if step is not None:
            fields["step"] = int(step)
        self.update_run(run_id, **fields)

    def rename_run(self, run_id: str, name: str) -> None:
        self.update_run(run_id, name=name)

    def set_tags(self, run_id: str, tags: Iterable[str]) -> None:
        self.update_run(run_id, tags=list(tags))

    def request_stop(self, run_id: str) -> None:
        self.update_run(run_id, stop_requested=True)

    def stop_requested(self, run_id: str) -> bool:
        row = self._conn().execute("SELECT stop_requested FROM runs WHERE id = ?", (check_run_id(run_id),)).fetchone()
        return bool(row and row[0])

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in FINISHED:
            raise ValueError(f"a finished run's status is one of {', '.join(FINISHED)}")
        self.update_run(run_id, status=status, finished=time.time(), error=error, stop_requested=False)

    def delete_run(self, run_id: str, files: bool = True) -> None:
        """Delete a run, its metrics and (by default) its folder of checkpoints and logs."""
        with self._write() as conn:
            self._delete_rows(conn, check_run_id(run_id))
        if files:
            shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    @staticmethod
    def _delete_rows(conn: Connection, run_id: str) -> None:
        conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def delete_or_mark(self, run_id: str) -> bool:
        """Delete a run that no worker holds (True), else ask it to stop and mark it for deletion (False).

        One transaction decides: a finished run, or a queued one not yet handed to a worker, is
        deleted now; a running (or launched) one gets its stop and delete flags, and
        ``delete_marked()`` removes it once it has finished. Unknown run: ``KeyError``.
        """
        with self._write() as conn:
            row = conn.execute("SELECT status, launched FROM runs WHERE id = ?" + self.FOR_UPDATE,
                               (check_run_id(run_id),)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id!r} in {self.location}")
            free = row["status"] in FINISHED or (row["status"] == "queued" and row["launched"] is None)
            if free:
                self._delete_rows(conn, run_id)
            else:
                conn.execute("UPDATE runs SET stop_requested = 1, delete_requested = 1 WHERE id = ?", (run_id,))
        if free:
            shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        return free

    def delete_marked(self, run_id: str | None = None) -> list[str]:
        """Delete the finished runs marked for deletion (all, or just ``run_id``); returns their ids."""
        sql = f"SELECT id FROM runs WHERE delete_requested = 1 AND status IN ({', '.join('?' * len(FINISHED))})"
        args: list[str] = list(FINISHED)
        if run_id is not None:
            sql += " AND id = ?"
            args.append(check_run_id(run_id))
        conn = self._conn()
        if conn.execute(sql + " LIMIT 1", args).fetchone() is None:  # the usual case: no write lock taken
            return []
        with self._write() as conn:
            ids = [r[0] for r in conn.execute(sql + self.FOR_UPDATE, args).fetchall()]
            for found in ids:
                self._delete_rows(conn, found)
        for found in ids:
            shutil.rmtree(self.run_dir(found), ignore_errors=True)
        return ids

    def runs(self, status: str | Iterable[str] | None = None, kind: str | None = None) -> list[RunRow]:
        """All runs as dicts (config and metrics parsed), newest first."""
        sql, args = "SELECT * FROM runs", []
        where = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._row(r) for r in self._conn().execute(sql + " ORDER BY created DESC, id DESC", args)]

    def list_runs(self, status: str | Iterable[str] | None = None, kind: str | None = None) -> pd.DataFrame:
        """All runs, newest first, one row each (config and metrics as dicts)."""
        return pd.DataFrame(self.runs(status, kind), columns=RUN_COLUMNS)

    # ---------------------------------------------------------------- job slots
    def count_active_jobs(self, conn: Connection | None = None) -> int:
        """Job runs holding a slot: running, or queued and already handed to a worker process."""
        conn = conn or self._conn()
        row = conn.execute("SELECT COUNT(*) FROM runs WHERE kind = 'job' AND "
                           "(status = 'running' OR (status = 'queued' AND launched IS NOT NULL))").fetchone()
        return int(row[0])

    def claim_launches(self, cap: int, per_learner: int = 0) -> list[str]:
        """Queued job runs (oldest first) that may be launched now, marked as launched, race-free.

        ``per_learner`` > 0 is the classroom's fair share: a learner's run is passed over while that
        learner already has ``per_learner`` jobs holding a slot, so the oldest run of every other
        learner goes first (runs without a learner are not limited)."""
        now = time.time()
        # Every page watching a run polls each second: take the write lock only when a run waits.
        if self._conn().execute("SELECT 1 FROM runs WHERE kind = 'job' AND status = 'queued' AND launched IS NULL "
                                "LIMIT 1").fetchone() is None:
            return []
        with self._write(lock_slots=True) as conn:
            free = cap - self.count_active_jobs(conn)
            if free <= 0:
                return []
            if per_learner > 0:
                busy = self.active_by_learner(conn)
                rows = conn.execute("SELECT id, learner FROM runs WHERE kind = 'job' AND status = 'queued' AND "
                                    "launched IS NULL ORDER BY created, id" + self.FOR_UPDATE).fetchall()
                ids: list[str] = []
                for run_id, learner in rows:
                    if len(ids) >= free:
                        break
                    if learner is not None:
                        if busy.get(learner, 0) >= per_learner:
                            continue
                        busy[learner] = busy.get(learner, 0) + 1
                    ids.append(run_id)
            else:
                rows = conn.execute("SELECT id FROM runs WHERE kind = 'job' AND status = 'queued' AND launched IS NULL "
                                    "ORDER BY created, id LIMIT ?" + self.FOR_UPDATE, (free,)).fetchall()
                ids = [r[0] for r in rows]
            for run_id in ids:
                conn.execute("UPDATE runs SET launched = ?, heartbeat = ?, host = ? WHERE id = ?",
                             (now, now, socket.gethostname(), run_id))
        return ids

    def active_by_learner(self, conn: Connection | None = None) -> dict[str, int]:
        """Each learner's jobs that hold a slot (running, or launched and not yet claimed)."""
        conn = conn or self._conn()
        rows = conn.execute("SELECT learner, COUNT(*) FROM runs WHERE kind = 'job' AND learner IS NOT NULL AND "
                            "(status = 'running' OR (status = 'queued' AND launched IS NOT NULL)) "
                            "GROUP BY learner").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def learner_runs(self, learner: str, status: Iterable[str] = ("queued", "running")) -> list[str]:
        """The ids of a learner's runs in these states (every server sharing the store sees them)."""
        states = list(status)
        marks = ", ".join("?" * len(states))
        rows = self._conn().execute(f"SELECT id FROM runs WHERE learner = ? AND status IN ({marks}) "
                                    "ORDER BY created, id", (learner, *states)).fetchall()
        return [r[0] for r in rows]

    def claim_run(self, run_id: str, pid: int, cap: int | None = None) -> bool:
        """The worker's claim: queued -> running if fewer than ``cap`` other jobs run (one transaction)."""
        now = time.time()
        with self._write(lock_slots=True) as conn:
            row = conn.execute("SELECT status, kind FROM runs WHERE id = ?" + self.FOR_UPDATE,
                               (check_run_id(run_id),)).fetchone()
            if row is None or row["status"] != "queued":
                return False
            if cap is not None and row["kind"] == "job":
                running = conn.execute("SELECT COUNT(*) FROM runs WHERE kind = 'job' AND status = 'running' "
                                       "AND id != ?", (run_id,)).fetchone()[0]
                if running >= cap:
                    return False
            conn.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, heartbeat = ?, started = ?, "
                         "finished = NULL, error = NULL WHERE id = ?",
                         (pid, socket.gethostname(), now, now, run_id))
        return True

    def release_launch(self, run_id: str) -> None:
        """Give a launched-but-unclaimed run back to the queue."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET launched = NULL, pid = NULL WHERE id = ? AND status = 'queued'",
                         (check_run_id(run_id),))

    # ---------------------------------------------------------------- metrics
    def log_metrics(self, run_id: str, rows: Iterable[MetricTuple | MetricPoint], once: bool = False) -> int:
        """Append metric rows in one transaction.

        A row is ``(step, epoch, name, value)`` or ``(step, epoch, name, value, wall)`` or a
        ``MetricPoint`` dict with those keys. Non-finite values are stored as NULL. Returns
        rows written.

        ``once=True`` retries a batch whose rows share one ``wall`` time after the store went
        away during the first try (which may have committed before its answer was lost): the
        batch is written only if no row of this run has that wall time yet.
        """
        now = time.time()
        check_run_id(run_id)
        data = []
        for row in rows:
            if isinstance(row, dict):
                step, epoch, name, value = row["step"], row["epoch"], row["name"], row.get("value")
                wall = row.get("wall", now)
            else:
                step, epoch, name, value, *rest = row
                wall = rest[0] if rest else now
            data.append((run_id, int(step), int(epoch), str(name), _finite_or_none(value), float(wall)))
        if not data:
            return 0
        with self._write() as conn:
            if once:
                walls = {d[5] for d in data}
                if len(walls) != 1:
                    raise ValueError("log_metrics(once=True) needs one wall time for the whole batch")
                if conn.execute("SELECT 1 FROM metrics WHERE run_id = ? AND wall = ? LIMIT 1",
                                (run_id, walls.pop())).fetchone() is not None:
                    return 0
            conn.executemany("INSERT INTO metrics (run_id, step, epoch, name, value, wall) VALUES (?, ?, ?, ?, ?, ?)",
                             data)
        return len(data)

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop metrics logged after ``after_step`` (a resumed run repeats those steps)."""
        with self._write() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (check_run_id(run_id), int(after_step)))

    def metrics(self, run_id: str, names: Iterable[str] | None = None) -> pd.DataFrame:
        """A run's metrics as a long DataFrame, one ``MetricRow`` per row: run_id, step, epoch, name, value, wall."""
        sql = "SELECT run_id, step, epoch, name, value, wall FROM metrics WHERE run_id = ?"
        args = [check_run_id(run_id)]
        if names is not None:
            names = list(names)
            if not names:
                return pd.DataFrame(columns=METRIC_COLUMNS)
            sql += f" AND name IN ({', '.join('?' * len(names))})"
            args += names
        return pd.DataFrame.from_records(self._tuples(sql + " ORDER BY step, rowid", args), columns=METRIC_COLUMNS)

    def metrics_since(self, run_id: str, after: int = 0,
                      names: Iterable[str] | None = None) -> tuple[pd.DataFrame, int, int]:
        """Metric rows stored after row number ``after`` (insertion order), for an incremental reader.

        Returns (the new rows as ``metrics()`` shapes them, the last row number read, the run's
        total number of rows then). Both reads see one snapshot, so a reader that holds
        ``n`` rows and gets ``k`` new ones knows its rows are still all there when the total is
        ``n + k`` (a resumed run deletes the rows after its checkpoint: read everything again).
        """
        where, args = "run_id = ?", [check_run_id(run_id)]
        if names is not None:
            names = list(names)
            where += f" AND name IN ({', '.join('?' * len(names))})" if names else " AND 1 = 0"
            args += names
        with self._snapshot() as conn:
            rows = self._tuples(f"SELECT rowid, run_id, step, epoch, name, value, wall FROM metrics WHERE {where} "
                                "AND rowid > ? ORDER BY rowid", [*args, int(after)])
            total = conn.execute(f"SELECT COUNT(*) FROM metrics WHERE {where}", args).fetchone()[0]
        last = rows[-1][0] if rows else int(after)
        frame = pd.DataFrame.from_records([r[1:] for r in rows], columns=METRIC_COLUMNS)
        return frame, last, int(total)

    def metrics_wide(self, run_id: str, names: Iterable[str] | None = None) -> pd.DataFrame:
        """Metrics pivoted to one row per (step, epoch), one column per name."""
        long = self.metrics(run_id, names)
        if long.empty:
            return pd.DataFrame(columns=["step", "epoch"])
        wide = long.pivot_table(index=["step", "epoch"], columns="name", values="value", aggfunc="last")
        wide.columns.name = None
        return wide.reset_index()


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine and is not a zombie."""
    if not pid or pid <= 0:
        return False
    with suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own finished child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
