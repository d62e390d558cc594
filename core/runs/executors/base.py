"""The executor interface: how a job's worker command runs (here, or on a cluster).

``JobManager`` (core/runs/jobs.py) keeps the queue, the job cap and every state in the run
store; an executor only runs the worker command it is given and answers for it:

- ``launch(job)`` starts ``python -m core.train --run-id <id> --home <home>`` (a ``JobSpec``)
  and returns the job's handle (stored as the run's ``job_ref``; the local back end stores
  the pid instead);
- ``status(run)`` says what the executor knows of a launched run's job (a ``JobInfo``:
  pending, running, succeeded, failed, stopped, missing or unknown); the manager maps it
  onto the lab's run states (see ``JobManager.reap``);
- ``cancel(run)`` ends a job that has not started training yet (waiting for resources),
  ``kill(run)`` ends a hung one at once; a running job is stopped through the store's
  stop flag (the worker finishes its step and saves ``last.pt``), never by a signal;
- ``log_tail(run)`` is the end of the job's output (stdout and stderr);
- ``run_ranks(...)`` runs the processes of a DDP run (world size >= 2) from inside the job.

Back ends: ``LocalExecutor`` (``local.py``; worker processes on this machine, the default)
and ``RayExecutor`` (``ray.py``; each run a Ray Job on a cluster), chosen by
``PYTORCH_LAB_EXECUTOR`` (``open_executor`` in ``core/runs/executors/__init__.py``).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from core.errors import LabError
from core.runs.stores.base import RunRow

JobStatus = Literal["pending", "running", "succeeded", "failed", "stopped", "missing", "unknown"]
"""What an executor knows of a job: ``pending`` (launched, not started: waiting for resources or
setting up), ``running``, ``succeeded`` / ``failed`` / ``stopped`` (its command ended: exit 0,
non-zero or killed, stopped by the executor), ``missing`` (the executor has no such job: its
process is gone, or the cluster forgot it), ``unknown`` (cannot tell now: no handle, or the
executor cannot be reached)."""
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
ENDED: tuple[JobStatus, ...] = ("succeeded", "failed", "stopped", "missing")


class ExecutorError(LabError, RuntimeError):
    """The executor cannot be used as configured (``executor.*`` codes; the message says why)."""


class ExecutorUnavailable(ExecutorError):
    """The executor's cluster cannot be reached now (``executor.ray_unreachable``): a later try may succeed."""


@dataclass(frozen=True)
class JobInfo:
    """An executor's answer about one job (``Executor.status``)."""

    status: JobStatus
    message: str = ""         # the executor's own words (Ray's job message), for the run's error
    node: str | None = None   # where the job's command runs (a Ray node id), once known
    ref: str | None = None    # the job's handle (a Ray submission id, a pid)

    @property
    def ended(self) -> bool:
        return self.status in ENDED


UNKNOWN = JobInfo("unknown")


@dataclass(frozen=True)
class Resources:
    """What one process of a job needs from a cluster (Ray's CPUs, GPUs and custom resources)."""

    cpus: float = 1.0
    gpus: float = 0.0
    custom: Mapping[str, float] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        """Torch threads for a process with these CPUs (at least one)."""
        return max(1, math.ceil(self.cpus))


@dataclass(frozen=True)
class JobSpec:
    """One job to launch: the worker command of a run and what it needs.

    ``argv`` is the command after the interpreter (``-m core.train --run-id ...``: each back end
    runs it with its hosts' Python); ``env`` holds the variables the worker needs on top of its
    host's environment (the lab's settings, the store's location, thread counts); ``log`` is the
    run's log file in its folder (the local back end writes the output there, the Ray back end
    a line per launch).
    """

    run_id: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    world_size: int = 1
    resources: Resources = Resources()


RankTarget = Callable[[dict[str, Any], int, int, int], int]
"""A DDP process's body: ``target(payload, rank, world_size, local_rank)`` -> exit code (0 = fine).
It must be a module-level function (it is pickled by name into each process)."""


class Executor(ABC):
    """Runs jobs' worker commands and answers for them (see the module doc)."""

    name: ClassVar[str]

    def resources(self, device: str) -> Resources:
        """What each process of a run on ``device`` needs (a cluster reserves it; here: nothing)."""
        return Resources()

    def check(self) -> None:  # noqa: B027 - most back ends have nothing to reach
        """Raise ``ExecutorUnavailable`` when jobs cannot be launched now (a cluster that does not answer)."""

    @abstractmethod
    def launch(self, job: JobSpec) -> str:
        """Start the job's command; returns its handle (a pid or a submission id, as text)."""

    @abstractmethod
    def status(self, run: RunRow) -> JobInfo:
        """What this executor knows of ``run``'s job (launched by it: ``run["executor"] == self.name``)."""

    def cancel(self, run: RunRow) -> None:  # noqa: B027 - the store's stop flag suffices where jobs start at once
        """End a launched job that has not claimed its run yet (it waits for resources)."""

    @abstractmethod
    def kill(self, run: RunRow) -> None:
        """End the job at once (a hung worker)."""

    @abstractmethod
    def log_tail(self, run: RunRow, log: Path, max_bytes: int = 4000) -> str:
        """The end of the job's output, '' when there is none (``log`` is the run's log file)."""

    def tidy(self) -> None:  # noqa: B027 - only back ends with child processes have something to tidy
        """Forget jobs that have ended (called on each ``JobManager.poll``)."""

    def finished(self, run_id: str, timeout: float = 30.0) -> None:  # noqa: B027 - see tidy
        """The run has finished: let go of what was kept for its job (waiting up to ``timeout`` for it to exit)."""

    @abstractmethod
    def run_ranks(self, target: RankTarget, payload: dict[str, Any], world_size: int, resources: Resources,
                  run_dir: Path) -> int:
        """Run ``target`` in ``world_size`` processes that form one torch process group (DDP).

        Called by the job's worker (the driver); returns 0 when every process returned 0.
        ``run_dir`` is the run's folder (shared by all hosts) for any files the back end keeps.
        """


def read_tail(path: Path, max_bytes: int) -> str:
    """The last ``max_bytes`` of a text file ('' if it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""
