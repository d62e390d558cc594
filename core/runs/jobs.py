"""Training runs as background jobs: start, stop, resume, a queue under a job cap, reaping.

A job is a worker process running the same command a user can type in a terminal::

    python -m core.train --run-id <id> --home <home>

started in its own session (so it outlives the Streamlit server and a browser refresh)
and writing everything to the run store. All job state lives in the store, so any
``JobManager`` (a page, a restarted server, a test) sees and controls every job:

- ``start(config)`` validates the config, stores the run as ``queued`` and calls ``poll()``.
- ``poll()`` (call it at startup and whenever a page refreshes) reaps dead workers and
  launches queued runs while fewer than ``cap`` jobs hold a slot. Slots are claimed in
  serialized store transactions (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row lock), by the
  manager when launching and again by the worker when it starts, so two servers sharing a
  store cannot exceed the cap.
- ``stop(run_id)`` sets the run's stop flag; the worker sees it at its next heartbeat,
  finishes the current step, saves ``last.pt`` and ends with status ``stopped``. A run
  still waiting in the queue is simply marked stopped.
- ``resume(run_id)`` puts a stopped or failed run back in the queue; its worker continues
  from ``last.pt`` to the configured number of epochs.
- ``delete(run_id)`` returns at once: a run no worker holds is deleted; an active one is
  asked to stop and marked, and is deleted (rows and folder) as soon as it has finished,
  by the next ``poll()`` of any manager (the finishing worker's own hand-off polls too).
- ``reap()`` marks ``failed`` a running run whose worker process is gone (e.g. SIGKILL) or
  whose heartbeat is older than ``stale_after`` seconds.

Thread counts: on a small machine the server and the workers share few cores, so each
worker gets ``thread_plan()``'s share through ``OMP_NUM_THREADS`` / ``--threads``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.errors import LabError, Term
from core.ml.modules import parameter_count
from core.runs.store import FINISHED, RunRow, RunStore, StoreUnavailable, check_run_id, open_store, pid_alive
from core.safe.budget import setting_name
from core.settings import ROOT, load_settings
from core.training.config import TrainConfig

LOG_NAME = "worker.log"
# Disk a run may write per parameter: best.pt and last.pt, each with float32 weights and up to
# two optimizer moments per weight (Adam). A run at the 20M-parameter cap keeps ~480 MB.
CHECKPOINT_BYTES_PER_PARAM = 24
OWNER_KINDS = ("session", "learner")  # who a run is counted against for the queue cap
USAGE_TTL_S = 5.0  # a burst of Start clicks measures the lab home once


def disk_usage(folder: Path) -> int:
    """Bytes of the files under ``folder`` (symbolic links are not followed; unreadable entries are skipped)."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def run_disk_bytes(config: TrainConfig) -> int:
    """What a run of ``config`` may write to the lab home (its checkpoints)."""
    return parameter_count(config.spec()) * CHECKPOINT_BYTES_PER_PARAM


def default_cap(environ: Mapping[str, str] | None = None) -> int:
    """Concurrent jobs: ``PYTORCH_LAB_JOB_CAP``, else 1 per 4 cores (at least 1)."""
    return load_settings(environ).job_cap


