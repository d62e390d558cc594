"""Training data as whole tensors on the device, seeded augmentation and derived seeds."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from core.ml.data import (
    load_dataset,
    load_tabular,
    normalize,
    pixel_stats,
    regression_linear,
    regression_synthetic,
    validation_split,
)
from core.training.config import TrainConfig


# --------------------------------------------------------------------------- data
@dataclass
class TrainData:
    """A run's data as whole tensors: the split it fits, the validation split carved from the
    training images (model selection; None without one) and the test split (only reported).

    ``mean`` / ``std`` are the pixel statistics of the fitted images that normalized every split
    (None for regression data); ``background`` is what a blank pixel becomes after that."""

    name: str
    task: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    outputs: int
    classes: list[str] | None = None
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    mean: float | None = None
    std: float | None = None

    @property
    def has_validation(self) -> bool:
        return self.val_x is not None and len(self.val_x) > 0

    @property
    def background(self) -> float:
        """The normalized value of a blank (0) pixel: what a shifted image's uncovered border is filled with."""
        return 0.0 if self.mean is None or not self.std else -self.mean / self.std

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of ``train``, ``val`` or ``test``."""
        if name == "train":
            return self.train_x, self.train_y
        if name == "test":
            return self.test_x, self.test_y
        if name == "val" and self.val_x is not None and self.val_y is not None:
            return self.val_x, self.val_y
        raise ValueError(f"no {name!r} split: the splits are train, val (when held out) and test")

    def to(self, device: torch.device) -> TrainData:
        return dataclasses.replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                                   test_x=self.test_x.to(device), test_y=self.test_y.to(device),
                                   val_x=None if self.val_x is None else self.val_x.to(device),
                                   val_y=None if self.val_y is None else self.val_y.to(device))


_data_cache: dict[tuple, TrainData] = {}
_data_lock = threading.Lock()


def _image_data(config: TrainConfig, settings) -> TrainData:
    """An image dataset split into fit / validation (``config.val_size``, seeded) / test, normalized
    with the fitted images' statistics: nothing about the held-out images reaches training."""
    images = load_dataset(config.dataset, settings)
    fit, val = validation_split(images.train_labels.numpy(), config.validation_size)
    fit_t, val_t = torch.from_numpy(fit), torch.from_numpy(val)
    fit_images = images.train_images[fit_t]
    # normalize off: (x / 255 - 0) / (1 / 255) = the raw pixel values 0-255
    mean, std = pixel_stats(fit_images) if config.normalize else (0.0, 1.0 / 255.0)
    return TrainData(config.dataset, "classification", normalize(fit_images, mean, std), images.train_labels[fit_t],
                     normalize(images.test_images, mean, std), images.test_labels, len(images.classes),
                     list(images.classes), val_x=normalize(images.train_images[val_t], mean, std),
                     val_y=images.train_labels[val_t], mean=mean, std=std)


def load_data(config: TrainConfig, settings=None) -> TrainData:
    """The config's dataset as whole tensors (normalized images or regression pairs), limited
    (``limit_train`` the fitted split, ``limit_test`` the validation and test splits)."""
    info = config.dataset_info
    if info.user and not info.image:  # a learner's CSV: features standardized at upload
        train_x, train_y, test_x, test_y = load_tabular(config.dataset)
        full = TrainData(config.dataset, info.task, train_x, train_y, test_x, test_y, info.outputs,
                         list(info.classes) or None)
    elif info.task == "classification":
        if settings is None:
            from core.settings import load_settings

            settings = load_settings()
        key = (config.dataset, str(getattr(settings, "data_root", "")), config.validation_size, info.stamp,
               config.normalize)
        with _data_lock:
            cached = _data_cache.get(key)
            if cached is None:
                cached = _data_cache[key] = _image_data(config, settings)
        full = cached
    elif config.dataset == "linear":
        x, y = regression_linear()
        full = TrainData("linear", "regression", x, y, x, y, 1)  # R1 has no test split: it evaluates on its data
    else:
        x, y = regression_synthetic(n=info.train_size + info.test_size, seed=0)
        cut = info.train_size
        full = TrainData("synthetic", "regression", x[:cut], y[:cut], x[cut:], y[cut:], 1)
    ntr = config.limit_train or len(full.train_x)
    nte = config.limit_test or len(full.test_x)
    nva = config.limit_test or None
    return dataclasses.replace(full, train_x=full.train_x[:ntr], train_y=full.train_y[:ntr],
                               test_x=full.test_x[:nte], test_y=full.test_y[:nte],
                               val_x=None if full.val_x is None else full.val_x[:nva],
                               val_y=None if full.val_y is None else full.val_y[:nva])


def augment_batch(x: torch.Tensor, generator: torch.Generator, degrees: float = 10.0, scale: float = 0.1,
                  shift: float = 0.1) -> torch.Tensor:
    """A random affine per image (rotation, scale, shift) in one batched grid_sample.

    ``shift`` is a fraction of the image size; borders repeat the edge pixels (background
    for MNIST). The random numbers come from ``generator`` (CPU), so runs are reproducible.
    """
    n = x.shape[0]
    r = torch.rand(n, 4, generator=generator)
    angle = (r[:, 0] * 2 - 1) * math.radians(degrees)
    s = 1 + (r[:, 1] * 2 - 1) * scale
    tx, ty = (r[:, 2] * 2 - 1) * shift * 2, (r[:, 3] * 2 - 1) * shift * 2  # grid coordinates span 2
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def derive_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed derived from the run seed and labels (stable across processes)."""
    text = ":".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & (2**63 - 1)
