"""The Ray executor: each run a Ray Job on a Ray cluster (``PYTORCH_LAB_EXECUTOR=ray``).

A job is submitted through Ray's Jobs API (``ray.job_submission.JobSubmissionClient``) at the
cluster's dashboard address (``PYTORCH_LAB_RAY_ADDRESS``, e.g. ``http://head:8265``), with

- the entrypoint ``python -m core.train --run-id <id> --home <home> ...``: the worker command,
  run by the Python of the node that runs it (start Ray from the lab's environment);
- a runtime environment: the lab's code as the job's ``working_dir`` (uploaded once per
  version of the code; nodes need the lab's requirements installed, not its code) and
  ``env_vars`` with the lab's settings and the store's location (``store.worker_env()``);
- its resources: ``PYTORCH_LAB_RAY_CPUS`` CPUs, ``PYTORCH_LAB_RAY_GPUS`` GPUs (default: one
  when the run's device is ``cuda``) and ``PYTORCH_LAB_RAY_RESOURCES`` custom resources (to
  pin jobs to some nodes); Ray keeps a job ``PENDING`` until a node has them.

Ray's job statuses map onto the lab's run states in ``JobManager.reap``: PENDING is a queued
run (launched), RUNNING is the worker's (it claims the run: running), SUCCEEDED is whatever the
worker stored (completed or stopped); FAILED (the command failed or was killed, e.g. SIGKILL)
and a job Ray no longer knows fail the run with Ray's message; STOPPED (from Ray's dashboard)
stops it. A run is stopped through the store's stop flag like any other (its worker saves
``last.pt``); ``stop_job`` only cancels a job still waiting for resources, or kills a hung one.
A job's log tail is Ray's ``get_job_logs``.

A DDP run (world size >= 2) is one Ray Job too: its worker (the job's driver, needing no
resources itself) runs the ranks with Ray Train's ``TorchTrainer`` (``run_ranks``): one Ray
Train worker per rank, each with the resources above, on any nodes of the cluster; Ray Train
sets up the process group (gloo on CPU, nccl on GPU).

Bad input never hangs: the address is checked with a 3 s connect timeout, every request has
a timeout, and a cluster that stopped answering is not asked again for 10 s (the jobs'
heartbeats in the store still tell whether they live).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import shlex
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from core.errors import Code, first_line
from core.runs.executors.base import (
    UNKNOWN,
    Executor,
    ExecutorError,
    ExecutorUnavailable,
    JobInfo,
    JobSpec,
    JobStatus,
    RankTarget,
    Resources,
    read_tail,
)
from core.runs.stores.base import RunRow
from core.settings import ROOT

SETTING = "PYTORCH_LAB_RAY_ADDRESS"
CONNECT_TIMEOUT_S = 3.0   # to reach the dashboard
ANSWER_TIMEOUT_S = 10.0   # for its answer to a question (version, status, logs, stop)
SUBMIT_TIMEOUT_S = 120.0  # for a submission (it uploads the code once per version of it)
DOWN_PAUSE_S = 10.0       # after the cluster did not answer, do not ask again for this long
STATUS_TTL_S = 1.0        # every watching page polls each second: one question per job and second
# Not shipped to the cluster with the code (Ray also skips what .gitignore names).
EXCLUDES = [".git", ".venv", "tests", "bench", ".ci", "assets/screenshot.png", "**/__pycache__", "*.pyc"]
RAY_STATUS: dict[str, JobStatus] = {"PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "succeeded",
                                    "FAILED": "failed", "STOPPED": "stopped"}


def normalize_address(address: str | None) -> str:
    """The Jobs API's base URL: ``http://`` added when no scheme is given; ``executor.ray_*`` errors otherwise."""
    text = (address or "").strip()
    if not text:
        raise ExecutorError("executor.ray_no_address", setting=Code(SETTING), example=Code("http://head-host:8265"))
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ExecutorError("executor.ray_bad_address", setting=Code(SETTING), address=Code(text[:200]),
                            example=Code("http://head-host:8265"))
    return text.rstrip("/")


