"""``python -m core.sweep``: queue a small sweep into the lab's run store (the Runs page shows it).

Usage::

    python -m core.sweep --grid lr=0.001,0.003 --grid batch_size=64,128 --epochs 1
    python -m core.sweep --preset cnn --random lr=1e-4:1e-2 --trials 6 --seeds 2 --wait
    python -m core.sweep --from-run r20250101-120000-3fa2c1 --grid optimizer=adam,sgd --dry-run

Every ``python -m core.train`` config flag (``--recipe``, ``--preset``, ``--epochs``, …) sets
what the sweep does not vary. ``--grid FIELD=V1,V2,…`` lists values of a setting (config field
names; values read by the field's type and checked by the config); ``--random FIELD=LO:HI``
draws ``--trials N`` values (log-uniformly for lr and weight_decay, uniformly otherwise);
``--seeds N`` repeats each setting with N seeds. At most 16 runs, queued through the job cap;
``--wait`` blocks until every run has ended, printing one line per run as it ends.
"""
from __future__ import annotations

import argparse
import sys
import time

from core.errors import Code, LabError
from core.runs.jobs import JobManager
from core.runs.store import FINISHED, RunRow
from core.runs.sweep import (
    LOG_UNIFORM,
    MAX_RUNS,
    SweepPlan,
    best_setting,
    parse_grid,
    parse_random,
    plan,
    queue,
    score_metric,
    setting_text,
    sweep_table,
)
from core.training.config import RECIPES, TrainConfig
from core.training.console import add_config_flags, config_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.sweep",
        description=f"Queue a small sweep (at most {MAX_RUNS} runs) into the lab's run store; the job cap "
                    "decides how many train at once, and the Runs page shows the sweep.")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,…",
                   help="values of one config setting (repeat for a second setting: the runs are the product)")
    p.add_argument("--random", action="append", default=[], metavar="FIELD=LO:HI",
                   help=f"draw a numeric setting from [LO, HI] --trials times (log-uniform for "
                        f"{', '.join(LOG_UNIFORM)}, uniform otherwise)")
    p.add_argument("--trials", type=int, default=None, metavar="N", help="random draws (with --random)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="repeat each setting with N seeds (the config's seed, seed + 1, …)")
    p.add_argument("--draw-seed", type=int, default=0, metavar="N", help="seed of the random draws (default 0)")
    p.add_argument("--recipe", choices=list(RECIPES), help="start from a named recipe (default: default)")
    p.add_argument("--config", metavar="FILE", help="a JSON config saved from the lab (flags override it)")
    p.add_argument("--from-run", metavar="RUN_ID", help="start from a stored run's config (flags override it)")
    p.add_argument("--home", help="lab home holding runs.sqlite3 and runs/ (default: PYTORCH_LAB_HOME)")
    p.add_argument("--name", default="", help="a name put before each run's setting")
    p.add_argument("--wait", action="store_true", help="wait until every run has ended, one line per run")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="with --wait: give up after S seconds")
    p.add_argument("--dry-run", action="store_true", help="print the runs the sweep would queue; queue nothing")
    add_config_flags(p)
    return p


def base_config(args: argparse.Namespace, jobs: JobManager | None) -> TrainConfig:
    """The config the sweep varies: a stored run's, a recipe's or a file's, with the config flags applied."""
    if not args.from_run:
        return config_from_args(args)
    if args.config or args.recipe:
        raise LabError("sweep.from_run_and_config")
    assert jobs is not None
    run = jobs.store.get_run(args.from_run)
    if run is None:  # deleted, or a typo: say so, queue nothing
        raise LabError("runs.parent_gone", run=Code(args.from_run[:64]))
    return config_from_args(args, base=TrainConfig.from_dict(run["config"]))


def make_plan(args: argparse.Namespace, jobs: JobManager | None = None) -> SweepPlan:
    axes = [parse_grid(a) for a in args.grid] + [parse_random(a) for a in args.random]
    fixed = [a.field for a in axes if hasattr(args, a.field)]
    if fixed:
        raise LabError("sweep.also_fixed", field=Code(fixed[0]))
    return plan(base_config(args, jobs), axes, trials=args.trials, seeds=args.seeds, draw_seed=args.draw_seed)


def run_line(run: RunRow | None, run_id: str) -> str:
    """One line about a run that has ended: id, name, status, final test metrics and duration."""
    if run is None:
        return f"{run_id}: deleted"
    last = run.get("last_metrics") or {}
    parts = [f"{run_id} {run['name']}: {run['status']}"]
    acc, loss = last.get("test_acc"), last.get("test_loss")
    if acc is not None:
        parts.append(f"test_acc {100 * acc:.2f}%")
    if loss is not None:
        parts.append(f"test_loss {loss:.4f}")
    started, finished = run.get("started"), run.get("finished")
    if started and finished:
        parts.append(f"({finished - started:.1f} s)")
    if run["status"] == "failed" and run.get("error"):
        parts.append(f"- {str(run['error']).splitlines()[0][:160]}")
    return " ".join(parts)


def wait(jobs: JobManager, ids: list[str], timeout: float | None = None, interval: float = 0.5) -> bool:
    """Poll the queue until every run has ended, printing a line per run as it ends; True if all completed."""
    pending, ok = list(ids), True
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        jobs.poll()
        for run_id in list(pending):
            run = jobs.store.get_run(run_id)
            if run is None or run["status"] in FINISHED:
                pending.remove(run_id)
                ok = ok and run is not None and run["status"] == "completed"
                print(run_line(run, run_id), flush=True)
        if pending:
            if deadline is not None and time.monotonic() > deadline:
                print(f"timed out: {len(pending)} run(s) still queued or running (they go on)", file=sys.stderr)
                return False
            time.sleep(interval)
    return ok


def summary(jobs: JobManager, ids: list[str], fields: tuple[str, ...]) -> str | None:
    """The best setting among the sweep's completed runs, in one line (None when none completed)."""
    runs = [r for r in (jobs.store.get_run(i) for i in ids) if r is not None]
    metrics = {r["id"]: jobs.store.metrics(r["id"], names=("val_acc", "test_acc", "val_loss", "test_loss"))
               for r in runs}
    score = score_metric(metrics)
    best = best_setting(sweep_table(runs, metrics, fields, score), fields, score)
    if best is None:
        return None
    spread = f" ± {best.std:.4f}" if best.std is not None else ""
    return f"best setting: {setting_text(best.setting)}: final {best.metric} {best.mean:.4f}{spread} " \
           f"(mean of {best.n} run{'s' if best.n > 1 else ''})"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    jobs = None
    try:
        if args.from_run or not args.dry_run:
            jobs = JobManager(args.home) if args.home else JobManager()
        sweep = make_plan(args, jobs)
    except (LabError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        for p in sweep.runs:
            print(f"{setting_text(p.setting)} seed {p.seed}")
        print(f"{len(sweep.runs)} run(s); nothing queued (--dry-run)")
        return 0
    assert jobs is not None
    sweep_id, ids = queue(jobs, sweep, name=args.name)
    print(f"sweep {sweep_id}: {len(ids)} run(s) queued in {jobs.home} (job cap {jobs.cap}); "
          f"the Runs page shows it", flush=True)
    for run_id, p in zip(ids, sweep.runs, strict=True):
        print(f"  {run_id} {setting_text(p.setting)} seed {p.seed}", flush=True)
    if not args.wait:
        return 0
    try:
        ok = wait(jobs, ids, args.timeout)
    except KeyboardInterrupt:
        print("stopped waiting; the runs go on in the background (see the Runs page)", file=sys.stderr)
        return 130
    line = summary(jobs, ids, sweep.fields)
    if line:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
