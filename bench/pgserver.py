"""A throwaway PostgreSQL server on a free loopback port, for the store benchmark and the tests.

``PostgresServer().start()`` runs ``initdb`` into a fresh temporary folder and starts the
server with ``pg_ctl`` on ``127.0.0.1:<free port>`` (its Unix socket in the data folder),
trust authentication for its superuser ``postgres`` on loopback only; ``stop()`` ends it and
removes the folder. ``database()`` creates a fresh database and returns its URL (what
``PYTORCH_LAB_STORE_URL`` takes). ``restart()`` / ``stop_server()`` + ``start_server()``
bounce it (the fault tests restart it under a training run).

PostgreSQL refuses to run as root: as root, every server command runs as the ``postgres``
user (``runuser -u postgres --``; Debian's package creates that user), and the data folder
belongs to it. The binaries are looked for on ``PATH`` and in Debian's
``/usr/lib/postgresql/<version>/bin`` (newest first).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

DEBIAN_BIN = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL (or the psycopg driver) is not installed here, or its server did not start."""


def find_bin_dir() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: PATH first, then Debian's newest version."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    if DEBIAN_BIN.is_dir():
        versions = sorted((p for p in DEBIAN_BIN.iterdir() if (p / "bin" / "initdb").exists()),
                          key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")], reverse=True)
        if versions:
            return versions[0] / "bin"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One throwaway server (see the module doc). ``settings`` are extra ``-c name=value`` options."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bin = find_bin_dir()
        if self.bin is None:
            raise PostgresUnavailable("PostgreSQL is not installed (no initdb/pg_ctl on PATH or under "
                                      f"{DEBIAN_BIN}); on Debian: apt-get install postgresql")
        try:
            import psycopg  # noqa: F401 - the lab's driver must be there too
        except ImportError:
            raise PostgresUnavailable("psycopg is not installed: pip install -r requirements-scale.txt") from None
        self.as_root = os.geteuid() == 0
        self.settings = dict(settings or {})
        self.folder: Path | None = None
        self.port = 0

    # ---------------------------------------------------------------- commands
    def _run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", SUPERUSER, "--"] if self.as_root else []
        assert self.bin is not None
        proc = subprocess.run([*prefix, str(self.bin / cmd[0]), *cmd[1:]], capture_output=True, text=True,
                              timeout=timeout, cwd="/")
        if proc.returncode != 0:
            log = self.log_tail()
            raise PostgresUnavailable(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}"
                                      + (f"\nserver log:\n{log}" if log else ""))
        return proc

    @property
    def data(self) -> Path:
        assert self.folder is not None, "start() first"
        return self.folder / "data"

    def log_tail(self, n: int = 3000) -> str:
        try:
            return (self.folder / "server.log").read_text(errors="replace")[-n:] if self.folder else ""
        except OSError:
            return ""

    def _options(self) -> str:
        opts = {"listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": str(self.data),
                **self.settings}
        return " ".join(f"-c {k}={v}" for k, v in opts.items())

    # ---------------------------------------------------------------- life cycle
    def start(self) -> PostgresServer:
        """initdb a fresh folder and start the server on a free loopback port (three tries for the port)."""
        self.folder = Path(tempfile.mkdtemp(prefix="lab-pg-"))
        os.chmod(self.folder, 0o755)  # the postgres user must reach its data folder inside
        self.data.mkdir(mode=0o700)
        (self.folder / "server.log").touch()
        if self.as_root:
            shutil.chown(self.data, SUPERUSER, SUPERUSER)
            shutil.chown(self.folder / "server.log", SUPERUSER, SUPERUSER)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--no-sync",
                      "--encoding=UTF8", "--locale=C")
            for attempt in range(3):
                self.port = free_port()
                try:
                    self.start_server()
                    break
                except PostgresUnavailable:
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def start_server(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", self._options(), "start")

    def stop_server(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """``pg_ctl restart`` (fast shutdown: open connections are dropped, then it starts again)."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-m", "fast", "-w",
                  "-t", "60", "-o", self._options(), "restart")

    def stop(self) -> None:
        """Stop the server (immediately) and remove its folder."""
        if self.folder is None:
            return
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired, OSError):
                self.stop_server("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- databases
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self):
        """A psycopg connection to the maintenance database (autocommit)."""
        import psycopg

        return psycopg.connect(self.url(), autocommit=True, connect_timeout=10)

    def database(self, name: str | None = None, extensions: tuple[str, ...] = ("amcheck",)) -> str:
        """Create a fresh database (with ``extensions`` where installed); returns its URL."""
        name = name or "lab_" + uuid.uuid4().hex[:12]
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        import psycopg

        with psycopg.connect(self.url(name), autocommit=True, connect_timeout=10) as conn:
            for ext in extensions:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database of ``url`` (its connections are ended first)."""
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until a connection succeeds (after a restart)."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
