"""Evaluating a trained checkpoint the way the lab scores its test split: the same weights, the
same preprocessing, the same test-time augmentation.

- ``ShiftTTA``: test-time augmentation as a module: the mean of the logits of each image and of its
  four 1-pixel shifts (the uncovered border filled with the background; never flips, which would
  change a digit). The trainer wraps its evaluation model in it when ``tta`` is on.
- ``checkpoint_model(ckpt)``: the model a checkpoint evaluates with, rebuilt from its config's spec
  with the exponential moving average of the weights (``ema_state_dict``) when the run kept one,
  else ``model_state_dict``; ``evaluation_model(ckpt)`` adds TTA when the run's config asks for it.
- ``checkpoint_normalization(ckpt)``: the pixel statistics the run normalized every split with (the
  fitted images' mean and std, stored in the checkpoint); ``prepare(images, ...)`` applies them.
- ``read_digits(path)``: a digits file in the bundle's format (``images`` uint8 (N, 28, 28),
  ``labels`` (N,)), checked; a bad file raises ``EvaluationError`` naming what is wrong.
- ``report(result, classes)`` / ``report_text``: what ``python -m core.evaluate`` prints (accuracy,
  per-class accuracy, the confusion matrix), as data or as text.

The confusion matrix itself is ``core.runs.view.evaluate_model`` (the pages' evaluation, sized by
the server's memory budget), which the command calls with ``evaluation_model``'s module.
"""
from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import Code, LabError, first_line
from core.ml.data import find_dataset, normalize
from core.ml.modules import build_model
from core.ml.spec import ModelSpec, SpecError
from core.ml.zoo import DEFAULT_PRESET, preset_spec

SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx): right, left, down, up by one pixel
IMAGE_SHAPE = (28, 28)


class EvaluationError(LabError):
    """A digits file or checkpoint that cannot be evaluated (codes ``evaluate.*``)."""


