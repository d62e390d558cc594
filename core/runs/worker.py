"""The worker: drives a trainer for one stored run, writing metrics and checkpoints to the run store.

Its writes survive a store that goes away for a while (a PostgreSQL restart): each is retried
with backoff for a bounded time (``core.runs.stores.base.retrying``), metric batches carry one
wall time so a retry never stores a batch twice, and the metrics of a step are stored before
the checkpoint that covers it, so nothing before the last flush is lost.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from core.ml.checkpoint import BEST, LAST, CheckpointError, save_checkpoint
from core.runs.store import StoreError, note_retry, open_store, retrying
from core.settings import load_settings
from core.training.config import TrainConfig
from core.training.console import Progress, epoch_line
from core.training.events import EpochEvent, StepEvent
from core.training.internals import PREFIX
from core.training.trainer import Trainer

if TYPE_CHECKING:
    from core.runs.representation import Budget
    from core.runs.store import MetricTuple, RunMetrics, RunRow, RunStore


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:2000]


class _Worker:
    """Store bookkeeping for one run: heartbeat thread, stop flag, metrics, checkpoints."""

    def __init__(self, store: RunStore, run_id: str, heartbeat_s: float) -> None:
        self.store, self.run_id = store, run_id
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.epoch = 0
        self.step = 0
        self.pending: list[MetricTuple] = []
        self.last_flush = time.monotonic()
        self.heartbeat_s = heartbeat_s
        self.maps: Budget | None = None  # the features map's time budget (made at the first epoch's end)
        self.thread = threading.Thread(target=self._beat, name="lab-heartbeat", daemon=True)

    def start(self) -> None:
        # At once, not after the first interval: a resumed run's row still holds the step its dead
        # worker reached, which is past the checkpoint this worker continues from.
        self._beat_once()
        self.thread.start()

    def _beat(self) -> None:
        while not self.done.wait(self.heartbeat_s):
            self._beat_once()

    def _beat_once(self) -> None:
        try:
            self.store.heartbeat(self.run_id, epoch=self.epoch, step=self.step)
            if self.store.stop_requested(self.run_id):
                self.stop_event.set()
        except Exception:  # noqa: BLE001 - a busy database must not kill the run; try again next beat
            pass

    def close(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def log_step(self, ev: StepEvent) -> None:
        self.step = ev["step"]
        step, epoch = ev["step"], ev["epoch"]
        self.pending += [(step, epoch, "loss", ev["loss"]), (step, epoch, "lr", ev["lr"]),
                         (step, epoch, "grad_norm", ev["grad_norm"]),
                         (step, epoch, "samples_per_s", ev["samples_per_s"])]
        if "internals" in ev:  # training internals (core.training.internals), stored as metrics internals/...
            self.pending += [(step, epoch, PREFIX + name, value) for name, value in ev["internals"].items()]
        if time.monotonic() - self.last_flush > 1.0:
            self.flush()

    def log_epoch(self, ev: EpochEvent) -> None:
        self.epoch = ev["epoch"]
        for name, value in (("train_loss", ev["train_loss"]), ("train_acc", ev["train_acc"]),
                            ("val_loss", ev["val_loss"]), ("val_acc", ev["val_acc"]),
                            ("test_loss", ev["test_loss"]), ("test_acc", ev["test_acc"])):
            if value is not None:
                self.pending.append((ev["step"], ev["epoch"], name, value))
        self.pending.append((ev["step"], ev["epoch"], "epoch_seconds", ev["seconds"]))
        self.flush()

    def flush(self) -> None:
        if self.pending:
            wall = time.time()
            rows: list[MetricTuple] = [(step, epoch, name, value, wall)
                                       for step, epoch, name, value, *_ in self.pending]
            # A retry may follow a first try that committed before its answer was lost: once=True.
            retrying(lambda attempt: self.store.log_metrics(self.run_id, rows, once=attempt > 0), on_retry=note_retry)
            self.pending = []
        self.last_flush = time.monotonic()

    def update(self, **fields) -> None:
        """``store.update_run`` for this run, retried while the store is unavailable."""
        retrying(lambda _: self.store.update_run(self.run_id, **fields), on_retry=note_retry)


def _metrics_of(ev: EpochEvent) -> RunMetrics:
    return {"epoch": ev["epoch"], "step": ev["step"], "train_loss": ev["train_loss"], "train_acc": ev["train_acc"],
            "val_loss": ev["val_loss"], "val_acc": ev["val_acc"], "test_loss": ev["test_loss"],
            "test_acc": ev["test_acc"], "lr": ev["lr"], "seconds": ev["seconds"]}


def train_run(trainer: Trainer, store: RunStore | None = None, run_id: str | None = None,
              progress: Progress | None = None,
              heartbeat_s: float = 2.0, external_stop: threading.Event | None = None) -> str:
    """Drive a trainer to the end, writing metrics/checkpoints to the store; returns the final status.

    Rank 0 does all writing. best.pt is the epoch the trainer marks ``best``: chosen on the validation
    split (never the test split, which is only reported). The run stops early (status ``stopped``, last.pt saved) when
    the store's stop flag is set or ``external_stop`` (SIGTERM/SIGINT) is.
    """
    cfg = trainer.config
    main = trainer.is_main
    run_dir, worker = None, None
    if store is not None and main:
        if run_id is None:
            raise ValueError("train_run needs the run id to write to the store")
        run_dir = store.run_dir(run_id, create=True)
        worker = _Worker(store, run_id, heartbeat_s)
    external_stop = external_stop or threading.Event()
    if worker is not None:
        worker.epoch, worker.step = trainer.epoch, trainer.global_step
        worker.start()

    def stop() -> bool:
        return external_stop.is_set() or (worker is not None and worker.stop_event.is_set())

    status = "completed"
    try:
        for ev in trainer.run(stop):
            if ev["kind"] == "step":
                if progress:
                    progress.step(ev)
                if worker:
                    worker.log_step(ev)
            elif ev["kind"] == "epoch":
                if progress:
                    progress.line(epoch_line(ev, cfg.epochs))
                if worker:
                    worker.log_epoch(ev)
                    worker.update(last_metrics=_metrics_of(ev), epoch=ev["epoch"], step=ev["step"])
                    if ev["best"]:
                        worker.update(best_metrics=_metrics_of(ev))
                if main and run_dir is not None:
                    ckpt = trainer.checkpoint()
                    if ev["best"]:  # best.pt first: a crash in between redoes this epoch from the old last.pt
                        save_checkpoint(ckpt, run_dir / BEST)
                    save_checkpoint(ckpt, run_dir / LAST)
                    if worker is not None and trainer.task == "classification":
                        _keep_representation(worker, ckpt, ev["epoch"], ev["seconds"], ev["epoch"] >= cfg.epochs)
            elif ev["kind"] == "stopped":
                status = "stopped"
                if worker:  # metrics up to the checkpoint's step are stored before the checkpoint
                    worker.flush()
                if main and run_dir is not None:
                    save_checkpoint(trainer.checkpoint(), run_dir / LAST)
                if progress:
                    progress.line(f"stopped at epoch {ev['epoch'] + 1}, step {ev['step']}; last.pt saved")
        if worker:
            worker.flush()
    finally:
        if worker:
            worker.close()
    return status




def _keep_representation(worker: _Worker, ckpt: dict, epoch: int, seconds: float, final: bool) -> None:
    """This epoch's PCA map of a fixed subset of test digits (``core.runs.representation``), within its
    time budget; a failure only costs the Explain page that frame."""
    from core.runs.representation import Budget

    if worker.maps is None:
        worker.maps = Budget()
    try:
        worker.maps.record(worker.store, worker.run_id, ckpt, epoch, seconds, final)
    except Exception as exc:  # noqa: BLE001 - the map is an extra; training goes on without it
        print(f"note: could not keep the epoch's feature map: {_error_text(exc)}", file=sys.stderr)


def _keep_evaluation(store: RunStore, run_id: str) -> None:
    """The finished run's test-split evaluation, kept for the pages (``core.runs.trained.save_evaluation``);
    a failure only costs the page its own evaluation later."""
    from core.runs.trained import save_evaluation

    try:
        save_evaluation(store, run_id)
    except Exception as exc:  # noqa: BLE001 - the page evaluates by itself then, under its budget
        print(f"note: could not keep the run's evaluation: {_error_text(exc)}", file=sys.stderr)


def execute(trainer: Trainer, store: RunStore | None, run_id: str | None, args) -> int:
    progress = Progress(trainer.total_steps, enabled=trainer.is_main and not args.quiet)
    external_stop = threading.Event()

    def on_signal(signum, frame):  # finish the current step, checkpoint, status "stopped"
        if external_stop.is_set():  # asked twice: stop now
            raise KeyboardInterrupt
        external_stop.set()

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, on_signal)
    if trainer.is_main:
        where = f" run {run_id} in {store.home}" if store is not None else ""
        progress.line(f"training{where}: {trainer.config.preset if trainer.config.model_spec is None else 'custom'} "
                      f"on {trainer.config.dataset}, {trainer.config.epochs} epochs, {trainer.device}, "
                      f"{trainer.precision.name}, world size {trainer.dist.world_size}")
    code = 0
    try:
        status = train_run(trainer, store, run_id, progress, heartbeat_s=load_settings().heartbeat_s,
                           external_stop=external_stop)
        if store is not None and run_id is not None:
            done = store
            if trainer.is_main and trainer.task == "classification" and status in ("completed", "stopped"):
                _keep_evaluation(store, run_id)
            retrying(lambda _: done.finish_run(run_id, status), on_retry=note_retry)
            retrying(lambda _: done.delete_marked(run_id), on_retry=note_retry)  # deleted while it ran: it goes now
        if trainer.is_main and trainer.history:
            last = trainer.history[-1]
            summary = {"run_id": run_id, "status": status, "epoch": trainer.epoch, "step": trainer.global_step,
                       "val_acc": last.get("val_acc"), "test_acc": last.get("test_acc"),
                       "test_loss": last.get("test_loss")}
            print(json.dumps(summary))
    except BaseException as exc:  # recorded as "failed" with the reason, then re-raised for the exit code
        if store is not None and run_id is not None:
            with contextlib.suppress(Exception):
                store.finish_run(run_id, "failed", error=_error_text(exc))
                store.delete_marked(run_id)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        traceback.print_exc()
        code = 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if trainer.dist.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return code


def run_stored(args) -> int:
    """Worker mode: run the stored run ``--run-id`` (claim its job slot first). A DDP run (its
    ``world_size``, the config's ``processes``, >= 2) is driven from here: ``run_ddp`` has the
    executor start its ranks."""
    from core.ml.data import DataUnavailable
    from core.runs.store import FINISHED, check_run_id
    try:
        run_id = check_run_id(args.run_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        store = open_store(home=args.home)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = store.get_run(run_id)
    if run is None:
        print(f"error: no run {run_id} in {store.location}", file=sys.stderr)
        return 2
    if run["status"] in FINISHED:
        if not args.resume or run["status"] == "completed":
            print(f"error: run {run_id} is {run['status']}; use --resume to continue a stopped or failed run",
                  file=sys.stderr)
            return 2
        store.update_run(run_id, status="queued", stop_requested=False, error=None, finished=None)
    elif run["status"] == "running":
        print(f"error: run {run_id} is already running (pid {run['pid']})", file=sys.stderr)
        return 2
    if not store.claim_run(run_id, os.getpid(), cap=args.job_cap):
        store.release_launch(run_id)
        print(f"run {run_id}: no free job slot (cap {args.job_cap}); left in the queue", file=sys.stderr)
        return 3
    if store.stop_requested(run_id):
        store.finish_run(run_id, "stopped")
        store.delete_marked(run_id)
        return 0
    if run["world_size"] > 1:
        code = run_ddp(store, run_id, run, args)
        _hand_off(store, args.job_cap)
        return code
    try:
        config = TrainConfig.from_stored(run["config"]).validate()
        trainer = Trainer(config)
    except DataUnavailable as exc:  # before ValueError: it is a LabError, hence a ValueError, too
        store.finish_run(run_id, "failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        store.finish_run(run_id, "failed", error=f"invalid config: {exc}")
        print(f"error: invalid config: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        store.finish_run(run_id, "failed", error=_error_text(exc))
        raise
    store.update_run(run_id, device=str(trainer.device), precision=trainer.precision.name, launched=None)
    last = store.run_dir(run_id) / LAST
    if last.exists():
        try:
            trainer.load_checkpoint(last)
        except CheckpointError as exc:
            store.finish_run(run_id, "failed", error=f"cannot resume: {exc}")
            print(f"error: cannot resume: {exc}", file=sys.stderr)
            return 1
        store.truncate_metrics(run_id, trainer.global_step)
        print(f"resuming run {run_id} at epoch {trainer.epoch + 1}, step {trainer.global_step}", file=sys.stderr)
    else:
        store.truncate_metrics(run_id, 0)
    # Where this worker starts: the page's progress and ETA count from here, not from an earlier worker's step.
    store.update_run(run_id, epoch=trainer.epoch, step=trainer.global_step)
    code = execute(trainer, store, run_id, args)
    _hand_off(store, args.job_cap)
    return code


def _hand_off(store, cap: int | None) -> None:
    """A finishing job starts the next queued one, so the queue moves with no page open (through the
    same executor; a cluster this worker cannot reach is left to the servers' next poll)."""
    if cap is None:
        return
    try:
        from core.runs.jobs import JobManager

        jobs = JobManager(store=store, cap=cap)
        jobs.executor.check()
        jobs.poll()
    except Exception as exc:  # noqa: BLE001 - the next page visit will launch it instead
        print(f"note: could not start the next queued run: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- DDP runs
def run_ddp(store: RunStore, run_id: str, run: RunRow, args) -> int:
    """The driver of a claimed DDP run (world size >= 2): its executor runs the ranks (``train_rank``).

    Rank 0 writes the run like a one-process worker does (metrics, checkpoints, the final
    status); the driver beats the run's heartbeat meanwhile (starting the ranks on a cluster
    takes a while) and fails the run if the ranks ended without rank 0 finishing it.
    """
    from core.runs.executors import ExecutorError, open_executor

    world = run["world_size"]
    try:
        config = TrainConfig.from_dict(run["config"]).validate()
        executor = open_executor()
        resources = executor.resources(config.device)
    except ExecutorError as exc:
        store.finish_run(run_id, "failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:
        store.finish_run(run_id, "failed", error=f"invalid config: {exc}")
        print(f"error: invalid config: {exc}", file=sys.stderr)
        return 2
    payload = {"run_id": run_id, "home": str(store.home), "config": config.to_dict(),
               "threads": args.threads or resources.threads, "quiet": bool(args.quiet)}
    print(f"run {run_id}: DistributedDataParallel in {world} processes ({executor.name} executor)", file=sys.stderr,
          flush=True)
    done = threading.Event()
    heartbeat_s = load_settings().heartbeat_s

    def beat() -> None:
        while not done.wait(heartbeat_s):
            with contextlib.suppress(Exception):
                store.heartbeat(run_id)

    beater = threading.Thread(target=beat, name="lab-ddp-heartbeat", daemon=True)
    beater.start()
    try:
        code = executor.run_ranks(train_rank, payload, world, resources, store.run_dir(run_id, create=True))
    except Exception as exc:  # noqa: BLE001 - recorded as the run's error below
        print(f"error: {_error_text(exc)}", file=sys.stderr)
        code = 1
    finally:
        done.set()
        beater.join(timeout=10)
    fresh = retrying(lambda _: store.get_run(run_id), on_retry=note_retry)
    if fresh is not None and fresh["status"] in ("queued", "running"):
        retrying(lambda _: store.finish_run(run_id, "failed", error=f"the {world} DDP processes ended without "
                                            f"finishing the run (exit code {code}); see the worker log"),
                 on_retry=note_retry)
        code = code or 1
    retrying(lambda _: store.delete_marked(run_id), on_retry=note_retry)
    return code


def train_rank(payload: dict, rank: int, world_size: int, local_rank: int) -> int:
    """One process of a DDP run (in a local process or a Ray Train worker); rank 0 writes to the store."""
    import torch

    from core.runs.store import RUNS_DIR
    from core.training.distributed import DistInfo

    run_id = payload["run_id"]
    torch.set_num_threads(max(1, int(payload["threads"])))
    store: RunStore | None = None
    try:
        if rank == 0:
            store = open_store(home=payload["home"])
        config = TrainConfig.from_dict(payload["config"]).validate()
        trainer = Trainer(config, dist_info=DistInfo(rank, world_size, local_rank))
        last = Path(payload["home"]) / RUNS_DIR / run_id / LAST
        if last.exists():
            trainer.load_checkpoint(last)
        if store is not None:
            store.update_run(run_id, device=str(trainer.device), precision=trainer.precision.name, launched=None)
            store.truncate_metrics(run_id, trainer.global_step)
            if trainer.global_step:
                print(f"resuming run {run_id} at epoch {trainer.epoch + 1}, step {trainer.global_step}",
                      file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - recorded as the run's error (rank 0), printed (every rank)
        if store is not None:
            with contextlib.suppress(Exception):
                store.finish_run(run_id, "failed", error=_error_text(exc))
        traceback.print_exc()
        return 1
    return execute(trainer, store, run_id, SimpleNamespace(quiet=payload["quiet"]))

