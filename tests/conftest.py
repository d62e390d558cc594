"""Fixtures for every test folder: the run store's back ends.

``store_url`` is parametrized over the back ends: ``""`` (SQLite in the lab home, the
default) and, marked ``postgres``, the URL of a fresh database on a throwaway PostgreSQL
server that the session starts once (``bench.pgserver``: initdb + pg_ctl on a free loopback
port, as the ``postgres`` user when the tests run as root). The fixture also sets
``PYTORCH_LAB_STORE_URL`` for the test, so everything that opens the lab's store (JobManager,
the CLI, the pages, worker processes) opens that one.

Without PostgreSQL (or psycopg) the PostgreSQL cases are skipped; with
``LAB_REQUIRE_POSTGRES=1`` (CI sets it) they fail instead. ``-m "not postgres"`` leaves them out.

``ray_head`` is a throwaway Ray cluster (one head node on loopback, 2 CPUs; ``bench.raycluster``)
for one test module (marker ``ray``): started when the module's first test needs it, stopped
after its last, with everything it started. Without Ray it skips; with ``LAB_REQUIRE_RAY=1``
(CI) it fails instead.
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


def require_or_skip(variable: str, what: str, reason: str) -> None:
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1, but {what}: {reason}", pytrace=False)
    pytest.skip(f"{what}: {reason}")


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head node on loopback for this module's tests (see the module doc)."""
    from bench.raycluster import RayNode, RayUnavailable

    node = None
    try:
        node = RayNode.head_node(num_cpus=2).start().wait_ready()
    except RayUnavailable as exc:
        if node is not None:
            node.stop()
        require_or_skip("LAB_REQUIRE_RAY", "no Ray cluster for the ray tests", str(exc))
    yield node
    node.stop(timeout=5)  # a throwaway head: after 5 s its processes are killed (a clean stop can take 20 s)
