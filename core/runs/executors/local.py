"""The default executor: worker processes on this machine.

A job is ``<this python> -m core.train --run-id <id> --home <home> ...`` started in its own
session (so it outlives the Streamlit server and a browser refresh), its output appended to
the run's ``worker.log``; its handle is the pid. A job is known to be gone when its pid is
not alive, or is no longer this run's worker (a reused pid); only a process on this host
can be checked, so a run on another host is watched through its heartbeat alone.

A DDP run (world size >= 2) is driven by its job's worker, which starts one process per
rank here (``run_ranks``: torch's ``spawn`` start method, a process group on a free loopback
port). Each rank process dies with its driver (Linux's parent-death signal), so killing the
job's pid ends the whole run.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from core.runs.executors.base import UNKNOWN, Executor, JobInfo, JobSpec, RankTarget, Resources, read_tail
from core.runs.stores.base import RunRow, pid_alive
from core.settings import ROOT

DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID", "GROUP_RANK", "ROLE_RANK")
RANK_GRACE_S = 10.0  # a DDP process that outlives a failed peer this long is killed


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_worker(pid: int | None, run_id: str, kind: str = "job") -> bool:
    """The pid is alive and (for a job, where /proc tells) is the worker of this run, not a reused pid."""
    if pid is None or not pid_alive(pid):
        return False
    if kind != "job":
        return True  # a terminal run: any command line may have started it
    cmd = cmdline(pid)
    return not cmd or (run_id in cmd)


class LocalExecutor(Executor):
    """Worker processes on this machine (see the module doc)."""

    name: ClassVar[str] = "local"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.procs: dict[str, subprocess.Popen] = {}  # workers this executor started (to reap them)
        self._lock = threading.Lock()  # one executor may serve many server threads

    def command(self, job: JobSpec) -> list[str]:
        return [self.python, *job.argv]

    def launch(self, job: JobSpec) -> str:
        env = dict(os.environ)
        env.update(job.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        for key in DIST_VARS:
            env.pop(key, None)  # a job's worker is one process (a DDP run starts its ranks itself)
        command = self.command(job)
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, "ab") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(command, cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        with self._lock:
            self.procs[job.run_id] = proc
        return str(proc.pid)

    def tidy(self) -> None:
        """Reap the workers of this executor that have ended (no zombies)."""
        with self._lock:
            for run_id, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    self.procs.pop(run_id, None)

    def finished(self, run_id: str, timeout: float = 30.0) -> None:
        """The run has finished: wait for its worker process to exit (it is ending) and forget it."""
        with self._lock:
            proc = self.procs.pop(run_id, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)

    def status(self, run: RunRow) -> JobInfo:
        pid = run["pid"]
        if pid is None or run["host"] != socket.gethostname():
            return UNKNOWN  # not started yet, or on another host: its heartbeat tells
        if is_worker(pid, run["id"], run["kind"]):
            return JobInfo("running" if run["status"] == "running" else "pending", ref=str(pid))
        return JobInfo("missing", ref=str(pid))

    def kill(self, run: RunRow) -> None:
        pid = run["pid"]
        if pid is None or run["host"] != socket.gethostname() or not is_worker(pid, run["id"], run["kind"]):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker leads its own session

    def log_tail(self, run: RunRow, log: Path, max_bytes: int = 4000) -> str:
        return read_tail(log, max_bytes)

    def run_ranks(self, target: RankTarget, payload: dict[str, Any], world_size: int, resources: Resources,
                  run_dir: Path) -> int:
        port = _free_port()
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_rank_main, args=(target, payload, rank, world_size, port),
                             name=f"lab-rank-{rank}", daemon=False) for rank in range(world_size)]
        for proc in procs:
            proc.start()
        failed_at: float | None = None
        while any(p.is_alive() for p in procs):
            if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
                failed_at = time.monotonic()  # a peer failed: the others error out of their collectives soon
            if failed_at is not None and time.monotonic() - failed_at > RANK_GRACE_S:
                for p in procs:
                    if p.is_alive():
                        p.kill()
            time.sleep(0.1)
        codes = [p.exitcode or 0 for p in procs]
        return next((abs(c) for c in codes if c), 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent (the job's driver) dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _rank_main(target: RankTarget, payload: dict[str, Any], rank: int, world_size: int, port: int) -> None:
    _die_with_parent()
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world_size)})
    sys.exit(target(payload, rank, world_size, rank))
