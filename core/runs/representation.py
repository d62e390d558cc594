"""Representation over training: at each epoch's end the worker keeps a 2-D PCA map of a fixed subset of
test digits' penultimate features (``representation.npz`` beside the run's checkpoints).

The file holds plain arrays only (read with ``allow_pickle=False``): the subset's indices into the test
split and their labels, and per recorded epoch the map's coordinates, the predictions, and the PCA's
mean and two directions (so a new digit, e.g. a drawn one, can be placed on the last map). Each
epoch's axes are sign-aligned with the previous epoch's, so the frames do not flip.

Cost: one forward pass of at most ``SUBSET`` digits (fewer for a model that needs many multiply-adds
per digit, so the pass stays near ``MAX_MACS``) and a low-rank SVD of a (N, D) matrix per frame; the
file grows by about 8 bytes per digit plus 12 bytes per feature per frame. ``Budget`` bounds the
time: a frame is recorded only while the frames so far cost at most ``SHARE`` of the training time
(short epochs then get a frame every few epochs), and the last epoch always gets one.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.ml.checkpoint import CheckpointError
from core.ml.data import DATASETS, ImageData, load_dataset
from core.ml.evaluate import checkpoint_model, checkpoint_normalization, prepare
from core.ml.explain import align_signs, pca_frame, penultimate_and_logits
from core.ml.modules import mac_count
from core.runs.store import RunStore
from core.settings import Settings, load_settings

REPRESENTATION_FILE = "representation.npz"
SUBSET = 300  # 30 digits a class: a readable map for one forward pass of 300 digits an epoch
MAX_MACS = 4e9  # multiply-adds one epoch's map may cost
SHARE = 0.03  # of the training time, the most the frames may take together (the last epoch's apart)
_DATA: dict[str, ImageData] = {}
_ARRAYS = ("indices", "labels", "epochs", "coords", "preds", "means", "components", "explained")


def subset_indices(labels: torch.Tensor, n: int = SUBSET, seed: int = 0) -> np.ndarray:
    """A fixed subset of the test split: about ``n`` digits, the same share of each class, in a seeded order."""
    y = labels.numpy()
    classes = np.unique(y)
    per_class = max(1, n // max(1, len(classes)))
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(picked))[:n].astype(np.int64)


def _subset_size(ckpt: dict) -> int:
    from core.ml.evaluate import checkpoint_spec

    return _subset_for(checkpoint_spec(ckpt["config"]).to_json())


@functools.lru_cache(maxsize=4)
def _subset_for(spec_json: str) -> int:
    """Digits per map for a model: ``SUBSET``, fewer when one forward pass of them would pass ``MAX_MACS``
    (counted once per worker: the count builds the model on the meta device)."""
    from core.ml.spec import ModelSpec

    macs = max(1, mac_count(ModelSpec.from_json(spec_json)))
    return int(max(50, min(SUBSET, MAX_MACS // macs)))


def load_representation(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The run's recorded maps (arrays named as in ``_ARRAYS``), or None when it has none yet."""
    return read_file(store.run_dir(run_id) / REPRESENTATION_FILE)


def read_file(file: Path) -> dict[str, Any] | None:
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            found = {k: data[k].copy() for k in _ARRAYS}
    except (OSError, KeyError, ValueError):
        return None
    return found if len(found["epochs"]) else None


def record_epoch(store: RunStore, run_id: str, ckpt: dict, epoch: int, settings: Settings | None = None) -> Path | None:
    """Add epoch ``epoch``'s map of the checkpoint ``ckpt`` (the weights the lab evaluates with) to the
    run's file; epochs at or after it recorded before (by a worker that was resumed) are replaced.
    Returns the file, or None for a run whose data is not images the model reads."""
    config = ckpt.get("config")
    if not isinstance(config, dict):
        raise CheckpointError("checkpoint.no_training_config")
    name = str(config.get("dataset"))
    info = DATASETS.get(name)
    if info is None or not info.image or info.task != "classification":
        return None
    if name not in _DATA:  # one worker records one run: its test split is loaded once
        _DATA.clear()
        _DATA[name] = load_dataset(name, settings or load_settings())
    images = _DATA[name]
    model, spec = checkpoint_model(ckpt)
    if tuple(spec.input_shape) != (1, *images.test_images.shape[1:]):
        return None
    file = store.run_dir(run_id) / REPRESENTATION_FILE
    old = read_file(file)
    n = _subset_size(ckpt)
    kept: dict[str, np.ndarray] | None = None  # the earlier epochs' frames of the same digits
    if old is not None and len(old["indices"]) == n:
        earlier = old["epochs"] < epoch
        if earlier.any():
            kept = {k: old[k][earlier] for k in ("epochs", "coords", "preds", "means", "components", "explained")}
    indices = old["indices"] if kept is not None and old is not None else subset_indices(images.test_labels, n)
    mean, std = checkpoint_normalization(ckpt) or (images.mean, images.std)
    x, _ = prepare(images.test_images[torch.from_numpy(indices)], mean, std)
    feats, logits = penultimate_and_logits(model, x)
    frame = pca_frame(feats)
    if kept is not None and kept["means"].shape[1] != frame.mean.shape[0]:
        kept = None
    coords, components = align_signs(frame.coords, frame.components, kept["coords"][-1] if kept else None)
    arrays: dict[str, np.ndarray] = {
        "epochs": np.array([epoch], np.int64), "coords": coords[None], "preds": logits.argmax(1).numpy()[None],
        "means": frame.mean[None], "components": components[None], "explained": frame.explained[None]}
    if kept is not None:
        arrays = {k: np.concatenate([kept[k], v]) for k, v in arrays.items()}
    arrays["indices"] = indices
    arrays["labels"] = images.test_labels[torch.from_numpy(indices)].numpy()
    tmp = file.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle
    tmp.replace(file)
    return file


class Budget:
    """When to record a frame: while the frames' time stays within ``share`` of the training time."""

    def __init__(self, share: float = SHARE) -> None:
        self.share = share
        self.trained = 0.0  # seconds of training so far
        self.spent = 0.0  # seconds the frames took
        self.last = 0.0  # the last frame's seconds: what the next one is expected to take

    def record(self, store: RunStore, run_id: str, ckpt: dict, epoch: int, epoch_seconds: float,
               final: bool) -> Path | None:
        """``record_epoch`` if the budget allows it (always for the first and the ``final`` epoch)."""
        self.trained += max(0.0, float(epoch_seconds))
        if not final and self.last and self.spent + self.last > self.share * self.trained:
            return None
        start = time.perf_counter()
        try:
            return record_epoch(store, run_id, ckpt, epoch)
        finally:
            self.last = time.perf_counter() - start
            self.spent += self.last

