"""Trained models from the run store: which runs have checkpoints, and rebuilding their model.

Checkpoints load with ``torch.load(weights_only=True)`` only (core.ml.checkpoint); the model
is rebuilt from the spec in the checkpoint's config, never unpickled.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.errors import Code, first_line
from core.ml.checkpoint import BEST, LAST, CheckpointError, load_checkpoint
from core.ml.modules import build_model
from core.ml.spec import ModelSpec, SpecError
from core.runs.store import RunRow, RunStore
from core.training.config import TrainConfig


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
    """Rebuild the model of a checkpoint from its config's spec and load its weights (eval mode)."""
    config = ckpt.get("config")
    if not isinstance(config, dict):
        raise CheckpointError("checkpoint.no_training_config")
    try:
        spec = TrainConfig.model_of(config)
        model = build_model(spec, seed=None)
        model.load_state_dict(ckpt["model_state_dict"])
    except (ValueError, SpecError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError("checkpoint.does_not_fit_its_model", reason=Code(first_line(exc))) from None
    return model.eval(), spec


def load_run_model(store: RunStore, run_id: str, which: str = "best") -> tuple[nn.Module, ModelSpec, dict]:
    """(model, spec, checkpoint summary) of a stored run."""
    path = checkpoint_path(store, run_id, which)
    if path is None:
        raise CheckpointError("checkpoint.none_yet", run=Code(run_id))
    ckpt = load_checkpoint(path, map_location=torch.device("cpu"))
    model, spec = model_from_checkpoint(ckpt)
    summary = {"file": path.name, "epoch": ckpt.get("epoch"), "loss": ckpt.get("loss")}
    return model, spec, summary
