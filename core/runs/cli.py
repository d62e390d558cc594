"""``python -m core.train``: train from a terminal (or as a job worker) into the lab's run store."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

import torch

from core.runs.store import StoreError, open_store
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
    from core.ml.data import DataUnavailable

    try:
        info = dist_from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