def shift_images(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """Images (N, C, H, W) moved by (dy, dx) pixels (|dy|, |dx| <= 1), the uncovered border set to ``fill``."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), value=fill)
    return padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]


class ShiftTTA(nn.Module):
    """Test-time augmentation: the mean of the logits of the images and of their four 1-pixel shifts.

    ``background`` is a blank pixel's normalized value (the fill of the uncovered border). The
    wrapped model is used as it is (eval mode, weights, memory layout are the caller's).
    """

    def __init__(self, model: nn.Module, background: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.background = float(background)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = torch.contiguous_format
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            layout = torch.channels_last
        logits = self.model(x).float()
        for dy, dx in SHIFTS:
            shifted = shift_images(x, dy, dx, self.background).contiguous(memory_format=layout)
            logits = logits + self.model(shifted).float()
        return logits / (1 + len(SHIFTS))


# --------------------------------------------------------------------------- checkpoints
def eval_state_dict(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a checkpoint is evaluated with: its weights' moving average when it has one."""
    ema = ckpt.get("ema_state_dict")
    if isinstance(ema, dict) and ema:
        return ema
    return ckpt["model_state_dict"]


def checkpoint_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The model spec of a stored config (its ``model_spec``, else its preset's)."""
    spec = config.get("model_spec")
    return ModelSpec.parse(spec) if spec is not None else preset_spec(str(config.get("preset", DEFAULT_PRESET)))


def checkpoint_model(ckpt: Mapping[str, Any]) -> tuple[nn.Module, ModelSpec]:
    """The checkpoint's model rebuilt from its config's spec, with the weights it is evaluated with
    (``eval_state_dict``), in eval mode. Raises ``CheckpointError`` (``checkpoint.*``)."""
    from core.ml.checkpoint import CheckpointError

    config = ckpt.get("config")
    if not isinstance(config, dict):
        raise CheckpointError("checkpoint.no_training_config")
    try:
        spec = checkpoint_spec(config)
        model = build_model(spec, seed=None)
        model.load_state_dict(eval_state_dict(ckpt))
    except (ValueError, SpecError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError("checkpoint.does_not_fit_its_model", reason=Code(first_line(exc))) from None
    return model.eval(), spec


def checkpoint_normalization(ckpt: Mapping[str, Any]) -> tuple[float, float] | None:
    """(mean, std) the run normalized its images with, if the checkpoint says (older ones do not)."""
    norm = ckpt.get("normalization")
    if isinstance(norm, dict):
        mean, std = norm.get("mean"), norm.get("std")
        if isinstance(mean, (int, float)) and isinstance(std, (int, float)) and std > 0:
            return float(mean), float(std)
    return None


def uses_tta(config: Mapping[str, Any], spec: ModelSpec) -> bool:
    return bool(config.get("tta")) and len(spec.input_shape) == 3


def evaluation_model(ckpt: Mapping[str, Any], background: float | None = None) -> tuple[nn.Module, ModelSpec]:
    """The module the lab scores a checkpoint with: ``checkpoint_model`` inside ``ShiftTTA`` when the
    run's config has ``tta`` (background: a blank pixel after the run's normalization)."""
    model, spec = checkpoint_model(ckpt)
    config = ckpt.get("config") or {}
    if not uses_tta(config, spec):
        return model, spec
    if background is None:
        norm = checkpoint_normalization(ckpt)
        background = -norm[0] / norm[1] if norm else 0.0
    return ShiftTTA(model, background).eval(), spec


def prepare(images: torch.Tensor, mean: float, std: float) -> tuple[torch.Tensor, float]:
    """uint8 images (N, H, W) normalized as the run's training did; and a blank pixel's value."""
    return normalize(images, mean, std), -mean / std


# --------------------------------------------------------------------------- digits files
def read_digits(path: str | Path, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` uint8 (N, 28, 28) and ``labels`` int64 (N,) of a digits file in the bundle's format
    (``np.savez``), checked: no pickled objects, the shapes and dtypes, labels in ``0..classes-1``.
    Raises ``EvaluationError`` naming what is wrong."""
    where = Code(str(path))
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EvaluationError("evaluate.no_file", path=where) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise EvaluationError("evaluate.not_npz", path=where, reason=Code(first_line(exc))) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise EvaluationError("evaluate.not_npz", path=where, reason=Code(f"a single array {archive.shape}"))
    with archive:
        missing = [k for k in ("images", "labels") if k not in archive.files]
        if missing:
            found = ", ".join(archive.files[:5]) + (", ..." if len(archive.files) > 5 else "")
            raise EvaluationError("evaluate.missing_arrays", path=where, missing=Code(", ".join(missing)),
                                  found=Code(found or "-"))
        try:
            images, labels = archive["images"], archive["labels"]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:  # an object array, damaged bytes
            raise EvaluationError("evaluate.not_npz", path=where, reason=Code(first_line(exc))) from None
    if images.dtype != np.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise EvaluationError("evaluate.images", path=where, dtype=Code(str(images.dtype)),
                              shape=Code(str(tuple(images.shape))))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise EvaluationError("evaluate.labels", path=where, dtype=Code(str(labels.dtype)),
                              shape=Code(str(tuple(labels.shape))))
    if len(labels) != len(images):
        raise EvaluationError("evaluate.lengths", path=where, images=len(images), labels=len(labels))
    if len(images) == 0:
        raise EvaluationError("evaluate.empty", path=where)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise EvaluationError("evaluate.label_range", path=where, low=low, high=high, top=classes - 1)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64))


def digits_model_check(ckpt: Mapping[str, Any], spec: ModelSpec) -> int:
    """The number of classes of a checkpoint trained on 28x28 digit images; ``EvaluationError`` otherwise."""
    config = ckpt.get("config") or {}
    info = find_dataset(str(config.get("dataset")))
    if info is None or info.task != "classification" or tuple(spec.input_shape) != (1, *IMAGE_SHAPE):
        raise EvaluationError("evaluate.not_images_model", dataset=Code(repr(config.get("dataset"))),
                              shape=Code(str(list(spec.input_shape))))
    return info.outputs


# --------------------------------------------------------------------------- report
def report(result: Mapping[str, Any], classes: list[str]) -> dict[str, Any]:
    """``evaluate_model``'s result as plain data: accuracy, per-class accuracy and counts, the confusion
    matrix (rows: true class, columns: predicted)."""
    confusion = np.asarray(result["confusion"])
    counts = confusion.sum(axis=1)
    return {
        "n": int(confusion.sum()),
        "correct": int(np.trace(confusion)),
        "accuracy": float(result["accuracy"]),
        "classes": list(classes),
        "per_class": {c: {"accuracy": float(a), "n": int(k)}
                      for c, a, k in zip(classes, np.asarray(result["per_class"]), counts, strict=True)},
        "confusion": confusion.astype(int).tolist(),
    }


def report_text(data: Mapping[str, Any]) -> str:
    """The report as the command prints it: accuracy, a per-class table, the confusion matrix."""
    classes = data["classes"]
    width = max(5, *(len(c) for c in classes))
    lines = [f"accuracy {data['accuracy'] * 100:.2f}% ({data['correct']:,} of {data['n']:,})", "",
             "per class:", f"  {'class':>{width}}  {'n':>6}  accuracy"]
    for c in classes:
        row = data["per_class"][c]
        lines.append(f"  {c:>{width}}  {row['n']:>6,}  {row['accuracy'] * 100:7.2f}%")
    cell = max(5, *(len(str(v)) for r in data["confusion"] for v in r))
    lines += ["", "confusion matrix (rows: true class, columns: predicted):",
              f"  {'':>{width}}  " + " ".join(f"{c[:cell]:>{cell}}" for c in classes)]
    for c, row in zip(classes, data["confusion"], strict=True):
        lines.append(f"  {c:>{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)
