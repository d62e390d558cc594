"""The run store: where runs and their metrics live (checkpoints are files in the lab home).

``open_store()`` opens the lab's store as its settings say: with ``PYTORCH_LAB_STORE_URL``
unset, the SQLite file ``runs.sqlite3`` in ``PYTORCH_LAB_HOME`` (the default, for one
machine); with ``PYTORCH_LAB_STORE_URL=postgresql://user@host:port/db``, that PostgreSQL
database (for servers and workers on many hosts, which then share the lab home's folder
for the checkpoints). Everything else in the lab uses the ``RunStore`` interface.

This module is the store's public face: the interface, its row shapes, errors and helpers
(from ``core.runs.stores.base``), the back ends and the factory. ``MIGRATIONS`` and
``SCHEMA_VERSION`` are the SQLite back end's (PostgreSQL's list has the same versions).
"""
from __future__ import annotations

from pathlib import Path

from core.errors import Code
from core.runs.stores.base import (
    FINISHED,
    KINDS,
    METRIC_COLUMNS,
    RUN_COLUMNS,
    RUN_ID_RE,
    RUNS_DIR,
    STATUSES,
    Kind,
    MetricPoint,
    MetricRow,
    MetricTuple,
    RunMetrics,
    RunRow,
    RunStore,
    Status,
    StoreError,
    StoreUnavailable,
    check_run_id,
    masked_url,
    new_run_id,
    note_retry,
    pid_alive,
    retrying,
)
from core.runs.stores.sqlite import BUSY_TIMEOUT_MS, DB_NAME, MIGRATIONS, SCHEMA_VERSION, SQLiteRunStore
from core.settings import Settings, load_settings

URL_SCHEMES = ("postgresql://", "postgres://")

__all__ = [
    "BUSY_TIMEOUT_MS", "DB_NAME", "FINISHED", "KINDS", "METRIC_COLUMNS", "MIGRATIONS", "RUNS_DIR", "RUN_COLUMNS",
    "RUN_ID_RE", "SCHEMA_VERSION", "STATUSES", "Kind", "MetricPoint", "MetricRow", "MetricTuple", "RunMetrics",
    "RunRow", "RunStore", "SQLiteRunStore", "Status", "StoreError", "StoreUnavailable", "check_run_id",
    "masked_url", "new_run_id", "note_retry", "open_store", "pid_alive", "retrying",
]


def open_store(settings: Settings | None = None, *, home: str | Path | None = None,
               url: str | None = None) -> RunStore:
    """The lab's run store: ``url`` (default ``settings.store_url``) names PostgreSQL, else SQLite in ``home``.

    ``home`` (default ``settings.home``) holds the checkpoints and logs either way. A URL
    that is not ``postgresql://...`` is a ``StoreError`` (``store.bad_url``); an unreachable
    server is a ``StoreUnavailable`` (``store.unreachable``) after at most its connect timeout.
    """
    if settings is None and (home is None or url is None):
        settings = load_settings()
    if home is None:
        assert settings is not None
        home = settings.home
    if url is None:
        assert settings is not None
        url = settings.store_url or ""
    url = url.strip()
    if not url:
        return SQLiteRunStore(home)
    if not url.startswith(URL_SCHEMES):
        raise StoreError("store.bad_url", setting=Code("PYTORCH_LAB_STORE_URL"), url=Code(masked_url(url)),
                         example=Code("postgresql://user@host:port/database"))
    try:
        from core.runs.stores.postgres import PostgresRunStore
    except ImportError:
        raise StoreError("store.no_driver", setting=Code("PYTORCH_LAB_STORE_URL"),
                         command=Code("pip install -r requirements-scale.txt")) from None
    return PostgresRunStore(url, home)
