"""``python -m core.train``: train from a terminal (or as a job worker) into the lab's run store."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import torch

from core.runs.executors import EXECUTORS
from core.runs.store import FINISHED, StoreError, open_store
from core.runs.worker import execute, run_stored
from core.training.config import RECIPES, TrainConfig
from core.training.console import add_config_flags, config_from_args
from core.training.distributed import dist_from_env
from core.training.trainer import Trainer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train a PyTorch Lab model headless, writing to the lab's run store. "
                    "Under torchrun it trains with DistributedDataParallel.")
    p.add_argument("--recipe", choices=list(RECIPES), help="start from a named recipe (default: default)")
    p.add_argument("--config", metavar="FILE", help="a JSON config saved from the lab (flags override it)")
    p.add_argument("--run-id", help="run a stored run: a queued job, or with --resume a stopped/failed run")
    p.add_argument("--resume", action="store_true", help="with --run-id: continue from the run's last.pt")
    p.add_argument("--home", help="lab home holding runs.sqlite3 (unless PYTORCH_LAB_STORE_URL names PostgreSQL) "
                                  "and runs/ (default: PYTORCH_LAB_HOME)")
    p.add_argument("--name", default="", help="a name for the new run")
    p.add_argument("--tags", default="", help="comma-separated tags for the new run")
    p.add_argument("--no-store", action="store_true", help="do not write to the run store (print only)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--job-cap", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="local: train in this process (the default); ray: submit the run as a Ray Job to the "
                        "cluster at PYTORCH_LAB_RAY_ADDRESS and follow it (default: PYTORCH_LAB_EXECUTOR)")
    p.add_argument("--detach", action="store_true",
                   help="with a job (--executor ray, --processes N): print its run id and return at once")
    p.add_argument("--print-config", action="store_true", help="print the validated config as JSON and exit")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_config_flags(p)
    return p






def _set_threads(n: int) -> None:
    if n and n > 0:
        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):  # already set once in this process
            torch.set_num_interop_threads(1)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _set_threads(args.threads)
    if args.run_id:
        given = [name for name in TrainConfig.model_fields if hasattr(args, name)]
        given += (["--config"] if args.config else []) + (["--recipe"] if args.recipe else [])
        if given:
            print("error: --run-id trains the run's stored config; --config, --recipe and config flags "
                  f"cannot change it (got {', '.join(given)})", file=sys.stderr)
            return 2
        return run_stored(args)
    try:
        config = config_from_args(args).validate()
    except (ValueError, TypeError) as exc:
        print(f"error: invalid config: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_json())
        return 0
    try:
        submit = _as_job(args, config)
    except ValueError as exc:  # an unknown executor, bad Ray settings (ExecutorError), a flag that does not fit
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if submit:
        return submit_and_follow(args, config)
    from core.ml.data import DataUnavailable

    try:
        info = dist_from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if info.distributed and config.processes != info.world_size:
        if config.processes != 1:
            print(f"error: the config asks for {config.processes} processes but torchrun started "
                  f"{info.world_size}", file=sys.stderr)
            return 2
        config = config.replace(processes=info.world_size)  # the run records its world size
    store, run_id = None, None
    if info.is_main and not args.no_store:  # rank 0 alone writes; the store is checked before any work
        try:
            store = open_store(home=args.home)
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        trainer = Trainer(config, dist_info=info)
    except DataUnavailable as exc:  # before ValueError: it is a LabError, hence a ValueError, too
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if store is not None:
        tags = [t for t in args.tags.split(",") if t.strip()]
        run_id = store.create_run(config.to_dict(), name=args.name, tags=tags, status="running", kind="cli",
                                  device=str(trainer.device), precision=trainer.precision.name)
        store.update_run(run_id, pid=os.getpid())
    return execute(trainer, store, run_id, args)


def _world_size(args: argparse.Namespace, config: TrainConfig) -> int:
    """DDP processes of the run (``--processes``): 2 or more make it a job whose executor starts the ranks."""
    return config.processes


def _as_job(args: argparse.Namespace, config: TrainConfig) -> bool:
    """Whether this command submits the run as a job (Ray, or DDP processes) instead of training here."""
    from core.runs.executors import open_executor
    from core.settings import load_settings

    name = args.executor or load_settings().executor
    open_executor(name=name)  # an unknown PYTORCH_LAB_EXECUTOR or bad Ray settings: said now
    world = _world_size(args, config)
    job = name.strip().lower() != "local" or world > 1
    if not job:
        return False
    if dist_from_env().distributed:
        if args.executor or world > 1:
            raise ValueError("under torchrun this command trains here; --executor and --processes submit a job")
        return False  # the environment's executor does not apply to torchrun's processes
    if args.no_store:
        raise ValueError("--no-store trains in this process; a job (--executor ray, --processes N) needs the store")
    return True


def submit_and_follow(args: argparse.Namespace, config: TrainConfig) -> int:
    """Queue the run as a job of the executor, then follow it until it ends (Ctrl-C stops it; twice: detach)."""
    from core.runs.executors import ExecutorError
    from core.runs.jobs import JobManager
    from core.settings import load_settings

    try:
        store = open_store(home=args.home)
        jobs = JobManager(store=store, executor=args.executor or load_settings().executor)
        tags = [t for t in args.tags.split(",") if t.strip()]
        run_id = jobs.start(config, name=args.name, tags=tags, world_size=_world_size(args, config))
    except (StoreError, ExecutorError, ValueError) as exc:  # unreachable store or cluster: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = getattr(jobs.executor, "address", "this machine")
    print(f"run {run_id} queued for the {jobs.executor.name} executor ({where}) in {store.location}",
          file=sys.stderr, flush=True)
    if args.detach:
        print(json.dumps({"run_id": run_id, "status": store.run(run_id)["status"]}))
        return 0
    return follow(jobs, run_id, quiet=args.quiet)


def follow(jobs, run_id: str, quiet: bool = False, interval: float = 0.5) -> int:
    """Print a run's status changes and epochs until it finishes; the summary as JSON at the end.

    Exit code: 0 completed or stopped, 1 failed. Ctrl-C asks the run to stop (its worker saves
    last.pt); a second Ctrl-C returns at once and leaves the run to the cluster.
    """
    store = jobs.store
    seen_status, seen_epoch, stopping = None, 0, False
    total = int(store.run(run_id)["config"].get("epochs", 0))
    while True:
        try:
            jobs.poll()
            run = store.run(run_id)
            if run["status"] != seen_status:
                seen_status = run["status"]
                host = f" on {run['host']}" if run["status"] == "running" and run["host"] else ""
                if not quiet:
                    print(f"run {run_id}: {seen_status}{host}", file=sys.stderr, flush=True)
            last = run["last_metrics"] or {}
            if run["epoch"] > seen_epoch and last and not quiet:
                seen_epoch = run["epoch"]
                acc = last.get("test_acc")
                print(f"epoch {last.get('epoch')}/{total} train_loss {last.get('train_loss')} test_loss "
                      f"{last.get('test_loss')}" + (f" test_acc {acc * 100:.2f}%" if acc is not None else ""),
                      file=sys.stderr, flush=True)
            if run["status"] in FINISHED:
                break
            time.sleep(interval)
        except KeyboardInterrupt:
            if stopping:
                print(f"run {run_id} goes on; stop it from the Runs page or with Ctrl-C next time",
                      file=sys.stderr)
                return 130
            stopping = True
            print(f"stopping run {run_id} (its worker saves last.pt; Ctrl-C again to leave it running)",
                  file=sys.stderr, flush=True)
            jobs.stop(run_id)
    if run["error"]:
        print(f"error: {run['error']}", file=sys.stderr)
    last = run["last_metrics"] or {}
    print(json.dumps({"run_id": run_id, "status": run["status"], "epoch": run["epoch"], "step": run["step"],
                      "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"), "host": run["host"]}))
    return 1 if run["status"] == "failed" else 0

