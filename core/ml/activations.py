"""How much memory a model's activations take per sample, and evaluation batches sized by it.

A model of a few hundred kilobytes can need gigabytes for a batch: ``Conv2d(1, 5000, 1)`` puts
3.9 million values per 28x28 digit through its output, so a batch of 1,000 asks for 15.7 GB.
The count is taken on the meta device (a copy of the model whose tensors hold no data), so
nothing is allocated to find out, and the real model is never touched.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from core.errors import LabError
from core.safe.budget import Budget, setting_name


def _meta_copy(model: nn.Module) -> nn.Module:
    """``model`` with every parameter and buffer replaced by a meta tensor of the same shape."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    clone = copy.deepcopy(model, memo)
    for module in clone.modules():  # hooks others put on the real model must not see the meta copy
        for hooks in (module._forward_pre_hooks, module._forward_hooks, module._backward_hooks):
            hooks.clear()
    return clone


def sample_activations(model: nn.Module, sample_shape: Sequence[int]) -> int:
    """Elements of one sample's input plus every leaf layer's output, from a meta-device forward."""
    counts = [math.prod(sample_shape)]

    def hook(module, inputs, output) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                counts.append(t.numel())

    clone = _meta_copy(model)
    for module in clone.modules():
        if next(module.children(), None) is None:
            module.register_forward_hook(hook)
    with torch.no_grad():
        clone(torch.empty(1, *sample_shape, device="meta"))
    return sum(counts)


def _element_size(model: nn.Module) -> int:
    sizes = [p.element_size() for p in model.parameters() if p.is_floating_point()]
    return max([4, *sizes])  # activations are at least float32 (softmax, losses)


# Peak memory per activation element, in elements: an op may write its output in a scratch
# layout and copy it (oneDNN's blocked formats for convolutions), so count each one twice.
SCRATCH = 2


def activation_bytes(model: nn.Module, sample_shape: Sequence[int]) -> int:
    """Bytes of activations one sample puts through ``model``: every output kept at once, twice
    (``SCRATCH``). An upper bound on the peak memory of a forward pass under ``no_grad``."""
    return sample_activations(model, sample_shape) * _element_size(model) * SCRATCH


def eval_batch_size(model: nn.Module, sample_shape: Sequence[int], memory_bytes: int | None = None,
                    largest: int = 1000, refuse: bool = True) -> int:
    """The largest batch (at most ``largest``) whose activations fit in ``memory_bytes`` (default:
    the request budget, ``PYTORCH_LAB_BUDGET_MB``).

    When one sample alone needs more, ``refuse`` raises ``budget.sample_too_large`` before
    anything runs; otherwise (a training worker, which trains the model anyway) the batch is 1.
    """
    budget = Budget.current().memory_bytes if memory_bytes is None else int(memory_bytes)
    per_sample = activation_bytes(model, sample_shape)
    if per_sample > budget and refuse:
        raise LabError("budget.sample_too_large", mb=per_sample / 2**20, budget=budget / 2**20,
                       setting=setting_name("budget_mb"))
    return max(1, min(int(largest), budget // max(per_sample, 1)))
