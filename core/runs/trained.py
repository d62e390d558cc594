"""Trained models from the run store: which runs have checkpoints, and rebuilding their model.

Checkpoints load with ``torch.load(weights_only=True)`` only (core.ml.checkpoint); the model
is rebuilt from the spec in the checkpoint's config, never unpickled, with the weights the lab
evaluates it with (their moving average when the run kept one).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.errors import Code
from core.ml.checkpoint import BEST, LAST, CheckpointError, load_checkpoint
from core.ml.data import load_dataset
from core.ml.evaluate import checkpoint_model, checkpoint_normalization, evaluation_model, prepare
from core.ml.spec import ModelSpec
from core.runs.store import RunRow, RunStore
from core.settings import Settings, load_settings


def checkpoint_path(store: RunStore, run_id: str, which: str = "best") -> Path | None:
    """The run's best (or last) checkpoint file, falling back to the other one; None if neither."""
    folder = store.run_dir(run_id)
    order = (BEST, LAST) if which == "best" else (LAST, BEST)
    for name in order:
        if (folder / name).is_file():
            return folder / name
    return None


def trained_runs(store: RunStore) -> list[RunRow]:
    """Runs that have a checkpoint on disk, newest first."""
    runs = [r for r in store.runs() if checkpoint_path(store, r["id"]) is not None]
    return sorted(runs, key=lambda r: r.get("created") or 0, reverse=True)


def model_from_checkpoint(ckpt: dict) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model of a checkpoint from its config's spec with the weights it is evaluated with
    (the moving average of the weights when the run kept one: ``core.ml.evaluate.checkpoint_model``),
    in eval mode. Predict, Export and the Profiler use this model."""
    return checkpoint_model(ckpt)


def checkpoint_test_evaluation(ckpt: dict, settings: Settings | None = None) -> tuple[nn.Module, torch.Tensor,
                                                                                      torch.Tensor]:
    """(module, inputs, labels) the lab scores a checkpoint with on its dataset's test split: the averaged
    weights, test-time augmentation when the run used it, the images normalized as the run's training
    normalized them. Raises ``CheckpointError`` or ``LabError`` (a dataset not on disk)."""
    config = ckpt.get("config")
    if not isinstance(config, dict):
        raise CheckpointError("checkpoint.no_training_config")
    images = load_dataset(str(config.get("dataset")), settings or load_settings())
    mean, std = checkpoint_normalization(ckpt) or (images.mean, images.std)  # older checkpoints: the train split's
    x, background = prepare(images.test_images, mean, std)
    model, _spec = evaluation_model(ckpt, background)
    return model, x, images.test_labels


def load_run_evaluation(store: RunStore, run_id: str, which: str = "best") -> tuple[nn.Module, torch.Tensor,
                                                                                   torch.Tensor]:
    """``checkpoint_test_evaluation`` of a stored run's best (or last) checkpoint."""
    path = checkpoint_path(store, run_id, which)
    if path is None:
        raise CheckpointError("checkpoint.none_yet", run=Code(run_id))
    return checkpoint_test_evaluation(load_checkpoint(path, map_location=torch.device("cpu")))


def load_run_model(store: RunStore, run_id: str, which: str = "best") -> tuple[nn.Module, ModelSpec, dict]:
    """(model, spec, checkpoint summary) of a stored run."""
    path = checkpoint_path(store, run_id, which)
    if path is None:
        raise CheckpointError("checkpoint.none_yet", run=Code(run_id))
    ckpt = load_checkpoint(path, map_location=torch.device("cpu"))
    model, spec = model_from_checkpoint(ckpt)
    summary = {"file": path.name, "epoch": ckpt.get("epoch"), "loss": ckpt.get("loss")}
    return model, spec, summary
