"""Trained models from the run store: which runs have checkpoints, and rebuilding their model.

Checkpoints load with ``torch.load(weights_only=True)`` only (core.ml.checkpoint); the model
is rebuilt from the spec in the checkpoint's config, never unpickled, with the weights the lab
evaluates it with (their moving average when the run kept one).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import Code, Term, first_line
from core.ml.checkpoint import BEST, LAST, CheckpointError, load_checkpoint
from core.ml.data import find_dataset, load_dataset, load_tabular
from core.ml.evaluate import checkpoint_model, checkpoint_normalization, evaluation_model, prepare
from core.ml.modules import build_model
from core.ml.spec import ModelSpec, SpecError
from core.runs.store import RunRow, RunStore
from core.runs.view import total_steps
from core.settings import Settings, load_settings
from core.training.config import TrainConfig


def checkpoint_path(store: RunStore, run_id: str, which: str = "best") -> Path | None:
    """The run's best (or last) checkpoint file, falling back to the other one; None if neither."""
    folder = store.run_dir(run_id)
    order = (BEST, LAST) if which == "best" else (LAST, BEST)
    for name in order:
        if (folder / name).is_file():
            return folder / name
    return None


def trained_runs(store: RunStore, task: str | None = None) -> list[RunRow]:
    """Runs that have a checkpoint on disk, newest first; with ``task``, only runs of that task
    (``classification``: what Predict can use)."""
    runs = [r for r in store.runs() if checkpoint_path(store, r["id"]) is not None]
    if task is not None:
        runs = [r for r in runs if run_task(r) == task]
    return sorted(runs, key=lambda r: r.get("created") or 0, reverse=True)


def run_task(run: RunRow) -> str | None:
    """classification or regression: the task of a stored run's config (None for an unknown dataset)."""
    config = run.get("config") or {}
    task = config.get("task", "auto")
    info = find_dataset(str(config.get("dataset")))
    if task not in (None, "auto"):
        return str(task)
    return info.task if info is not None else None


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
    info = find_dataset(str(config.get("dataset")))
    if info is not None and info.user and not info.image:  # a learner's CSV: features standardized at upload
        _train_x, _train_y, test_x, test_y = load_tabular(info.key)
        model, _spec = evaluation_model(ckpt, 0.0)
        return model, test_x, test_y
    images = load_dataset(str(config.get("dataset")), settings or load_settings())
    mean, std = checkpoint_normalization(ckpt) or (images.mean, images.std)  # older checkpoints: the train split's
    x, background = prepare(images.test_images, mean, std)
    model, _spec = evaluation_model(ckpt, background)
    return model, x, images.test_labels


def checkpoint_classes(ckpt: dict) -> int:
    """The classes of a checkpoint's dataset (10 for the digits, a learner's dataset its own)."""
    config = ckpt.get("config") or {}
    info = find_dataset(str(config.get("dataset")))
    return info.outputs if info is not None and info.task == "classification" else 10


def load_run_evaluation(store: RunStore, run_id: str, which: str = "best") -> tuple[nn.Module, torch.Tensor,
                                                                                   torch.Tensor]:
    """``checkpoint_test_evaluation`` of a stored run's best (or last) checkpoint."""
    path = checkpoint_path(store, run_id, which)
    if path is None:
        raise CheckpointError("checkpoint.none_yet", run=Code(run_id))
    return checkpoint_test_evaluation(load_checkpoint(path, map_location=torch.device("cpu")))


def model_from_state(ckpt: dict, spec: ModelSpec) -> nn.Module:
    """The tutorials' own checkpoint (epoch, model_state_dict, optimizer_state_dict, loss; no lab config):
    build ``spec`` and load the weights into it, when the parameter names and shapes fit (eval mode)."""
    state = ckpt.get("model_state_dict")
    if not isinstance(state, dict):
        raise CheckpointError("checkpoint.bad_model_state", where=Term("uploaded_file"))
    try:
        model = build_model(spec, seed=None)
    except (ValueError, SpecError) as exc:
        raise CheckpointError("checkpoint.does_not_fit_its_model", reason=Code(first_line(exc))) from None
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    if missing or extra:
        raise CheckpointError("trained.keys_differ", model=Code(spec.name), missing=Code(", ".join(missing[:6]) or "-"),
                              extra=Code(", ".join(extra[:6]) or "-"))
    shapes = [f"{k}: {list(theirs[k])} vs {list(mine[k])}" for k in sorted(mine) if mine[k] != theirs[k]]
    if shapes:
        raise CheckpointError("trained.shapes_differ", model=Code(spec.name), shapes=Code("; ".join(shapes[:4])))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError("checkpoint.does_not_fit_its_model", reason=Code(first_line(exc))) from None
    return model.eval()


