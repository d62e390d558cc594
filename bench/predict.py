"""Prediction latency of the Predict page's model call (the target is under 50 ms).

One command::

    python bench/predict.py            # prints the table and updates BENCHMARKS.md

Measures the path the page runs for one drawn digit: MNIST preprocessing of a 280×280
canvas image, then the forward pass, for the default CNN and the tutorials' CNNs, with
torch's threads as the server has them. Latency does not depend on the weights, so fresh
weights are used.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import torch  # noqa: E402

from core import predict as P  # noqa: E402
from core.data import load_bundled  # noqa: E402
from core.models import build_model, preset_spec  # noqa: E402
from recipe import machine_facts, update_benchmarks  # noqa: E402

HEADING = "## Prediction latency"


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
    return {"preset": preset, "pre": statistics.median(times_pre), "fwd": statistics.median(times_fwd),
            "total": statistics.median(a + b for a, b in zip(times_pre, times_fwd))}


def main() -> int:
    digit = load_bundled().test_images[0].numpy()
    canvas = np.asarray(Image.fromarray(digit).resize((280, 280)))
    rows = [measure(p, canvas) for p in ("lab_cnn", "cnn", "simple_cnn", "resblock_net")]
    lines = [HEADING, "", f"Measured by `python bench/predict.py` on {time.strftime('%Y-%m-%d')}: median of 50 "
             "calls, batch 1, the page's path for one 280×280 canvas image. Target: under 50 ms.", "",
             "| model | preprocess ms | forward ms | total ms | under 50 ms |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['pre']:.2f} | {r['fwd']:.2f} | {r['total']:.2f} | "
                     f"{'yes' if r['total'] < 50 else 'no'} |")
    lines += ["", *[f"- {fact}" for fact in machine_facts()], ""]
    section = "\n".join(lines)
    print(section)
    update_benchmarks(section, heading=HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
