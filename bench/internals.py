"""Training internals: what recording them every N steps costs the trainer (``TrainConfig.internals_every``).

Two measurements on the default recipe (bundled digits, augmentation off, no evaluation):

- the cost of one recording step: the median time of steps that record (every step records) against
  steps that do not, interleaved in blocks; divided by N steps, that is the cost per step at the
  default N;
- training throughput with recording every N steps against recording off, interleaved epochs.

Target: under 3% of throughput at the default N.

    python -m bench.internals [--quick]
"""
from __future__ import annotations

import argparse
import time

import torch

from bench.common import Contention, interleave, md_table, median
from core.training.batches import load_data
from core.training.config import TrainConfig, field_default
from core.training.trainer import Trainer

TARGET = 0.03


def _step_ms(trainer: Trainer, steps: int) -> float:
    """Median wall time (ms) of ``steps`` steps of ``trainer`` (a new epoch is started as needed)."""
    times = []
    for _ in range(steps):
        if trainer.finished:
            trainer.epoch = 0
        t0 = time.perf_counter()
        trainer.step()
        times.append((time.perf_counter() - t0) * 1000)
    return median(times)


def section(quick: bool = False) -> str:
    every = int(field_default("internals_every"))
    limit = {"limit_train": 512, "limit_test": 64, "val_size": 64} if quick else {}
    base = TrainConfig(augment=False, epochs=200, **limit)
    data = load_data(base)
    trainers = {name: Trainer(base.replace(internals_every=n), data=data)
                for name, n in (("off", 0), ("every step", 1), (f"every {every}", every))}
    blocks, block_steps = (2, 5) if quick else (6, 25)
    epoch_steps = trainers["off"].steps_per_epoch
    repeats, warmup = (1, 0) if quick else (9, 1)
    with Contention() as busy:
        steps = interleave({"off": lambda: _step_ms(trainers["off"], block_steps),
                            "on": lambda: _step_ms(trainers["every step"], block_steps)},
                           repeats=blocks, warmup=1)
        n_samples = epoch_steps * base.batch_size

        def epoch(name: str) -> float:
            t0 = time.perf_counter()
            _step_ms(trainers[name], epoch_steps)
            return n_samples / (time.perf_counter() - t0)

        sps = interleave({"off": lambda: epoch("off"), "on": lambda: epoch(f"every {every}")},
                         repeats=repeats, warmup=warmup)
    plain_ms, record_ms = median(steps["off"]), median(steps["on"])
    extra_ms = max(0.0, record_ms - plain_ms)
    computed = extra_ms / every / plain_ms
    off_sps, on_sps = median(sps["off"]), median(sps["on"])
    measured = 1 - on_sps / off_sps
    # Each round's pair ran back to back: their ratio cancels the machine's slower and faster phases.
    paired = 1 - median([a / b for a, b in zip(sps["on"], sps["off"], strict=False)])
    recorder = trainers["every step"].internals
    stats = len(trainers["every step"].step().get("internals", {}))
    layers = len(recorder.weighted) + len(recorder.activations) if recorder is not None else 0
    verdict = "met" if computed < TARGET else "missed"
    lines = [
        "## Training internals", "",
        f"What recording the training internals (`core.training.internals`: per-layer weight, gradient and "
        f"activation quantiles, update-to-weight ratios, dead ReLUs, the batch's statistics; {layers} layers of "
        f"the default model) costs the default recipe (`{base.preset}`, batch {base.batch_size}, "
        f"{trainers['off'].precision.name}, augmentation off, {torch.get_num_threads()} threads). "
        f"The trainer records on the first step and then every `internals_every` = {every} steps (the default). "
        f"Steps timed in {blocks} interleaved blocks of {block_steps} per side; throughput over "
        f"{repeats} interleaved epochs ({epoch_steps} steps) per side; medians. Target: under {TARGET:.0%} of "
        "throughput.", "",
        md_table(["step without recording ms", "recording step ms", "extra per recording step ms",
                  f"cost per step at every {every}", f"samples/s, off / every {every}", "throughput loss (medians)",
                  "throughput loss (median of paired rounds)", "target"],
                 [[f"{plain_ms:.2f}", f"{record_ms:.2f}", f"{extra_ms:.2f}", f"{computed:.2%}",
                   f"{off_sps:.0f} / {on_sps:.0f}", f"{measured:+.1%}", f"{paired:+.1%}", verdict]]), "",
        f"A recording step stores about {stats} values as metrics (`internals/<layer>/<stat>`). The throughput "
        "comparison is the direct check: the median of paired rounds (each round's two epochs ran back to back) "
        "cancels a shared machine's slower and faster phases, which the separate medians do not; the target is "
        "judged on the step timing above.", "",
        busy.note(),
    ]
    if quick:
        lines += ["", "*Quick run (`--quick`): small sizes and few repeats, a smoke test of the code; these numbers "
                  "are not measurements.*"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke test)")
    print(section(p.parse_args(argv).quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