# Keys of an optimizer's param_groups that tell which optimizer made a state_dict (first match wins).
_OPTIMIZER_SIGNS = (("rmsprop", {"alpha", "centered"}), ("adadelta", {"rho"}), ("sgd", {"dampening"}),
                    ("adam", {"betas"}))


def optimizer_kind(optimizer_state: Any) -> str | None:
    """sgd, adam (Adam or AdamW), rmsprop or adadelta: the optimizer a state_dict came from (None if unknown)."""
    groups = optimizer_state.get("param_groups") if isinstance(optimizer_state, dict) else None
    if not groups or not isinstance(groups[0], dict):
        return None
    keys = set(groups[0])
    return next((name for name, signs in _OPTIMIZER_SIGNS if signs <= keys), None)


def as_lab_checkpoint(ckpt: dict, config: TrainConfig) -> dict:
    """The tutorials' checkpoint (epoch = epochs done, model_state_dict, optimizer_state_dict, loss) as one
    the lab's worker resumes under ``config``: the weights must fit its model, the optimizer state its
    optimizer, and the config must ask for more epochs than were done."""
    model = model_from_state(ckpt, config.spec())
    state = ckpt.get("optimizer_state_dict")
    kind = optimizer_kind(state)
    family = "adam" if config.optimizer in ("adam", "adamw") else config.optimizer
    if kind is not None and kind != family:
        raise CheckpointError("trained.optimizer_differs", saved=Code(kind), chosen=Code(config.optimizer))
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if groups and sum(len(g.get("params", [])) for g in groups) != len(list(model.parameters())):
        raise CheckpointError("trained.optimizer_params", model=Code(config.spec().name))
    epoch = int(ckpt.get("epoch") or 0)
    if epoch >= config.epochs:
        raise CheckpointError("trained.epochs_done", epoch=epoch, epochs=config.epochs)
    per_epoch = (total_steps(config.to_dict()) or 0) // config.epochs  # as the trainer counts (no validation)
    return {**ckpt, "config": config.to_dict(), "step": epoch * per_epoch,
            "progress": {"batch": 0, "world_size": config.processes}}


def load_run_model(store: RunStore, run_id: str, which: str = "best") -> tuple[nn.Module, ModelSpec, dict]:
    """(model, spec, checkpoint summary) of a stored run."""
    path = checkpoint_path(store, run_id, which)
    if path is None:
        raise CheckpointError("checkpoint.none_yet", run=Code(run_id))
    ckpt = load_checkpoint(path, map_location=torch.device("cpu"))
    model, spec = model_from_checkpoint(ckpt)
    summary = {"file": path.name, "epoch": ckpt.get("epoch"), "loss": ckpt.get("loss")}
    return model, spec, summary


# --------------------------------------------------------------------------- stored evaluation
EVALUATION_FILE = "evaluation.npz"
_EVALUATION_ARRAYS = ("confusion", "per_class", "wrong", "pred", "confidence")


def save_evaluation(store: RunStore, run_id: str) -> Path | None:
    """Evaluate a finished classification run's best checkpoint on its test split, as the Train page
    shows it (the weights' average, TTA, the run's normalization), and keep the result next to it.

    The worker calls this once a run ends: it trains the model anyway, so it needs no request
    budget, and the page then reads a few kilobytes instead of evaluating in the server (where a
    busy classroom would hit ``PYTORCH_LAB_BUDGET_S``). Returns the file, or None without a checkpoint.
    """
    import numpy as np

    from core.runs.view import evaluate_model

    path = checkpoint_path(store, run_id, "best")
    if path is None:
        return None
    ckpt = load_checkpoint(path, map_location=torch.device("cpu"))
    model, x, y = checkpoint_test_evaluation(ckpt)
    result = evaluate_model(model, x, y, classes=checkpoint_classes(ckpt), seconds=float("inf"))
    out = store.run_dir(run_id) / EVALUATION_FILE
    tmp = out.with_suffix(".tmp.npz")
    arrays: dict[str, Any] = {k: np.asarray(result[k]) for k in _EVALUATION_ARRAYS}
    np.savez(tmp, stamp=np.float64(path.stat().st_mtime), checkpoint=np.str_(path.name),
             accuracy=np.float64(result["accuracy"]), **arrays)
    tmp.replace(out)
    return out


def stored_evaluation(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The evaluation ``save_evaluation`` kept, if it is of the checkpoint on disk now (else None).
    Read with ``allow_pickle=False``: plain arrays only."""
    import numpy as np

    path = checkpoint_path(store, run_id, "best")
    file = store.run_dir(run_id) / EVALUATION_FILE
    if path is None or not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            if str(data["checkpoint"]) != path.name or float(data["stamp"]) != path.stat().st_mtime:
                return None
            return {"accuracy": float(data["accuracy"]), **{k: data[k].copy() for k in _EVALUATION_ARRAYS}}
    except (OSError, KeyError, ValueError):
        return None
