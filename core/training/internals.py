"""Training internals: what happens inside the model while it trains, recorded every N steps.

``InternalsRecorder`` is driven by the trainer. On a recording step (the first step, then every
``TrainConfig.internals_every`` steps; 0 = off) it measures, per layer:

- weights of each layer with a weight (Conv, Linear, ...): quantiles ``w_p05``, ``w_p50``, ``w_p95``,
  the norm ``w_norm``;
- their gradients (after backward, before clipping): ``g_p05``, ``g_p50``, ``g_p95`` of the absolute
  values and ``grad_norm``;
- the update the optimizer made, relative to the weights: ``update_ratio`` = ‖Δw‖ / ‖w‖ (healthy
  training sits near 1e-3; far below learns slowly, far above jumps around);
- the output of each activation layer (forward hooks, attached for this step only): quantiles
  ``a_p05``, ``a_p50``, ``a_p95`` and, after a ReLU, ``dead``: the share of its units (channels of a
  convolution's output, features of a linear one) that are zero for every sample of the batch;
- the batch: ``input/mean``, ``input/std`` (normalized images sit near 0 and 1) and
  ``input/classes``, the share of the classes present in the batch (a shuffled batch of 128 digits
  holds all ten).

Every step, ``spike`` is the step's gradient norm over the median of the last 50 steps' when it is
above ``SPIKE_RATIO`` (a gradient-norm spike). The values go out as ``StepEvent["internals"]``:
a flat ``{"<layer>/<stat>": value}`` dict (``<layer>`` is the module's name and type, e.g.
``0:Conv2d``), which the worker stores as metrics named ``internals/<layer>/<stat>``.

Quantiles come from at most ``SAMPLE`` evenly strided elements of each tensor, so a recording step
costs a few milliseconds however large the layer; nothing is recorded between recording steps
(no hooks stay attached). The cost is in BENCHMARKS.md ("Training internals").
"""
from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

PREFIX = "internals/"
SAMPLE = 4096          # elements a quantile is computed over (evenly strided)
SPIKE_RATIO = 5.0      # a step's gradient norm this many times the recent median is a spike
SPIKE_WINDOW = 50      # steps the median is taken over
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.ReLU6)
QUANTILES = (0.05, 0.5, 0.95)
_Q_NAMES = ("p05", "p50", "p95")


def layer_key(name: str, module: nn.Module) -> str:
    """How a layer is named in the records: its path in the model and its type, e.g. ``0:Conv2d``."""
    return f"{name or 'model'}:{type(module).__name__}"


def _sample(t: torch.Tensor) -> torch.Tensor:
    flat = t.detach().reshape(-1)
    step = max(1, flat.numel() // SAMPLE)
    return flat[::step].float()


def _quantiles(t: torch.Tensor, prefix: str, out: dict[str, float], key: str) -> None:
    sample = _sample(t)
    if sample.numel() == 0:
        return
    qs = torch.quantile(sample, torch.tensor(QUANTILES)).tolist()
    for name, value in zip(_Q_NAMES, qs, strict=True):
        out[f"{key}/{prefix}_{name}"] = float(value)


def _dead_share(out: torch.Tensor) -> float:
    """Share of units that are zero for every sample: channels (dim 1) of an image-shaped output, else features."""
    with torch.no_grad():
        out = out.detach()
        if out.dim() > 2:  # (N, C, ...): a channel is alive if it fires anywhere on any sample
            peak = out.amax(dim=[d for d in range(out.dim()) if d != 1])  # one pass, in any memory layout
        elif out.dim() == 2:
            peak = out.amax(dim=0)
        else:
            peak = out
        return float((peak <= 0).float().mean())


class InternalsRecorder:
    """Per-layer statistics of one model, every ``every`` optimizer steps (see the module doc)."""

    def __init__(self, model: nn.Module, every: int, classes: int | None = None) -> None:
        self.every = int(every)
        self.classes = classes
        self.weighted: list[tuple[str, nn.Module, torch.Tensor]] = []
        self.activations: list[tuple[str, nn.Module]] = []
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.requires_grad and not isinstance(
                    module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)):
                self.weighted.append((layer_key(name, module), module, weight))
            elif isinstance(module, ACTIVATIONS):
                self.activations.append((layer_key(name, module), module))
        self._norms: deque[float] = deque(maxlen=SPIKE_WINDOW)
        self._before: list[torch.Tensor] = []
        self.values: dict[str, float] = {}

    def due(self, step: int) -> bool:
        """Whether optimizer step ``step`` (1-based) is a recording step."""
        return self.every > 0 and (step == 1 or step % self.every == 0)

    @contextmanager
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Iterator[None]:
        """Around a recording step's forward pass: the batch's statistics and the activation hooks."""
        values = self.values
        if x.is_floating_point():
            sample = _sample(x)
            values["input/mean"] = float(sample.mean())
            values["input/std"] = float(sample.std()) if sample.numel() > 1 else 0.0
        if self.classes and y.dtype in (torch.int64, torch.int32):
            values["input/classes"] = len(torch.unique(y)) / min(self.classes, len(y))
        handles = []
        for key, module in self.activations:
            def hook(mod: nn.Module, args: object, out: object, key: str = key) -> None:
                if not isinstance(out, torch.Tensor):
                    return
                with torch.no_grad():
                    _quantiles(out, "a", values, key)
                    if isinstance(mod, (nn.ReLU, nn.ReLU6)):
                        values[f"{key}/dead"] = _dead_share(out)
            handles.append(module.register_forward_hook(hook))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def after_backward(self) -> None:
        """Gradients (before clipping) and a copy of the weights the optimizer is about to change."""
        values = self.values
        self._before = []
        for key, _, weight in self.weighted:
            self._before.append(weight.detach().float().clone())
            _quantiles(weight, "w", values, key)
            values[f"{key}/w_norm"] = float(torch.linalg.vector_norm(weight.detach().float()))
            if weight.grad is not None:
                grad = weight.grad.detach()
                _quantiles(grad.abs(), "g", values, key)
                values[f"{key}/grad_norm"] = float(torch.linalg.vector_norm(grad.float()))

    @torch.no_grad()
    def after_step(self) -> dict[str, float]:
        """The update-to-weight ratios; returns (and forgets) everything this step recorded."""
        values = self.values
        for (key, _, weight), before in zip(self.weighted, self._before, strict=False):
            norm = float(torch.linalg.vector_norm(before))
            if norm > 0:
                values[f"{key}/update_ratio"] = float(torch.linalg.vector_norm(weight.detach().float() - before)) / norm
        self._before, self.values = [], {}
        return values

    def spike(self, norm: float) -> float | None:
        """This step's gradient norm over the recent median when it is a spike (else None); every step."""
        ratio = None
        if len(self._norms) >= 10 and norm == norm:  # NaN never counts as a spike here: the loss says it
            median = statistics.median(self._norms)
            if median > 0 and norm > SPIKE_RATIO * median:
                ratio = norm / median
        self._norms.append(norm)
        return ratio