def thread_plan(cpu_count: int | None = None, cap: int = 1,
                environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(server threads, threads per worker) so that server + ``cap`` workers fit the cores.

    One core stays with the server (the page's own stepping, plotting); the rest are split
    among the workers: 2 cores, cap 1 -> (1, 1); 8 cores, cap 1 -> (1, 7); 8 cores, cap 2
    -> (1, 3). ``PYTORCH_LAB_WORKER_THREADS`` overrides the worker share.
    """
    cpus = cpu_count or os.cpu_count() or 1
    server = 1
    worker = max(1, (cpus - server) // max(1, cap))
    override = load_settings(environ).worker_threads
    return server, override if override is not None else worker


def configure_server_threads(cap: int | None = None) -> int:
    """Set this (server) process's torch threads to its share; returns the count."""
    import torch

    server, _ = thread_plan(cap=cap or default_cap())
    if torch.get_num_threads() != server:
        torch.set_num_threads(server)
    return server


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class JobManager:
    """Launches and watches training workers through the run store (see the module doc)."""

    def __init__(self, home: str | Path | None = None, cap: int | None = None, store: RunStore | None = None,
                 heartbeat_s: float | None = None, stale_after: float | None = None,
                 launch_timeout: float = 120.0, python: str | None = None) -> None:
        if store is None:
            store = open_store(home=home)
        self.store = store
        self.home = store.home
        self.cap = int(cap) if cap is not None else default_cap()
        if self.cap < 1:
            raise ValueError("the job cap must be at least 1")
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else load_settings().heartbeat_s
        # A live worker beats every heartbeat_s; many missed beats mean it is hung or gone.
        self.stale_after = stale_after if stale_after is not None else max(30.0, 15 * self.heartbeat_s)
        self.launch_timeout = launch_timeout
        self.python = python or sys.executable
        self._procs: dict[str, subprocess.Popen] = {}  # workers this manager started (to reap them)
        self._lock = threading.Lock()  # one manager may serve many server threads
        # Runs each owner (("session", id), ("learner", name)) started through this manager, for the queue cap.
        self._owned: dict[tuple[str, str], list[str]] = {}
        self._usage: tuple[float, int] | None = None  # (when, bytes) of the lab home's last measurement

    # ---------------------------------------------------------------- commands
    def command(self, run_id: str) -> list[str]:
        """The worker's command line: the terminal command with the run id."""
        _, threads = thread_plan(cap=self.cap)
        return [self.python, "-m", "core.train", "--run-id", check_run_id(run_id), "--home", str(self.home),
                "--threads", str(threads), "--job-cap", str(self.cap)]

    def start(self, config: TrainConfig | dict, name: str = "", tags: list[str] | tuple = (),
              owners: Iterable[tuple[str, str]] = ()) -> str:
        """Validate the config, queue the run and launch it if a slot is free. Returns the run id.

        ``owners`` (``("session", id)``, ``("learner", name)``) are who the run counts against:
        each may have ``PYTORCH_LAB_MAX_QUEUED`` runs queued or running at once, and a run that
        could take the lab home past ``PYTORCH_LAB_MAX_HOME_GB`` is refused (``budget.*`` errors).
        """
        config = TrainConfig.from_dict(config).validate()
        owners = list(owners)
        with self._lock:
            self._check_owners(owners)
            self.check_disk(run_disk_bytes(config))
            run_id = self.store.create_run(config.to_dict(), name=name, tags=tags, status="queued", kind="job",
                                           precision=config.precision)
            self._own(owners, run_id)
        self.poll()
        return run_id

    # ---------------------------------------------------------------- caps
    def check_start(self, config: TrainConfig, owners: Iterable[tuple[str, str]] = ()) -> None:
        """Raise the ``budget.*`` error ``start`` would raise for this config and these owners (for a
        run made some other way, e.g. from an uploaded checkpoint, before its files are written)."""
        with self._lock:
            self._check_owners(list(owners))
            self.check_disk(run_disk_bytes(config), reserve=False)

    def _check_owners(self, owners: list[tuple[str, str]]) -> None:
        cap = load_settings().max_queued
        for owner in owners:
            if owner[0] not in OWNER_KINDS:
                raise ValueError(f"unknown owner kind {owner[0]!r}")
            n = len(self._active_of(owner))
            if n >= cap:
                raise LabError("budget.queue_full", who=Term(f"budget.{owner[0]}"), n=n,
                               setting=setting_name("max_queued"))

    def _active_of(self, owner: tuple[str, str]) -> list[str]:
        """The owner's runs that are still queued or running (finished and deleted ones are forgotten)."""
        active = []
        for run_id in self._owned.get(owner, []):
            run = self.store.get_run(run_id)
            if run is not None and run["status"] in ("queued", "running"):
                active.append(run_id)
        self._owned[owner] = active
        return active

    def _own(self, owners: list[tuple[str, str]], run_id: str) -> None:
        for owner in owners:
            self._owned.setdefault(owner, []).append(run_id)

    def home_usage(self) -> int:
        """Bytes under the lab home, measured at most every ``USAGE_TTL_S`` seconds."""
        now = time.monotonic()
        if self._usage is None or now - self._usage[0] > USAGE_TTL_S:
            self._usage = (now, disk_usage(Path(self.home)))
        return self._usage[1]

    def check_disk(self, need: int, reserve: bool = True) -> None:
        """Refuse (``budget.home_full``) a run that may write ``need`` bytes when the lab home would pass
        its cap; ``reserve`` counts those bytes as used until the home is measured again."""
        cap = load_settings().max_home_gb * 1e9
        used = self.home_usage()
        if used + need > cap:
            raise LabError("budget.home_full", used=used / 1e9, need=need / 1e9, cap=cap / 1e9,
                           setting=setting_name("max_home_gb"))
        if reserve:
            self._usage = (self._usage[0] if self._usage else time.monotonic(), used + need)

    def stop(self, run_id: str) -> str:
        """Ask a run to stop; returns its status afterwards (a queued run stops at once)."""
        run = self.store.run(run_id)
        if run["status"] == "queued" and run["launched"] is None:
            self.store.finish_run(run_id, "stopped")
            return "stopped"
        if run["status"] in ("queued", "running"):
            self.store.request_stop(run_id)
        return self.store.run(run_id)["status"]

    def resume(self, run_id: str, owners: Iterable[tuple[str, str]] = ()) -> None:
        """Queue a stopped or failed run again; its worker continues from last.pt. It counts against
        ``owners``' queue cap as a new run does (its checkpoints already exist, so no disk is reserved)."""
        run = self.store.run(run_id)
        if run["delete_requested"]:
            raise ValueError(f"run {run_id} is being deleted")
        if run["status"] not in ("stopped", "failed"):
            raise ValueError(f"run {run_id} is {run['status']}; only a stopped or failed run can be resumed")
        owners = list(owners)
        with self._lock:
            self._check_owners(owners)
            self.check_disk(0)
            if run["kind"] != "job":
                self.store.update_run(run_id, kind="job")
            self.store.update_run(run_id, status="queued", launched=None, pid=None, stop_requested=False,
                                  error=None, finished=None)
            self._own(owners, run_id)
        self.poll()

    def delete(self, run_id: str) -> bool:
        """Delete a run without waiting for its worker: True if it is gone now.

        A finished run, or a queued one no worker has taken yet, is deleted at once. A running
        (or launched) run is asked to stop and marked for deletion (False): its worker finishes
        the current step and ends, and the next ``poll()`` deletes it.
        """
        if self.store.delete_or_mark(run_id):
            return True
        self.poll()  # it may have finished meanwhile
        return self.store.get_run(run_id) is None

    # ---------------------------------------------------------------- watching
    def poll(self) -> list[str]:
        """Reap dead workers, delete finished runs marked for deletion, then launch queued runs into
        free slots. Returns launched ids."""
        with self._lock:
            for run_id, proc in list(self._procs.items()):
                if proc.poll() is not None:
                    self._procs.pop(run_id, None)
        self.reap()
        self.store.delete_marked()
        launched = []
        for run_id in self.store.claim_launches(self.cap):
            try:
                self._launch(run_id)
                launched.append(run_id)
            except OSError as exc:
                self.store.finish_run(run_id, "failed", error=f"could not start the worker: {exc}")
        return launched

    def _launch(self, run_id: str) -> subprocess.Popen:
        run_dir = self.store.run_dir(run_id, create=True)
        _, threads = thread_plan(cap=self.cap)
        env = dict(os.environ)
        env.update(self.store.worker_env())  # the worker opens this same store (home, PostgreSQL URL)
        env.update({
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTORCH_LAB_HEARTBEAT_S": str(self.heartbeat_s),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
            "PYTHONUNBUFFERED": "1",
        })
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(key, None)  # a job is one process; torchrun is for terminals
        with open(run_dir / LOG_NAME, "ab") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command(run_id))}\n".encode())
            log.flush()
            proc = subprocess.Popen(self.command(run_id), cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        with self._lock:
            self._procs[run_id] = proc
        self.store.update_run(run_id, pid=proc.pid)
        return proc

    def _is_worker(self, pid: int | None, run_id: str, kind: str = "job") -> bool:
        """The pid is alive and (for a job, where /proc tells) is the worker of this run, not a reused pid."""
        if pid is None or not pid_alive(pid):
            return False
        if kind != "job":
            return True  # a terminal run: any command line may have started it
        cmd = _cmdline(pid)
        return not cmd or (run_id in cmd)

    def reap(self) -> list[str]:
        """Mark failed the runs whose worker died or went silent; returns their ids."""
        now = time.time()
        host = socket.gethostname()
        failed = []
        for run in self.store.runs(status=("running", "queued")):
            run_id, pid, beat = run["id"], run["pid"], run["heartbeat"]
            local = run["host"] == host
            if run["status"] == "queued":
                launched = run["launched"]
                if launched is None:
                    continue  # waiting for a slot
                if local and pid is not None and not self._is_worker(pid, run_id, run["kind"]):
                    fresh = self.store.get_run(run_id)
                    if fresh and fresh["status"] == "queued" and fresh["launched"] is not None:
                        self.store.finish_run(run_id, "failed",
                                              error=self._death_note(run_id, pid, "before it started"))
                        failed.append(run_id)
                elif pid is None and now - launched > self.launch_timeout:
                    self.store.release_launch(run_id)  # the launcher died between claim and spawn
                continue
            # running
            if local and pid is not None:
                if not self._is_worker(pid, run_id, run["kind"]):
                    if self._still_running(run_id, pid):
                        self.store.finish_run(run_id, "failed", error=self._death_note(run_id, pid))
                        failed.append(run_id)
                    continue
                if beat is not None and now - beat > self.stale_after:
                    self._kill(pid, run_id)
                    self.store.finish_run(run_id, "failed",
                                          error=f"no heartbeat for {now - beat:.0f} s: the worker (pid {pid}) hung "
                                                "and was killed")
                    failed.append(run_id)
            elif beat is None or now - beat > self.stale_after:
                where = f"on {run['host']}" if run["host"] else "elsewhere"
                self.store.finish_run(run_id, "failed",
                                      error=f"no heartbeat from the worker {where} for "
                                            f"{(now - beat) if beat else float('inf'):.0f} s")
                failed.append(run_id)
        return failed

    def _still_running(self, run_id: str, pid: int) -> bool:
        """Re-read the run: the worker may have finished cleanly between list and check."""
        fresh = self.store.get_run(run_id)
        return bool(fresh and fresh["status"] == "running" and fresh["pid"] == pid)

    def _death_note(self, run_id: str, pid: int, when: str = "") -> str:
        tail = self.log_tail(run_id, 600).strip()
        last = tail.splitlines()[-1] if tail else ""
        text = f"the worker process (pid {pid}) ended {when + ' ' if when else ''}without reporting (killed?)"
        return text + (f"; last log line: {last[:300]}" if last else "")

    def _kill(self, pid: int, run_id: str) -> None:
        if not self._is_worker(pid, run_id):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker leads its own session

    # ---------------------------------------------------------------- queries
    def status(self, run_id: str) -> RunRow:
        return self.store.run(run_id)

    def active(self) -> list[str]:
        return [r["id"] for r in self.store.runs(status=("running", "queued"), kind="job")]

    def wait(self, run_id: str, timeout: float = 300.0, interval: float = 0.2) -> str:
        """Poll until the run finishes (completed/stopped/failed); returns the status. A store that is
        unavailable for a while (its PostgreSQL restarting) is waited for, up to the same deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.poll()
                status = self.store.run(run_id)["status"]
            except StoreUnavailable:  # the store's server restarts: keep waiting until the deadline
                if time.monotonic() > deadline:
                    raise
                time.sleep(max(interval, 0.5))
                continue
            if status in FINISHED:
                with self._lock:
                    proc = self._procs.pop(run_id, None)
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=30)
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {status} after {timeout:.0f} s")
            time.sleep(interval)

    def log_path(self, run_id: str) -> Path:
        return self.store.run_dir(run_id) / LOG_NAME

    def log_tail(self, run_id: str, max_bytes: int = 4000) -> str:
        path = self.log_path(run_id)
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_bytes))
                return fh.read().decode(errors="replace")
        except OSError:
            return ""
