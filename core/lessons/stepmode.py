"""'Step one batch': a teaching view of a single optimizer step of the lab's trainer.

It shows the batch the next step takes, the loss on it before and after the step,
per-layer gradient norms and weight-update sizes, and how the predictions changed.

The step runs in the server, so it is held to one request's budget (issue 22): a batch whose
activations would not fit ``PYTORCH_LAB_BUDGET_MB``, or whose work would pass
``PYTORCH_LAB_MAX_BATCH_GMAC``, is refused with the largest batch that fits before anything runs.
"""
from __future__ import annotations

from collections import defaultdict
from typing import NotRequired, TypedDict

import pandas as pd
import torch

from core.errors import LabError
from core.ml.activations import activation_bytes
from core.ml.modules import check_batch
from core.safe.budget import Budget, setting_name
from core.training.events import StepEvent
from core.training.trainer import Trainer


class TeachingStep(TypedDict):
    """What ``teaching_step`` reports about the step it did."""

    record: StepEvent           # the trainer's own record of the step
    loss_before: float          # loss on the step's batch before the step (eval mode)
    loss_after: float           # ... and after it
    layers: pd.DataFrame        # per layer: grad norm, update norm, update / weight
    x: torch.Tensor             # the first ``show`` inputs of the batch (CPU)
    y: torch.Tensor             # ... and their labels
    batch_size: int             # samples in the step
    predictions: NotRequired[pd.DataFrame]  # classification: label, prediction and p(label) before/after


@torch.no_grad()
def _look(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    model = trainer.core
    was_training = model.training
    model.eval()
    out = model(x).float()
    loss = float(trainer.loss_fn(out, trainer.targets(y)))
    model.train(was_training)
    return loss, out


def _layer(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


# A teaching step is five forward-pass equivalents: the look before, forward + backward + update, the look after.
STEP_PASSES = 5


def check_step(trainer: Trainer) -> int:
    """The size of the batch the next step takes, after checking that its work fits one request's
    budget (``budget.batch_macs``) and its activations with their gradients the memory budget
    (``budget.step_memory``); raises before anything is allocated."""
    batch = sum(len(i) for i in trainer.next_batch_indices())
    spec = trainer.config.spec()
    per_sample = activation_bytes(trainer.core, spec.input_shape)
    budget = Budget.current().memory_bytes
    if per_sample * batch > budget:
        raise LabError("budget.step_memory", batch=batch, mb=per_sample * batch / 2**20, budget=budget / 2**20,
                       setting=setting_name("budget_mb"), fit=max(1, budget // max(1, per_sample)))
    check_batch(spec, batch, STEP_PASSES)
    return batch


def teaching_step(trainer: Trainer, show: int = 8) -> TeachingStep:
    """Do one step and report what it did. Losses before/after are on the same batch, in eval mode.

    The batch is ``trainer.next_batch()``: the samples the step takes (before augmentation).
    """
    if trainer.finished:
        raise LabError("stepmode.finished")
    check_step(trainer)
    x, y = trainer.next_batch()
    model = trainer.core
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss_before, out_before = _look(trainer, x, y)
    record = trainer.step()
    loss_after, out_after = _look(trainer, x, y)
    grads: defaultdict[str, float] = defaultdict(float)
    updates: defaultdict[str, float] = defaultdict(float)
    weights: defaultdict[str, float] = defaultdict(float)
    for name, p in model.named_parameters():
        layer = _layer(name)
        if p.grad is not None:
            grads[layer] += float(p.grad.float().norm()) ** 2
        updates[layer] += float((p.detach() - before[name]).float().norm()) ** 2
        weights[layer] += float(before[name].float().norm()) ** 2
    layers = pd.DataFrame([{"layer": k, "grad norm": grads[k] ** 0.5, "update norm": updates[k] ** 0.5,
                            "update / weight": (updates[k] / weights[k]) ** 0.5 if weights[k] else 0.0}
                           for k in updates])
    result = TeachingStep(record=record, loss_before=loss_before, loss_after=loss_after, layers=layers,
                          x=x[:show].cpu(), y=y[:show].cpu(), batch_size=len(x))
    if trainer.task == "classification":
        pb, pa = torch.softmax(out_before[:show], 1).cpu(), torch.softmax(out_after[:show], 1).cpu()
        yy = y[:show].cpu()
        result["predictions"] = pd.DataFrame({
            "label": yy.tolist(), "before": pb.argmax(1).tolist(), "after": pa.argmax(1).tolist(),
            "p(label) before": pb[torch.arange(len(yy)), yy].tolist(),
            "p(label) after": pa[torch.arange(len(yy)), yy].tolist()})
    return result
