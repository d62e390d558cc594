"""Training runs as background jobs: start, stop, resume, a queue under a job cap, reaping.

A job runs the same command a user can type in a terminal::

    python -m core.train --run-id <id> --home <home>

through an executor (``core/runs/executors``): by default a worker process on this machine,
started in its own session (so it outlives the Streamlit server and a browser refresh);
with ``PYTORCH_LAB_EXECUTOR=ray``, a Ray Job on a cluster. The worker writes everything to the
run store, and all job state lives there, so any ``JobManager`` (a page, a restarted server,
a test) sees and controls every job:

- ``start(config)`` validates the config, checks that the executor can be reached, stores the
  run as ``queued`` and calls ``poll()``.
- ``poll()`` (call it at startup and whenever a page refreshes) reaps dead workers and
  launches queued runs while fewer than ``cap`` jobs hold a slot. Slots are claimed in
  serialized store transactions (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row lock), by the
  manager when launching and again by the worker when it starts, so two servers sharing a
  store cannot exceed the cap. A cluster that does not answer leaves the run queued, with
  the reason as its error, for the next ``poll()``.
- ``stop(run_id)`` sets the run's stop flag; the worker sees it at its next heartbeat,
  finishes the current step, saves ``last.pt`` and ends with status ``stopped``. A run
  still waiting in the queue is simply marked stopped (and a cluster job still waiting for
  resources is cancelled).
- ``resume(run_id)`` puts a stopped or failed run back in the queue; its worker continues
  from ``last.pt`` to the configured number of epochs.
- ``delete(run_id)`` returns at once: a run no worker holds is deleted; an active one is
  asked to stop and marked, and is deleted (rows and folder) as soon as it has finished,
  by the next ``poll()`` of any manager (the finishing worker's own hand-off polls too).
- ``reap()`` settles a run whose job ended without the worker saying so (its process was
  SIGKILLed, Ray reports it FAILED): failed, with the reason; and fails a running run whose
  heartbeat is older than ``stale_after`` seconds (killing its job when it still runs).
- ``wait(run_id)`` polls until the run has finished; ``log_tail(run_id)`` is the end of its
  worker's output (the log file, or the Ray job's logs).

A run with ``world_size`` >= 2 trains with DistributedDataParallel: its job's worker starts
the processes (``Executor.run_ranks``: local processes, or Ray Train workers on the cluster).

Thread counts: on a small machine the server and the workers share few cores, so each
local worker gets ``thread_plan()``'s share through ``OMP_NUM_THREADS`` / ``--threads``; a
Ray job gets its reserved CPUs' worth (``PYTORCH_LAB_RAY_CPUS``).
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.errors import Code, LabError, Term
from core.ml.modules import parameter_count
from core.runs.executors import Executor, ExecutorError, ExecutorUnavailable, LocalExecutor, open_executor
from core.runs.executors.base import UNKNOWN, JobInfo, JobSpec, Resources, read_tail
from core.runs.progress import check_learner
from core.runs.store import FINISHED, RunRow, RunStore, StoreUnavailable, check_run_id, check_world_size, open_store
from core.safe.budget import setting_name
from core.settings import lab_environ, load_settings, settings_environ
from core.training.config import TrainConfig

LOG_NAME = "worker.log"
# Disk a run may write per parameter: best.pt and last.pt, each with float32 weights and up to
# two optimizer moments per weight (Adam). A run at the 20M-parameter cap keeps ~480 MB.
CHECKPOINT_BYTES_PER_PARAM = 24
OWNER_KINDS = ("session", "learner")  # who a run is counted against for the queue cap
TICK_S = 0.5  # the pages' poll of the queue and the workers: at most this often per server process
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


class JobManager:
    """Queues runs, launches their workers through an executor and watches them through the run store
    (see the module doc)."""

    def __init__(self, home: str | Path | None = None, cap: int | None = None, store: RunStore | None = None,
                 heartbeat_s: float | None = None, stale_after: float | None = None,
                 launch_timeout: float = 120.0, python: str | None = None,
                 executor: Executor | str | None = None) -> None:
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
        if executor is None or isinstance(executor, str):
            executor = open_executor(name=executor)
        if isinstance(executor, LocalExecutor) and python is not None:
            executor.python = python
        self.executor: Executor = executor
        # Runs launched by local worker processes (also terminal runs) are watched on this host whatever
        # executor launches the new ones.
        self.local = executor if isinstance(executor, LocalExecutor) else LocalExecutor(python)
        self.python = self.local.python
        self._lock = threading.Lock()  # one manager may serve many server threads
        # Runs each owner (("session", id), ("learner", name)) started through this manager, for the queue cap.
        self._owned: dict[tuple[str, str], list[str]] = {}
        self._usage: tuple[float, int] | None = None  # (when, bytes) of the lab home's last measurement
        self._tick_lock = threading.Lock()
        self._last_tick = -math.inf

    @property
    def _procs(self) -> dict:
        """The local worker processes this manager started (tests end them)."""
        return self.local.procs

    # ---------------------------------------------------------------- commands
    def _argv(self, run_id: str, threads: int) -> list[str]:
        return ["-m", "core.train", "--run-id", check_run_id(run_id), "--home", str(self.home),
                "--threads", str(threads), "--job-cap", str(self.cap)]

    def command(self, run_id: str) -> list[str]:
        """The local worker's command line: the terminal command with the run id."""
        _, threads = thread_plan(cap=self.cap)
        return [self.python, *self._argv(run_id, threads)]

    def start(self, config: TrainConfig | dict, name: str = "", tags: list[str] | tuple = (),
              parent: str | None = None, sweep: str | None = None, poll: bool = True,
              world_size: int | None = None, owners: Iterable[tuple[str, str]] = ()) -> str:
        """Validate the config, queue the run and launch it if a slot is free. Returns the run id.

        ``parent``: the run it was cloned from; ``sweep``: the sweep queueing it (core.runs.sweep);
        ``poll=False`` only queues it (a sweep polls once after queueing all of its runs).
        ``world_size`` >= 2 trains with DistributedDataParallel in that many processes (default:
        the config's ``processes``). A cluster executor that cannot be reached is an
        ``ExecutorUnavailable`` here, before anything is queued.
        ``owners`` (``("session", id)``, ``("learner", name)``) are who the run counts against:
        each may have ``PYTORCH_LAB_MAX_QUEUED`` runs queued or running at once, and a run that
        could take the lab home past ``PYTORCH_LAB_MAX_HOME_GB`` is refused (``budget.*`` errors).
        """
        config = TrainConfig.from_dict(config).validate()
        world = check_world_size(world_size if world_size is not None else config.processes)
        self.executor.check()
        owners = list(owners)
        learner = next((check_learner(who) for kind, who in owners if kind == "learner"), None)
        with self._lock:
            self._check_owners(owners)
            self.check_disk(run_disk_bytes(config))
            run_id = self.store.create_run(config.to_dict(), name=name, tags=tags, status="queued", kind="job",
                                           precision=config.precision, parent=parent, sweep=sweep,
                                           world_size=world, learner=learner)
            self._own(owners, run_id)
        if poll:
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
        """The owner's runs that are still queued or running (finished and deleted ones are forgotten).
        A learner's are read from the store: every server sharing it (replicas) counts them alike."""
        if owner[0] == "learner":
            return self.store.learner_runs(owner[1])
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
            if run["status"] == "queued":  # launched, not started: a job waiting for resources ends now
                self._cancel(run)
        return self.store.run(run_id)["status"]

    def resume(self, run_id: str, owners: Iterable[tuple[str, str]] = ()) -> None:
        """Queue a stopped or failed run again; its worker continues from last.pt. It counts against
        ``owners``' queue cap as a new run does (its checkpoints already exist, so no disk is reserved)."""
        run = self.store.run(run_id)
        if run["delete_requested"]:
            raise LabError("jobs.deleting", run=Code(run_id))
        if run["status"] not in ("stopped", "failed"):
            raise LabError("jobs.not_resumable", run=Code(run_id), status=Term(f"status.{run['status']}"))
        owners = list(owners)
        with self._lock:
            self._check_owners(owners)
            self.check_disk(0)
            if run["kind"] != "job":
                self.store.update_run(run_id, kind="job")
            # Progress restarts where last.pt is, not at the step a failed worker reached after it.
            where = self._checkpoint_position(run_id)
            self.store.update_run(run_id, status="queued", launched=None, pid=None, stop_requested=False,
                                  error=None, finished=None, executor=None, job_ref=None, **where)
            self._own(owners, run_id)
        self.poll()

    def _checkpoint_position(self, run_id: str) -> dict[str, int]:
        """{epoch, step} of the run's last.pt ({} when it has none or it cannot be read: the worker says why)."""
        from core.ml.checkpoint import LAST, CheckpointError, load_checkpoint

        path = self.store.run_dir(run_id) / LAST
        if not path.is_file():
            return {}
        try:
            ckpt = load_checkpoint(path)
            return {"epoch": int(ckpt["epoch"]), "step": int(ckpt.get("step") or 0)}
        except (CheckpointError, ValueError, TypeError, KeyError):
            return {}

    def delete(self, run_id: str) -> bool:
        """Delete a run without waiting for its worker: True if it is gone now.

        A finished run, or a queued one no worker has taken yet, is deleted at once. A running
        (or launched) run is asked to stop and marked for deletion (False): its worker finishes
        the current step and ends, and the next ``poll()`` deletes it.
        """
        if self.store.delete_or_mark(run_id):
            return True
        run = self.store.get_run(run_id)
        if run is not None and run["status"] == "queued":
            self._cancel(run)
        self.poll()  # it may have finished meanwhile
        return self.store.get_run(run_id) is None

    def _cancel(self, run: RunRow) -> None:
        executor = self._executor_for(run)
        if executor is not None:
            executor.cancel(run)

    # ---------------------------------------------------------------- launching
    def tick(self, every: float = TICK_S) -> list[str]:
        """``poll()`` for the pages: every session watching a run asks each second, and one server may
        hold a classroom of them; the queue and the workers need one poll per ``every`` seconds, not one
        per session. Returns what ``poll()`` launched, or [] when another session polled just now."""
        now = time.monotonic()
        if now - self._last_tick < every or not self._tick_lock.acquire(blocking=False):
            return []
        try:
            self._last_tick = now
            return self.poll()
        finally:
            self._tick_lock.release()

    def poll(self) -> list[str]:
        """Reap dead workers, delete finished runs marked for deletion, then launch queued runs into
        free slots. Returns launched ids."""
        self.local.tidy()
        if self.executor is not self.local:
            self.executor.tidy()
        self.reap()
        self.store.delete_marked()
        launched = []
        for run_id in self.store.claim_launches(self.cap, per_learner=load_settings().learner_jobs):
            try:
                self._launch(run_id)
                launched.append(run_id)
            except ExecutorUnavailable as exc:  # the cluster does not answer now: back to the queue, said why
                self.store.update_run(run_id, launched=None, pid=None, executor=None, job_ref=None, error=str(exc))
            except (ExecutorError, OSError) as exc:
                self.store.finish_run(run_id, "failed", error=f"could not start the worker: {exc}")
        return launched

    def job_spec(self, run: RunRow) -> JobSpec:
        """What the executor is asked to run for ``run``: its worker command, environment and resources."""
        world = run["world_size"]
        if isinstance(self.executor, LocalExecutor):
            resources = Resources()
            threads = max(1, thread_plan(cap=self.cap)[1] // world)  # a DDP run's processes share the job's cores
        else:
            resources = self.executor.resources(str(run["config"].get("device", "auto")))
            threads = resources.threads
        env = lab_environ()  # the server's settings travel with the job (limits, heartbeat, data)
        env.update(self.store.worker_env())  # the worker opens this same store (home, PostgreSQL URL)
        env.update(settings_environ(executor=self.executor.name, heartbeat_s=self.heartbeat_s))
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"})
        return JobSpec(run_id=run["id"], argv=self._argv(run["id"], threads), env=env, log=self.log_path(run["id"]),
                       world_size=world, resources=resources)

    def _launch(self, run_id: str) -> str:
        run = self.store.run(run_id)
        self.store.run_dir(run_id, create=True)
        self.store.update_run(run_id, executor=self.executor.name, error=None)
        ref = self.executor.launch(self.job_spec(run))
        if isinstance(self.executor, LocalExecutor):
            self.store.update_run(run_id, pid=int(ref))
        else:
            self.store.update_run(run_id, job_ref=ref)
        return ref

    # ---------------------------------------------------------------- watching
    def _executor_for(self, run: RunRow) -> Executor | None:
        """The executor that can answer for ``run``'s job (None: only its heartbeat can)."""
        name = run.get("executor") or LocalExecutor.name
        if name == self.executor.name:
            return self.executor
        return self.local if name == LocalExecutor.name else None

    def job(self, run_id: str) -> JobInfo:
        """What the run's executor knows of its job now (status, message, node, handle)."""
        run = self.store.run(run_id)
        executor = self._executor_for(run)
        return executor.status(run) if executor is not None else UNKNOWN

    def reap(self) -> list[str]:
        """Settle the runs whose job ended without the worker saying so, or went silent; returns the failed ids.

        What the executor knows decides first: a job that is gone (its process died, Ray says
        FAILED or forgot it) fails its run with the reason; one Ray stopped stops it. Otherwise a
        running run whose heartbeat is older than ``stale_after`` fails (its job is killed when it
        still runs: hung). A launched job without a handle after ``launch_timeout`` (its launcher
        died in between) goes back to the queue.
        """
        now = time.time()
        failed = []
        for run in self.store.runs(status=("running", "queued")):
            run_id, launched = run["id"], run["launched"]
            if run["status"] == "queued" and launched is None:
                continue  # waiting for a slot
            executor = self._executor_for(run)
            info = executor.status(run) if executor is not None else UNKNOWN
            if info.ended:
                if self._settle(run, info) == "failed":
                    failed.append(run_id)
                continue
            if run["status"] == "queued":
                if (info.status == "unknown" and run["pid"] is None and run["job_ref"] is None
                        and launched is not None and now - launched > self.launch_timeout):
                    self.store.release_launch(run_id)  # the launcher died between claim and spawn
                continue
            beat = run["heartbeat"]
            if info.status == "running" and executor is not None:
                if beat is not None and now - beat > self.stale_after and self._still_active(run):
                    executor.kill(run)
                    who = f"pid {run['pid']}" if executor is self.local else f"{executor.name} job {run['job_ref']}"
                    self.store.finish_run(run_id, "failed",
                                          error=f"no heartbeat for {now - beat:.0f} s: the worker ({who}) hung "
                                                "and was killed")
                    failed.append(run_id)
            elif (beat is None or now - beat > self.stale_after) and self._still_active(run):
                where = f"on {run['host']}" if run["host"] else "elsewhere"
                self.store.finish_run(run_id, "failed",
                                      error=f"no heartbeat from the worker {where} for "
                                            f"{(now - beat) if beat else float('inf'):.0f} s")
                failed.append(run_id)
        return failed

    def _still_active(self, run: RunRow) -> bool:
        """Re-read the run: is it still the same active job (the worker may have finished it meanwhile,
        or it was resumed as a new job)?"""
        fresh = self.store.get_run(run["id"])
        return bool(fresh and fresh["status"] == run["status"] and fresh["pid"] == run["pid"]
                    and fresh["job_ref"] == run["job_ref"]
                    and (fresh["status"] == "running" or fresh["launched"] is not None))

    def _settle(self, run: RunRow, info: JobInfo) -> str | None:
        """A job that ended while its run is active: the run's final status (None if it settled itself)."""
        if not self._still_active(run):
            return None
        if info.status == "stopped":
            self.store.finish_run(run["id"], "stopped")
            return "stopped"
        if info.status == "missing" and run["executor"] in (None, LocalExecutor.name):
            pid = run["pid"]
            assert pid is not None
            error = self._death_note(run["id"], pid, "" if run["status"] == "running" else "before it started")
        else:
            error = self._job_note(run, info)
        self.store.finish_run(run["id"], "failed", error=error)
        return "failed"

    def _death_note(self, run_id: str, pid: int, when: str = "") -> str:
        tail = self.log_tail(run_id, 600).strip()
        last = tail.splitlines()[-1] if tail else ""
        text = f"the worker process (pid {pid}) ended {when + ' ' if when else ''}without reporting (killed?)"
        return text + (f"; last log line: {last[:300]}" if last else "")

    @staticmethod
    def _job_note(run: RunRow, info: JobInfo) -> str:
        """Why a cluster job's run failed, from the executor's message (its first line and last log line)."""
        lines = [line.strip() for line in info.message.splitlines() if line.strip()]
        first = lines[0].split(", last available logs")[0] if lines else ""
        ended = {"failed": "failed", "missing": "is gone", "succeeded": "ended"}.get(info.status, info.status)
        text = f"the worker's {run['executor']} job {run['job_ref']} {ended} without reporting (killed?)"
        text += f": {first[:300]}" if first else ""
        return text + (f"; last log line: {lines[-1][:300]}" if len(lines) > 1 else "")

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
                self.local.finished(run_id)
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {status} after {timeout:.0f} s")
            time.sleep(interval)

    def log_path(self, run_id: str) -> Path:
        return self.store.run_dir(run_id) / LOG_NAME

    def log_tail(self, run_id: str, max_bytes: int = 4000) -> str:
        """The end of the run's worker output: its log file, or what its cluster job printed (the log file
        alone while the run store cannot be reached)."""
        path = self.log_path(run_id)
        try:
            run = self.store.get_run(run_id)
        except StoreUnavailable:
            run = None
        if run is None:
            return read_tail(path, max_bytes)
        executor = self._executor_for(run) or self.local
        return executor.log_tail(run, path, max_bytes)
