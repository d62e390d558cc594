"""Fixtures for every test folder: the run store's back ends.

``store_url`` is parametrized over the back ends: ``""`` (SQLite in the lab home, the
default) and, marked ``postgres``, the URL of a fresh database on a throwaway PostgreSQL
server that the session starts once (``bench.pgserver``: initdb + pg_ctl on a free loopback
port, as the ``postgres`` user when the tests run as root). The fixture also sets
``PYTORCH_LAB_STORE_URL`` for the test, so everything that opens the lab's store (JobManager,
the CLI, the pages, worker processes) opens that one.

Without PostgreSQL (or psycopg) the PostgreSQL cases are skipped; with
``LAB_REQUIRE_POSTGRES=1`` (CI sets it) they fail instead. ``-m "not postgres"`` leaves them out.
"""
from __future__ import annotations

import contextlib
import os

import pytest

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# The test server trades durability for speed: every test's database is thrown away.
TEST_SERVER_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                        "max_connections": "200"}


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the session (skipped, or failed under LAB_REQUIRE_POSTGRES=1, without one)."""
    from bench.pgserver import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer(TEST_SERVER_SETTINGS).start()
    except PostgresUnavailable as exc:
        if os.environ.get("LAB_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LAB_REQUIRE_POSTGRES=1, but PostgreSQL could not be started: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL for the postgres tests: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh database on the session's server (dropped afterwards)."""
    url = pg_server.database()
    yield url
    with contextlib.suppress(Exception):
        pg_server.drop(url)


@pytest.fixture(params=BACKENDS)
def store_url(request, monkeypatch) -> str:
    """``""`` (SQLite) or a fresh PostgreSQL database's URL, also set as ``PYTORCH_LAB_STORE_URL``."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    monkeypatch.setenv("PYTORCH_LAB_STORE_URL", url)
    return url
