"""Prediction latency of the Predict page's model call (the target is under 50 ms).

One command::

    python -m bench.predict            # prints the table and updates BENCHMARKS.md
    python -m bench.predict --no-write # print only

Also the "predict" section of the suite (``python -m bench``, through ``section()``).
Measures the path the page runs for one drawn digit: MNIST preprocessing of a 280×280
canvas image, then the forward pass, for the default CNN and the tutorials' CNNs, with
torch's threads as the server has them. Latency does not depend on the weights, so fresh
weights are used.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import md_table, median, update_benchmarks
from core.ml import predict as P
from core.ml.data import load_bundled
from core.ml.modules import build_model
from core.ml.zoo import preset_spec

ROOT = Path(__file__).resolve().parent.parent

HEADING = "## Prediction latency"
PRESETS = ("lab_cnn", "cnn", "simple_cnn", "resblock_net")
TARGET_MS = 50.0


def measure(preset: str, canvas: np.ndarray, repeats: int = 50) -> dict:
    model = build_model(preset_spec(preset)).eval()
    times_pre, times_fwd = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        prepared = P.preprocess(canvas)
        t1 = time.perf_counter()
        with torch.inference_mode():
            model(prepared.tensor)
        t2 = time.perf_counter()
        times_pre.append((t1 - t0) * 1000)
        times_fwd.append((t2 - t1) * 1000)
    return {"preset": preset, "pre": median(times_pre), "fwd": median(times_fwd),
            "total": median(a + b for a, b in zip(times_pre, times_fwd, strict=False))}


def section(quick: bool = False, command: str = "python -m bench") -> str:
    repeats = 5 if quick else 50
    digit = load_bundled().test_images[0].numpy()
    canvas = np.asarray(Image.fromarray(digit).resize((280, 280)))
    rows = [measure(p, canvas, repeats) for p in PRESETS]
    lines = [HEADING, "", f"Measured by `{command}` on {time.strftime('%Y-%m-%d')}: median of {repeats} "
             "calls, batch 1, the page's path for one 280×280 canvas image. Target: under 50 ms.", "",
             md_table(["model", "preprocess ms", "forward ms", "total ms", "under 50 ms"],
                      [[r["preset"], f"{r['pre']:.2f}", f"{r['fwd']:.2f}", f"{r['total']:.2f}",
                        "yes" if r["total"] < TARGET_MS else "no"] for r in rows]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    text = section(command="python -m bench.predict")
    print(text)
    if not args.no_write:
        update_benchmarks(text, heading=HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
