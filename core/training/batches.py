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

from core.ml.data import DATASETS, load_dataset, regression_linear, regression_synthetic
from core.training.config import TrainConfig


# --------------------------------------------------------------------------- data
@dataclass
class TrainData:
    name: str
    task: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    outputs: int
    classes: list[str] | None = None

    def to(self, device: torch.device) -> TrainData:
        return dataclasses.replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                                   test_x=self.test_x.to(device), test_y=self.test_y.to(device))


_data_cache: dict[tuple, TrainData] = {}
_data_lock = threading.Lock()


def load_data(config: TrainConfig, settings=None) -> TrainData:
    """The config's dataset as whole tensors (normalized images or regression pairs), limited."""
    info = DATASETS[config.dataset]
    if info.task == "classification":
        if settings is None:
            from core.settings import load_settings

            settings = load_settings()
        key = (config.dataset, str(getattr(settings, "data_root", "")))
        with _data_lock:
            full = _data_cache.get(key)
            if full is None:
                images = load_dataset(config.dataset, settings)
                full = TrainData(config.dataset, "classification", images.normalized("train"), images.labels("train"),
                                 images.normalized("test"), images.labels("test"), len(images.classes),
                                 list(images.classes))
                _data_cache[key] = full
    elif config.dataset == "linear":
        x, y = regression_linear()
        full = TrainData("linear", "regression", x, y, x, y, 1)  # R1 has no test split: it evaluates on its data
    else:
        x, y = regression_synthetic(n=info.train_size + info.test_size, seed=0)
        cut = info.train_size
        full = TrainData("synthetic", "regression", x[:cut], y[:cut], x[cut:], y[cut:], 1)
    ntr = config.limit_train or len(full.train_x)
    nte = config.limit_test or len(full.test_x)
    return dataclasses.replace(full, train_x=full.train_x[:ntr], train_y=full.train_y[:ntr],
                               test_x=full.test_x[:nte], test_y=full.test_y[:nte])


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
