"""An exponential moving average of a model's weights, for evaluation (``TrainConfig.ema``).

After every optimizer step each floating-point parameter and buffer (BatchNorm's running
statistics too) of the copy moves towards the trained model's: ``avg += (1 - d) * (w - avg)``
with ``d = min(decay, (1 + n) / (10 + n))`` at the n-th update, so the early, fast-changing
weights are not averaged in with a long memory. One fused ``_foreach_lerp_`` call per step
(the same kernel ``torch.optim.swa_utils`` uses). The averaged copy is what the trainer
evaluates and what a checkpoint is evaluated with (its ``ema_state_dict``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    """The averaged copy of ``model`` (``.module``, eval mode, no gradients) and its update count."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._src = _float_tensors(model)
        self._dst = _float_tensors(self.module)

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average towards the model's current weights."""
        self.updates += 1
        torch._foreach_lerp_(self._dst, self._src, 1.0 - self.current_decay())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = int(updates)


def _float_tensors(model: nn.Module) -> list[torch.Tensor]:
    return [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
