"""Time to accuracy of the lab's training recipes on the bundled MNIST digits.

One command::

    python -m bench.recipe                 # default recipe (seed 0) + the tutorials' CNN (R3)
    python -m bench.recipe --seeds 0,1,2   # several seeds
    python -m bench.recipe --bf16          # also bf16 autocast (CPUs with AVX512-BF16/AMX)
    python -m bench.recipe --no-write      # print only

It is also the "recipe" section of the suite (``python -m bench``, through ``section()``:
seeds 0-2 of the default recipe, of its bf16 variant where bf16 is fast, and of r3).

It trains ``TrainConfig()`` (the default recipe: preset lab_cnn on digits8k) and the
tutorials' CNN (recipe r3: preset cnn, Adam 1e-3), prints the seconds until the test
accuracy first reaches the target (98.5% / 97%) and the final accuracy, and writes or
updates the "Time to accuracy" section of BENCHMARKS.md (the machine's facts are in the
file's header, written by ``python -m bench``).

Seconds are wall-clock from building the trainer (data loading included) to the end of
the epoch whose evaluation first reaches the target. CPU seconds are this process's CPU
time over the same span; "steal" is the share of the machine's CPU time the hypervisor
took during the run (on a shared VM, wall time grows with it).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench.common import BENCHMARKS, md_table, update_benchmarks
from core.ml.env import env_facts
from core.training.config import TrainConfig, recipe
from core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent

SECTION = "## Time to accuracy"


def _cpu_ticks() -> tuple[int, int] | None:
    """(total, steal) jiffies from /proc/stat, or None where it does not exist."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields]
    steal = values[7] if len(values) > 7 else 0
    return sum(values[:8]), steal


def measure(name: str, config: TrainConfig, target: float, log=None) -> dict:
    """Train one config to the end; the seconds at which test accuracy first reached ``target``."""
    ticks0, wall0, cpu0 = _cpu_ticks(), time.perf_counter(), time.process_time()
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    trainer = Trainer(config)
    reached, accs = None, []
    for ev in trainer.run():
        if ev["kind"] != "epoch":
            continue
        elapsed = time.perf_counter() - wall0
        accs.append(ev["test_acc"])
        if reached is None and ev["test_acc"] >= target:
            reached = elapsed
        log(f"  {name} seed {config.seed} epoch {ev['epoch']}/{config.epochs}: test_acc {ev['test_acc'] * 100:.2f}% "
            f"test_loss {ev['test_loss']:.4f} at {elapsed:.1f}s")
    wall, cpu, ticks1 = time.perf_counter() - wall0, time.process_time() - cpu0, _cpu_ticks()
    steal = None
    if ticks0 and ticks1 and ticks1[0] > ticks0[0]:
        steal = (ticks1[1] - ticks0[1]) / (ticks1[0] - ticks0[0])
    return {"name": name, "seed": config.seed, "target": target, "seconds_to_target": reached, "final": accs[-1],
            "best": max(accs), "epochs": config.epochs, "wall": wall, "cpu": cpu, "steal": steal,
            "steps": trainer.global_step, "config": config}


def describe(config: TrainConfig) -> str:
    model = config.preset if config.model_spec is None else "custom spec"
    parts = [model, config.optimizer, f"lr {config.lr:g}", config.scheduler if config.scheduler != "none" else "",
             f"wd {config.weight_decay:g}" if config.weight_decay else "",
             f"label smoothing {config.label_smoothing:g}" if config.label_smoothing else "",
             f"batch {config.batch_size}",
             f"{config.epochs} epochs", "augment" if config.augment else "", config.precision]
    return ", ".join(p for p in parts if p)


def render(results: list[dict], when: str, command: str = "python -m bench") -> str:
    rows = []
    for r in results:
        reached = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] is not None else "not reached"
        steal = f"{r['steal'] * 100:.0f}%" if r["steal"] is not None else "n/a"
        rows.append([r["name"], describe(r["config"]), r["seed"], f"{r['target'] * 100:.1f}%", reached,
                     f"{r['final'] * 100:.2f}%", f"{r['best'] * 100:.2f}%", f"{r['wall']:.1f}", f"{r['cpu']:.1f}",
                     steal])
    lines = [SECTION, "",
             f"Measured by `{command}` on {when}. Seconds are wall-clock from building the trainer",
             "(data loading included) to the end of the first epoch whose test accuracy reaches the target;",
             "accuracies are on the bundled 1,000-image test split. Target: the default recipe at 98.5% in",
             "≤ 30 s.", "",
             md_table(["recipe", "config", "seed", "target", "seconds to target", "final test acc", "best", "wall s",
                       "CPU s", "steal"], rows), ""]
    return "\n".join(lines)


def plan_for(seeds: list[int], bf16: bool = False, r3: bool = True, quick: bool = False) -> list[tuple]:
    """(name, config, target) runs: the default recipe per seed, optionally bf16, and r3."""
    if quick:  # a smoke test: one short epoch on part of the data (the target is not reached)
        return [("default (quick: 1 epoch, 1,024 samples)", TrainConfig(epochs=1, limit_train=1024, limit_test=256),
                 0.985)]
    plan = [("default", TrainConfig().replace(seed=s), 0.985) for s in seeds]
    if bf16:
        if env_facts().fast_bf16 or env_facts().cuda_available:
            plan += [("default, bf16", TrainConfig(precision="bf16").replace(seed=s), 0.985) for s in seeds]
        else:
            print(f"skipping bf16: {env_facts().fast_bf16_reason}", file=sys.stderr)
    if r3:
        plan += [("r3 (tutorials' CNN, M5)", recipe("r3").replace(seed=s), 0.97) for s in seeds]
    return plan


def run_plan(plan: list[tuple]) -> list[dict]:
    results = []
    for name, config, target in plan:
        r = measure(name, config, target)
        results.append(r)
        reached = f"{r['seconds_to_target']:.1f} s" if r["seconds_to_target"] is not None else "not reached"
        print(f"{name} seed {config.seed}: seconds to {target * 100:.1f}%: {reached}; final test accuracy "
              f"{r['final'] * 100:.2f}% (best {r['best'] * 100:.2f}%); {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU"
              + (f", steal {r['steal'] * 100:.0f}%" if r["steal"] is not None else ""), file=sys.stderr, flush=True)
    return results


def section(quick: bool = False) -> str:
    """The suite's "Time to accuracy" part: seeds 0-2 of the default recipe, bf16 where fast, and r3."""
    results = run_plan(plan_for([0] if quick else [0, 1, 2], bf16=not quick, r3=not quick, quick=quick))
    return render(results, time.strftime("%Y-%m-%d"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice, all cores)")
    p.add_argument("--skip-r3", action="store_true", help="only the default recipe")
    p.add_argument("--bf16", action="store_true",
                   help="also the default recipe in bf16 (only where the CPU or GPU runs bf16 natively)")
    p.add_argument("--no-write", action="store_true", help=f"do not update {BENCHMARKS.name}")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    results = run_plan(plan_for(seeds, bf16=args.bf16, r3=not args.skip_r3))
    text = render(results, time.strftime("%Y-%m-%d"), command="python -m bench.recipe")
    print(text)
    if not args.no_write:
        update_benchmarks(text)
        print(f"updated {BENCHMARKS}")
    failed = [r for r in results if r["final"] < r["target"]]
    for r in failed:
        print(f"FAILED: {r['name']} seed {r['seed']} ended at {r['final'] * 100:.2f}%, below {r['target'] * 100:.1f}%",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