def parse_resources(text: str | None) -> dict[str, float]:
    """``PYTORCH_LAB_RAY_RESOURCES``: a JSON object of resource names and positive amounts ('' -> {})."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExecutorError("executor.ray_bad_resources", setting=Code("PYTORCH_LAB_RAY_RESOURCES"),
                            value=Code(text[:200]), reason=Code(str(exc)), example=Code('{"lab_worker": 1}')) from None
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and k and k not in ("CPU", "GPU") and isinstance(v, (int, float))
        and not isinstance(v, bool) and math.isfinite(v) and v > 0 for k, v in value.items())
    if not ok:
        raise ExecutorError("executor.ray_bad_resources", setting=Code("PYTORCH_LAB_RAY_RESOURCES"),
                            value=Code(text[:200]), reason=Code("not an object of names and positive numbers"),
                            example=Code('{"lab_worker": 1}'))
    return {str(k): float(v) for k, v in value.items()}


_REQUEST = threading.local()  # the answer timeout of this thread's current request (a submission waits longer)


@contextlib.contextmanager
def _answer_within(seconds: float) -> Iterator[None]:
    before = getattr(_REQUEST, "timeout", None)
    _REQUEST.timeout = seconds
    try:
        yield
    finally:
        _REQUEST.timeout = before if before is not None else ANSWER_TIMEOUT_S


# Ray's client narrates the upload of the code (which files .gitignore leaves out, the package's
# name) on the server's console at INFO and WARNING: only its errors are worth showing there.
_PACKAGING_LOGGERS = ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging",
                      "ray._private.runtime_env.working_dir")


@contextlib.contextmanager
def _quiet_packaging() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _PACKAGING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@lru_cache(maxsize=1)
def _client_class() -> type:
    """``JobSubmissionClient`` with a timeout on every request and the address taken as given.

    Ray's own client waits for an answer without a time limit (a silent address hangs it),
    and lets ``RAY_ADDRESS`` in the environment replace the address it is given (inside a Ray
    job that is the cluster's internal address, not the dashboard's).
    """
    try:
        import ray
        from ray.dashboard.modules.dashboard_sdk import SubmissionClient
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ExecutorError("executor.no_ray", setting=Code("PYTORCH_LAB_EXECUTOR"),
                            command=Code("pip install -r requirements-scale.txt")) from None

    class LabJobClient(JobSubmissionClient):
        def __init__(self, address: str, connect_timeout: float) -> None:
            self._lab_connect_timeout = connect_timeout
            self._client_ray_version = ray.__version__
            SubmissionClient.__init__(self, address=address)
            self._check_connection_and_version(
                min_version="2.0", version_error_message="this is not a Ray 2 cluster's Jobs API")

        def _do_request(self, method, endpoint, **kwargs):
            answer = getattr(_REQUEST, "timeout", ANSWER_TIMEOUT_S)
            kwargs.setdefault("timeout", (self._lab_connect_timeout, answer))
            return super()._do_request(method, endpoint, **kwargs)

    return LabJobClient


def _connection_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import requests
    except ImportError:
        return False
    return isinstance(exc, requests.RequestException)


class RayExecutor(Executor):
    """Runs each job as a Ray Job on the cluster at ``address`` (see the module doc)."""

    name: ClassVar[str] = "ray"

    def __init__(self, address: str | None, cpus: float = 1.0, gpus: float | None = None,
                 resources: str | dict[str, float] | None = None, connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.raw_address = address
        self.cpus = float(cpus)
        self.gpus = gpus
        self.custom = dict(resources) if isinstance(resources, dict) else parse_resources(resources)
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._lock = threading.Lock()
        self._down: ExecutorUnavailable | None = None  # why the cluster did not answer, until _down_until
        self._down_until = 0.0
        self._cache: dict[str, tuple[float, JobInfo]] = {}

    # ---------------------------------------------------------------- the cluster
    @property
    def address(self) -> str:
        return normalize_address(self.raw_address)

    def resources(self, device: str) -> Resources:
        """What each process of a run on ``device`` asks Ray for."""
        gpus = self.gpus if self.gpus is not None else (1.0 if device == "cuda" else 0.0)
        return Resources(cpus=self.cpus, gpus=gpus, custom=self.custom)

    def _unreachable(self, exc: BaseException) -> ExecutorUnavailable:
        return ExecutorUnavailable("executor.ray_unreachable", address=Code(self.address),
                                   seconds=self.connect_timeout, reason=Code(first_line(exc)), setting=Code(SETTING))

    def _connect(self) -> Any:
        address = self.address
        try:
            return _client_class()(address, self.connect_timeout)
        except ExecutorError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray's client raises plain RuntimeErrors and requests' errors
            if _connection_error(exc):
                raise self._went_down(self._unreachable(exc)) from None
            raise ExecutorError("executor.ray_not_ray", address=Code(address), reason=Code(first_line(exc)),
                                setting=Code(SETTING)) from None

    def check(self) -> None:
        """Reach the cluster now (a version request, at most the connect timeout when nobody answers)."""
        client = self._connect()
        with self._lock:
            self._client, self._down, self._down_until = client, None, 0.0

    def client(self) -> Any:
        """The connected client; a cluster that did not answer a moment ago is not asked again yet."""
        with self._lock:
            client, down = self._client, self._down
        if client is None and down is not None and time.monotonic() < self._down_until:
            raise down
        if client is None:
            self.check()
            with self._lock:
                client = self._client
        return client

    def _call(self, action: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<action>(...)``; a cluster that does not answer is an ``ExecutorUnavailable``."""
        try:
            return getattr(self.client(), action)(*args, **kwargs)
        except ExecutorError:
            raise
        except Exception as exc:
            if _connection_error(exc):
                raise self._went_down(self._unreachable(exc)) from None
            raise

    def _went_down(self, error: ExecutorUnavailable) -> ExecutorUnavailable:
        with self._lock:
            self._client, self._down, self._down_until = None, error, time.monotonic() + DOWN_PAUSE_S
        return error

    # ---------------------------------------------------------------- jobs
    def launch(self, job: JobSpec) -> str:
        submission_id = f"lab-{job.run_id}-{secrets.token_hex(3)}"
        entrypoint = shlex.join(["python", *job.argv])
        one = job.world_size <= 1  # a DDP run's driver only starts the ranks: the ranks get the resources
        res = job.resources
        env = {**job.env, "PYTORCH_LAB_EXECUTOR": self.name, SETTING: self.address}
        try:
            with _answer_within(SUBMIT_TIMEOUT_S), _quiet_packaging():
                self._call("submit_job", entrypoint=entrypoint, submission_id=submission_id,
                           runtime_env={"working_dir": str(ROOT), "excludes": EXCLUDES, "env_vars": env},
                           metadata={"lab_run_id": job.run_id},
                           entrypoint_num_cpus=res.cpus if one else None,
                           entrypoint_num_gpus=(res.gpus or None) if one else None,
                           entrypoint_resources=(dict(res.custom) or None) if one else None)
        except ExecutorError:
            raise
        except Exception as exc:  # noqa: BLE001 - the cluster refused the job (bad resources, runtime env)
            raise ExecutorError("executor.ray_submit_failed", address=Code(self.address),
                                reason=Code(first_line(exc))) from None
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, "a", encoding="utf-8") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} Ray job {submission_id} at {self.address}: "
                      f"{entrypoint}\n")
        return submission_id

    def status(self, run: RunRow) -> JobInfo:
        ref = run["job_ref"]
        if not ref or time.monotonic() < self._down_until:
            return UNKNOWN
        now = time.monotonic()
        cached = self._cache.get(ref)
        if cached is not None and now - cached[0] < STATUS_TTL_S:
            return cached[1]
        try:
            details = self._call("get_job_info", ref)
        except ExecutorError:
            return UNKNOWN
        except Exception as exc:  # noqa: BLE001 - Ray's 404 is a RuntimeError; anything else: cannot tell now
            if "does not exist" not in str(exc):
                return UNKNOWN
            info = JobInfo("missing", message=f"Ray has no job {ref}", ref=ref)
        else:
            status = RAY_STATUS.get(str(getattr(details.status, "value", details.status)), "unknown")
            info = JobInfo(status, message=details.message or "", node=details.driver_node_id, ref=ref)
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[ref] = (now, info)
        return info

    def cancel(self, run: RunRow) -> None:
        self._stop(run)

    def kill(self, run: RunRow) -> None:
        self._stop(run)  # Ray sends SIGTERM, then SIGKILL after a few seconds

    def _stop(self, run: RunRow) -> None:
        if not run["job_ref"]:
            return
        with contextlib.suppress(Exception):  # unreachable, or over already: the next status tells
            self._call("stop_job", run["job_ref"])
        self._cache.pop(run["job_ref"], None)

    def log_tail(self, run: RunRow, log: Path, max_bytes: int = 4000) -> str:
        ref = run["job_ref"]
        if ref and time.monotonic() >= self._down_until:
            with contextlib.suppress(Exception):  # unreachable, or Ray forgot the job: the log file below
                return str(self._call("get_job_logs", ref))[-max_bytes:]
        return read_tail(log, max_bytes)  # the launches' lines (and output of earlier local attempts)

    # ---------------------------------------------------------------- DDP
    def run_ranks(self, target: RankTarget, payload: dict[str, Any], world_size: int, resources: Resources,
                  run_dir: Path) -> int:
        """The ranks as Ray Train workers (``TorchTrainer``): gloo on CPU, nccl when they have GPUs."""
        try:
            from ray.train import RunConfig, ScalingConfig
            from ray.train.torch import TorchTrainer
        except ImportError:
            raise ExecutorError("executor.no_ray", setting=Code("PYTORCH_LAB_EXECUTOR"),
                                command=Code("pip install -r requirements-scale.txt")) from None
        per_worker: dict[str, float] = {"CPU": resources.cpus, **resources.custom}
        if resources.gpus > 0:
            per_worker["GPU"] = resources.gpus
        trainer = TorchTrainer(
            _ray_rank, train_loop_config={"target": target, "payload": payload},
            scaling_config=ScalingConfig(num_workers=world_size, use_gpu=resources.gpus > 0,
                                         resources_per_worker=per_worker),
            # Ray Train's own records, in the run's folder that every host shares.
            run_config=RunConfig(name=f"ray-train-{secrets.token_hex(3)}", storage_path=str(run_dir)))
        try:
            trainer.fit()
        except Exception as exc:  # noqa: BLE001 - a rank failed: Ray Train wraps its error; the driver reports it
            print(f"error: a DDP process failed: {first_line(exc)}", flush=True)
            return 1
        return 0


def _ray_rank(config: dict[str, Any]) -> None:
    """One Ray Train worker: the rank's body with Ray Train's rank numbers (its process group is set up)."""
    import ray.train

    ctx = ray.train.get_context()
    code = config["target"](config["payload"], ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank())
    if code:
        raise RuntimeError(f"rank {ctx.get_world_rank()} ended with exit code {code}")
