"""Rule-based advice on a profile (``core.ml.profiling.profile_model``'s result), each with its measured evidence.

``advise(result, model, input_shape)`` reads the phases and the op table and returns ``Advice``
records: a ``code`` and the numbers (``params``) its texts (``profiler.advice.<code>.evidence`` and
``.fix``) show. The rules, for CPU (the removed TensorBoard plugin's recommendations, measured here):

- ``conv``: convolution ops hold at least 30% of the ops' self time. What to do about it is measured,
  not assumed: a few training steps of the model are timed as it is and in channels_last memory
  layout (``conv_layout``) and, where the CPU runs bf16 natively, with bf16 autocast (``conv_bf16``;
  ``conv_no_bf16`` where it would be emulated); each says whether it was faster here.
- ``data``: the data phase is at least 30% of a training step: preload the data as tensors (or
  more DataLoader workers, pinned memory).
- ``optimizer``: the optimizer step is at least 25% of a training step: a fused or foreach
  optimizer, fewer parameter tensors.
- ``overhead``: the average op call is under 20 µs with many calls per step: fixed per-op cost
  dominates; a larger batch or torch.compile amortizes it.
- ``memory``: (with memory profiling) the op that allocates the most, when it is 25% or more of it all.
- ``backward``: backward over 3× the forward: usually a layer whose gradient is costly (a large
  convolution's weight gradient); look at the op table's ``*_backward`` rows.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from core.i18n import t

CONV_SHARE = 30.0
DATA_SHARE = 30.0
OPTIMIZER_SHARE = 25.0
OVERHEAD_US = 20.0
OVERHEAD_CALLS = 200
BACKWARD_RATIO = 3.0
MEASURE_STEPS = 5
MEMORY_SHARE = 25.0


@dataclass
class Advice:
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def evidence(self, lang: str = "en") -> str:
        return t(f"profiler.advice.{self.code}.evidence", lang, **self.params)

    def fix(self, lang: str = "en") -> str:
        how = self.params.get("how")
        return t(f"profiler.advice.{self.code}.fix" + (f".{how}" if how else ""), lang, **self.params)


def _share(breakdown: pd.DataFrame, phase: str) -> float:
    row = breakdown[breakdown["phase"] == phase]
    return float(row["share_pct"].iloc[0]) if len(row) else 0.0


class _Variant:
    """A training step (forward, loss, backward, SGD step) of a private copy of a model on one random batch."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...], batch: int, channels_last: bool, bf16: bool):
        self.model = copy.deepcopy(model).train()
        self.x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.bf16 = bf16
        self.times: list[float] = []

    def step(self, keep: bool = True) -> None:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext():
            out = self.model(self.x)
        out.float().pow(2).mean().backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if keep:
            self.times.append((time.perf_counter() - t0) * 1000)

    def median(self) -> float:
        ordered = sorted(self.times)
        return ordered[len(ordered) // 2]


def measure_layouts(model: nn.Module, input_shape: Sequence[int], batch: int, fast_bf16: bool,
                    steps: int = MEASURE_STEPS) -> dict[str, float]:
    """Median ms per training step: ``as_is`` (contiguous fp32), ``channels_last`` and, where bf16 is native,
    ``bf16`` (autocast, channels_last); the variants' steps interleaved, after one warm-up step each."""
    shape = tuple(int(s) for s in input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        variants = {"as_is": _Variant(model, shape, batch, False, False),
                    "channels_last": _Variant(model, shape, batch, True, False)}
        if fast_bf16:
            variants["bf16"] = _Variant(model, shape, batch, True, True)
        for v in variants.values():
            v.step(keep=False)  # oneDNN picks its kernels on the first step
        for _ in range(steps):
            for v in variants.values():
                v.step()
    return {name: v.median() for name, v in variants.items()}


def advise(result: dict, model: nn.Module | None = None, input_shape: Sequence[int] | None = None,
           fast_bf16: bool = False, measure: bool = True) -> list[Advice]:
    """Advice on a CPU profile (see the module doc); ``model`` and ``input_shape`` let the convolution
    rule measure the alternatives (``measure=False`` skips that)."""
    found: list[Advice] = []
    table: pd.DataFrame = result["table"]
    breakdown: pd.DataFrame = result["breakdown"]
    ops = table[table["kind"] == "op"]
    op_ms = float(ops["self_cpu_ms"].sum())
    steps = max(1, int(result.get("steps", 1)))
    training = result.get("mode") != "inference"
    if op_ms <= 0:
        return found
    conv = ops[ops["name"].str.contains("conv", case=False)]
    conv_share = float(conv["self_cpu_ms"].sum()) / op_ms * 100
    if conv_share >= CONV_SHARE:
        backward = float(conv[conv["name"].str.contains("backward")]["self_cpu_ms"].sum()) / op_ms * 100
        found.append(Advice("conv", {"share": conv_share, "backward": backward}))
        if measure and model is not None and input_shape is not None and len(input_shape) == 3:
            batch = int((result.get("config") or {}).get("batch_size", 32))
            ms = measure_layouts(model, input_shape, batch, fast_bf16)
            gain = ms["as_is"] / ms["channels_last"] - 1
            found.append(Advice("conv_layout", {"as_is": ms["as_is"], "cl": ms["channels_last"], "gain": gain,
                                                "how": "faster" if gain > 0.05 else "not_faster"}))
            if "bf16" in ms:
                gain = ms["as_is"] / ms["bf16"] - 1
                found.append(Advice("conv_bf16", {"as_is": ms["as_is"], "bf16": ms["bf16"], "gain": gain,
                                                  "how": "faster" if gain > 0.05 else "not_faster"}))
            else:
                found.append(Advice("conv_no_bf16"))
    if training:
        data = _share(breakdown, "data")
        if data >= DATA_SHARE:
            found.append(Advice("data", {"share": data, "ms": float(
                breakdown.loc[breakdown["phase"] == "data", "ms_per_step"].iloc[0])}))
        optimizer = _share(breakdown, "optimizer")
        if optimizer >= OPTIMIZER_SHARE:
            found.append(Advice("optimizer", {"share": optimizer}))
        forward = float(breakdown.loc[breakdown["phase"] == "forward", "ms"].sum())
        backward = float(breakdown.loc[breakdown["phase"] == "backward", "ms"].sum())
        if forward > 0 and backward / forward > BACKWARD_RATIO:
            found.append(Advice("backward", {"ratio": backward / forward}))
    calls = int(ops["calls"].sum())
    per_call_us = op_ms * 1000 / max(1, calls)
    if per_call_us < OVERHEAD_US and calls / steps >= OVERHEAD_CALLS:
        found.append(Advice("overhead", {"us": per_call_us, "calls": calls // steps}))
    memory = result.get("memory")
    if memory is not None and len(memory) and float(memory["cpu_mem_mb"].abs().sum()) > 0:
        top = memory.sort_values("cpu_mem_mb", ascending=False, kind="stable").iloc[0]
        total = float(memory["cpu_mem_mb"].clip(lower=0).sum())
        if total > 0 and float(top["cpu_mem_mb"]) / total * 100 >= MEMORY_SHARE:
            found.append(Advice("memory", {"op": str(top["name"]), "mb": float(top["cpu_mem_mb"]),
                                           "share": float(top["cpu_mem_mb"]) / total * 100}))
    return found
