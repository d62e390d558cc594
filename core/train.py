"""The stepwise trainer, its typed config, precision selection and the training CLI.

``Trainer.step()`` performs one optimizer step (over ``accum_steps`` micro-batches) and
returns a small record; ``run_epoch()`` and ``run()`` are loops of steps that yield event
dicts (``{"kind": "step", ...}``, ``{"kind": "epoch", ...}``). The page's "step one batch"
mode, a background job and ``python -m core.train`` in a terminal all drive this class.

Precision lives in ``select_precision`` only: fp16 autocast + GradScaler on CUDA, bf16
autocast where the hardware has native bf16 (refused with the reason on CPUs that would
emulate it 4-6x slower), fp16 on CPU refused.

Launched under ``torchrun`` (env ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) the same command
trains with DistributedDataParallel: gloo on CPU, nccl on CUDA; every rank takes its shard
of the seeded permutation; rank 0 logs, evaluates and writes checkpoints.

Usage::

    python -m core.train                                   # the default recipe
    python -m core.train --preset cnn --optimizer adam --lr 1e-3 --epochs 2
    python -m core.train --recipe r1                       # the tutorials' y = 2x regression
    python -m core.train --config run.json --epochs 3      # a JSON config saved from the lab
    torchrun --standalone --nproc_per_node=2 -m core.train --epochs 2
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from core import models as M
from core.checkpoint import BEST, LAST, CheckpointError, load_checkpoint, save_checkpoint

# --------------------------------------------------------------------------- choices
TASKS = ("auto", "classification", "regression")
LOSSES = ("auto", "cross_entropy", "bce_with_logits", "mse", "l1")
CLASSIFICATION_LOSSES = ("cross_entropy", "bce_with_logits")
REGRESSION_LOSSES = ("mse", "l1")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adadelta")
SCHEDULERS = ("none", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class DatasetInfo:
    task: str
    input_shape: tuple[int, ...]
    outputs: int  # classes for classification, target size for regression
    title: str


DATASETS: dict[str, DatasetInfo] = {
    "digits8k": DatasetInfo("classification", (1, 28, 28), 10, "MNIST digits, bundled (7,000 train / 1,000 test)"),
    "mnist": DatasetInfo("classification", (1, 28, 28), 10, "MNIST (torchvision, 60,000 / 10,000)"),
    "fashion_mnist": DatasetInfo("classification", (1, 28, 28), 10, "FashionMNIST (torchvision, 60,000 / 10,000)"),
    "linear": DatasetInfo("regression", (1,), 1, "R1: inputs [1, 2, 3] -> targets [2, 4, 6]"),
    "synthetic": DatasetInfo("regression", (10,), 1, "R2: y = x @ w + b + noise, 10 features (448 / 64)"),
}
SYNTHETIC_N, SYNTHETIC_TEST = 512, 64


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the message suggests what to change."""


# --------------------------------------------------------------------------- limits
def _env_int(env: dict, key: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(env.get(key, "") or default)
    except ValueError:
        return default
    return min(max(value, lo), hi)


@dataclass(frozen=True)
class Limits:
    """Caps an operator sets for everyone (env ``PYTORCH_LAB_MAX_*``), not per config."""

    max_epochs: int = 200          # PYTORCH_LAB_MAX_EPOCHS
    max_batch_size: int = 4096     # PYTORCH_LAB_MAX_BATCH
    max_params: int = 20_000_000   # PYTORCH_LAB_MAX_PARAMS

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Limits":
        env = os.environ if environ is None else environ
        return cls(
            max_epochs=_env_int(env, "PYTORCH_LAB_MAX_EPOCHS", cls.max_epochs, 1, 100_000),
            max_batch_size=_env_int(env, "PYTORCH_LAB_MAX_BATCH", cls.max_batch_size, 1, 1_000_000),
            max_params=_env_int(env, "PYTORCH_LAB_MAX_PARAMS", cls.max_params, 1, M.DEFAULT_PARAM_CAP),
        )


# --------------------------------------------------------------------------- config
# name -> (kind, lo, hi); kind: "int", "float", "bool", "str", "choice", "spec"
_RULES: dict[str, tuple] = {
    "preset": ("str",),
    "model_spec": ("spec",),
    "dataset": ("choice", tuple(DATASETS)),
    "task": ("choice", TASKS),
    "loss": ("choice", LOSSES),
    "label_smoothing": ("float", 0.0, 0.99),
    "optimizer": ("choice", OPTIMIZERS),
    "lr": ("float", 1e-8, 10.0),
    "momentum": ("float", 0.0, 0.999),
    "nesterov": ("bool",),
    "weight_decay": ("float", 0.0, 1.0),
    "scheduler": ("choice", SCHEDULERS),
    "step_size": ("int", 1, 100_000),
    "gamma": ("float", 1e-6, 1.0),
    "warmup_pct": ("float", 0.01, 0.99),
    "batch_size": ("int", 1, 100_000_000),  # and Limits.max_batch_size
    "epochs": ("int", 1, 1_000_000),        # and Limits.max_epochs
    "augment": ("bool",),
    "grad_clip": ("float", 0.0, 1e6),
    "accum_steps": ("int", 1, 1024),
    "seed": ("int", 0, 2**32 - 1),
    "device": ("choice", DEVICES),
    "precision": ("choice", PRECISIONS),
    "allow_slow_bf16": ("bool",),
    "limit_train": ("int", 0, 100_000_000),
    "limit_test": ("int", 0, 100_000_000),
}


@dataclass
class TrainConfig:
    """One training run, as data; ``validate()`` checks it.

    ``TrainConfig()`` is the lab's default MNIST recipe: preset lab_cnn on the bundled
    digits, AdamW with a OneCycle schedule (peak lr 5e-3), batch 128, 8 epochs, light
    augmentation. It reaches >= 98.5% test accuracy in well under a minute on 2 CPU cores
    (numbers in BENCHMARKS.md, measured by ``python bench/recipe.py``).
    """

    # Model: a preset key of core.models.PRESETS, or a full spec (then the preset is ignored).
    preset: str = M.DEFAULT_PRESET
    model_spec: dict | None = None
    # Data: digits8k (bundled), mnist, fashion_mnist, linear (R1), synthetic (R2).
    dataset: str = "digits8k"
    # classification or regression; auto follows the dataset.
    task: str = "auto"
    # cross_entropy or bce_with_logits (classification), mse or l1 (regression); auto picks
    # cross_entropy / mse.
    loss: str = "auto"
    # Label smoothing of cross_entropy (0 = off).
    label_smoothing: float = 0.0
    # sgd, adam, adamw, rmsprop, adadelta.
    optimizer: str = "adamw"
    # Learning rate (the peak rate under onecycle).
    lr: float = 5e-3
    # Momentum of sgd and rmsprop (ignored by the other optimizers).
    momentum: float = 0.9
    # Nesterov momentum (sgd with momentum > 0 only).
    nesterov: bool = False
    # Weight decay: decoupled for adamw, L2 for the others.
    weight_decay: float = 5e-4
    # none, step (StepLR), cosine (to 0 over the run), onecycle (warm-up then anneal).
    scheduler: str = "onecycle"
    # StepLR: multiply the lr by gamma every step_size epochs.
    step_size: int = 1
    gamma: float = 0.5
    # OneCycle: fraction of the steps spent warming up.
    warmup_pct: float = 0.2
    # Samples per optimizer step (the global batch; under DDP each process takes its share).
    batch_size: int = 128
    # Passes over the training data.
    epochs: int = 8
    # Light random affine (rotation, scale, shift) of image batches while training.
    augment: bool = True
    # Clip the gradient norm to this value (0 = off).
    grad_clip: float = 0.0
    # Micro-batches accumulated into one optimizer step (each of batch_size / accum_steps).
    accum_steps: int = 1
    # Seeds the weights, the shuffling, augmentation and dropout: same seed, same numbers on CPU.
    seed: int = 0
    # auto (cuda, then mps, then cpu), cpu, cuda, mps.
    device: str = "auto"
    # fp32, bf16 (autocast where natively supported), fp16 (CUDA autocast + GradScaler).
    precision: str = "fp32"
    # Allow bf16 on a CPU without native bf16 (4-6x slower; benchmarks and tests only).
    allow_slow_bf16: bool = False
    # Use only the first N training / test samples (0 = all): quick experiments and tests.
    limit_train: int = 0
    limit_test: int = 0

    # ---------------------------------------------------------------- (de)serialization
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> "TrainConfig":
        """A config from a plain dict (e.g. a JSON file); unknown keys are refused by name."""
        if isinstance(data, TrainConfig):
            return dataclasses.replace(data)
        if not isinstance(data, dict):
            raise ValueError("a training config must be a JSON object of setting: value")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(map(str, data)) - set(names))
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}; known keys: {', '.join(names)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        if len(text) > 500_000:
            raise ValueError("the config JSON is too long (max 500,000 characters)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the config is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except RecursionError:  # json.loads recurses once per [ or {
            raise ValueError("the config JSON is nested too deeply") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- resolved values
    @property
    def resolved_task(self) -> str:
        return DATASETS[self.dataset].task if self.task == "auto" else self.task

    @property
    def resolved_loss(self) -> str:
        if self.loss != "auto":
            return self.loss
        return "cross_entropy" if self.resolved_task == "classification" else "mse"

    def spec(self) -> dict:
        """The validated model spec (``model_spec`` if given, else the preset's)."""
        if self.model_spec is not None:
            return M.validate_spec(self.model_spec)
        return M.preset_spec(self.preset)

    # ---------------------------------------------------------------- validation
    def validate(self, limits: Limits | None = None) -> "TrainConfig":
        """Check every value; raise ``ValueError`` naming the setting and the fix. Returns self."""
        limits = limits or Limits.from_env()
        for name, rule in _RULES.items():
            _check_field(name, getattr(self, name), rule, limits)
        if self.epochs > limits.max_epochs:
            raise ValueError(f"epochs is {self.epochs}, over the cap of {limits.max_epochs} (PYTORCH_LAB_MAX_EPOCHS)")
        if self.batch_size > limits.max_batch_size:
            raise ValueError(f"batch_size is {self.batch_size}, over the cap of {limits.max_batch_size} "
                             "(PYTORCH_LAB_MAX_BATCH)")
        if self.batch_size < self.accum_steps:
            raise ValueError(f"batch_size ({self.batch_size}) must be at least accum_steps ({self.accum_steps}): "
                             "each step is split into accum_steps micro-batches")
        info = DATASETS[self.dataset]
        task = self.resolved_task
        if task != info.task:
            raise ValueError(f"dataset {self.dataset!r} is a {info.task} dataset but task is {self.task!r}; "
                             f"set task to {info.task} or auto")
        loss = self.resolved_loss
        fits = CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES
        if loss not in fits:
            raise ValueError(f"loss {loss!r} does not fit {task}; choose one of {', '.join(fits)}")
        if self.label_smoothing and loss != "cross_entropy":
            raise ValueError("label_smoothing applies to the cross_entropy loss only; set it to 0")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs the sgd optimizer with momentum > 0")
        if self.augment and len(info.input_shape) != 3:
            raise ValueError(f"augment works on images; dataset {self.dataset!r} is not an image dataset, "
                             "set augment to false (--no-augment)")
        # The model: a known, trainable preset or a valid spec, matching the data, under the cap.
        if self.model_spec is None:
            if self.preset not in M.PRESETS:
                raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(M.PRESETS)}")
            preset = M.PRESETS[self.preset]
            if preset.task == "shapes":
                raise ValueError(f"preset {self.preset!r} is a shape demo, not a trainable model")
            if preset.task != task:
                fitting = [k for k, d in DATASETS.items() if d.task == preset.task]
                raise ValueError(f"preset {self.preset!r} is a {preset.task} model but dataset {self.dataset!r} is "
                                 f"for {task}; pick a {preset.task} dataset ({', '.join(fitting)}) or another model")
        try:
            spec = self.spec()
            if list(spec["input_shape"]) != list(info.input_shape):
                raise ValueError(f"the model takes input of shape {spec['input_shape']} but dataset {self.dataset!r} "
                                 f"gives {list(info.input_shape)}")
            out_shape = M.infer_shapes(spec, batch=2)[-1].output_shape if spec["layers"] else (2, *spec["input_shape"])
            if tuple(out_shape) != (2, info.outputs):
                what = "classes" if task == "classification" else "target values"
                raise ValueError(f"the model outputs shape {tuple(out_shape[1:])} per sample but dataset "
                                 f"{self.dataset!r} needs {info.outputs} {what}: end with "
                                 f"Linear(..., {info.outputs})")
            params = M.parameter_count(spec)
        except M.SpecError as exc:
            raise ValueError(f"model: {exc}") from None
        if params > limits.max_params:
            raise ValueError(f"the model has {params:,} parameters, over the cap of {limits.max_params:,} "
                             "(PYTORCH_LAB_MAX_PARAMS)")
        if params == 0:
            raise ValueError("the model has no parameters to train")
        return self


def _check_field(name: str, value: Any, rule: tuple, limits: Limits) -> None:
    kind = rule[0]
    if kind == "choice":
        if not isinstance(value, str) or value not in rule[1]:
            raise ValueError(f"{name} must be one of {', '.join(rule[1])}, got {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif kind == "str":
        if not isinstance(value, str) or not value or len(value) > 100:
            raise ValueError(f"{name} must be a non-empty name, got {value!r}")
    elif kind == "spec":
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{name} must be a model spec object or null, got {type(value).__name__}")
    elif kind == "int":
        lo, hi = rule[1], rule[2]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}")
    elif kind == "float":
        lo, hi = rule[1], rule[2]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value:g}")


RECIPES: dict[str, TrainConfig] = {
    # The lab's default: fast MNIST on the bundled digits (>= 98.5% test accuracy).
    "default": TrainConfig(),
    # R1: y = 2x, Linear(1, 1), MSELoss, SGD lr .01, 100 epochs on [1, 2, 3] -> [2, 4, 6].
    "r1": TrainConfig(preset="linear", dataset="linear", loss="mse", optimizer="sgd", lr=0.01, momentum=0.0,
                      weight_decay=0.0, scheduler="none", batch_size=3, epochs=100, augment=False),
    # R2: NeuralNet(10, 20, 1), MSELoss, Adam lr .001, 100 epochs on synthetic data.
    "r2": TrainConfig(preset="neural_net", dataset="synthetic", loss="mse", optimizer="adam", lr=1e-3,
                      weight_decay=0.0, scheduler="none", batch_size=64, epochs=100, augment=False),
    # R3: the tutorials' CNN (M5), Adam lr 1e-3, CrossEntropyLoss, batch 64. On the 7,000 bundled
    # digits a constant lr plateaus at 96.5-97.2% (train accuracy ~99.9%); cosine decay and label
    # smoothing 0.1 keep it over 97% (97.3-97.6% over seeds 0-2, bench/recipe.py).
    "r3": TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="cosine",
                      label_smoothing=0.1, batch_size=64, epochs=10, augment=False),
}


def recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return dataclasses.replace(RECIPES[name])


# --------------------------------------------------------------------------- devices & precision
@dataclass(frozen=True)
class Precision:
    name: str                      # fp32, bf16, fp16
    dtype: torch.dtype | None      # autocast dtype; None = no autocast (plain fp32)
    use_scaler: bool               # GradScaler (fp16 on CUDA)
    autocast_device: str           # device type for torch.autocast
    note: str                      # one sentence for the page / log


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``auto``/``cpu``/``cuda``/``mps``; ValueError if it is not here."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        requested = "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda":
        if not cuda:
            raise ValueError("device cuda was asked for but this machine has no usable CUDA GPU; use cpu or auto")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    if requested == "mps":
        if not mps:
            raise ValueError("device mps was asked for but Apple's MPS backend is not available here; use cpu or auto")
        return torch.device("mps")
    return torch.device("cpu")


def select_precision(requested: str, device: torch.device | str, facts: Any = None, force: bool = False) -> Precision:
    """The one place that decides autocast dtype and GradScaler for a precision on a device.

    ``facts`` is ``core.env.EnvFacts`` (or anything with ``fast_bf16`` and
    ``fast_bf16_reason``); ``force`` allows emulated bf16 on a CPU (slow; for benchmarks).
    """
    dev = torch.device(device).type
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "fp32":
        return Precision("fp32", None, False, dev, "fp32: full precision, no autocast")
    if dev == "cuda":
        if requested == "fp16":
            return Precision("fp16", torch.float16, True, "cuda",
                             "fp16: CUDA autocast with GradScaler (loss scaling against fp16 underflow)")
        if not torch.cuda.is_bf16_supported():
            raise ValueError("bf16 was asked for but this GPU has no bf16 support (pre-Ampere); use fp16 or fp32")
        return Precision("bf16", torch.bfloat16, False, "cuda", "bf16: CUDA autocast; bf16 has fp32's range, no scaler")
    if dev == "mps":
        raise ValueError(f"{requested} on Apple MPS is not supported by the lab yet; use fp32")
    # CPU
    if requested == "fp16":
        raise ValueError("fp16 on the CPU is refused: CPU autocast has no fast fp16 path and GradScaler is a CUDA "
                         "tool. Use fp32, or bf16 on a CPU with native bf16 (AVX512-BF16 or AMX)")
    if facts is None:
        from core.env import env_facts

        facts = env_facts()
    fast = bool(getattr(facts, "fast_bf16", False))
    reason = str(getattr(facts, "fast_bf16_reason", ""))
    if fast:
        return Precision("bf16", torch.bfloat16, False, "cpu", f"bf16: CPU autocast ({reason})")
    if force:
        return Precision("bf16", torch.bfloat16, False, "cpu",
                         f"bf16 forced on a CPU without native bf16 ({reason}): expect it to be 4-6x slower than fp32")
    raise ValueError("bf16 on this CPU is refused: it has no native bf16 (AVX512-BF16 or AMX), so bf16 is emulated "
                     f"and runs 4-6x slower than fp32 ({reason}). Use fp32")


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

    def to(self, device: torch.device) -> "TrainData":
        return dataclasses.replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                                   test_x=self.test_x.to(device), test_y=self.test_y.to(device))


_data_cache: dict[tuple, TrainData] = {}
_data_lock = threading.Lock()


def load_data(config: TrainConfig, settings=None) -> TrainData:
    """The config's dataset as whole tensors (normalized images or regression pairs), limited."""
    from core import data as D

    info = DATASETS[config.dataset]
    if info.task == "classification":
        if settings is None:
            from core.settings import load_settings

            settings = load_settings()
        key = (config.dataset, str(getattr(settings, "data_root", "")))
        with _data_lock:
            full = _data_cache.get(key)
            if full is None:
                images = D.load_dataset(config.dataset, settings)
                full = TrainData(config.dataset, "classification", images.normalized("train"), images.labels("train"),
                                 images.normalized("test"), images.labels("test"), len(images.classes),
                                 list(images.classes))
                _data_cache[key] = full
    elif config.dataset == "linear":
        x, y = D.regression_linear()
        full = TrainData("linear", "regression", x, y, x, y, 1)  # R1 has no test split: it evaluates on its data
    else:
        x, y = D.regression_synthetic(n=SYNTHETIC_N, seed=0)
        cut = SYNTHETIC_N - SYNTHETIC_TEST
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


# --------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env(environ: dict[str, str] | None = None) -> DistInfo:
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is not within WORLD_SIZE {world}")
    return DistInfo(rank, world, local)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    import torch.distributed as dist

    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)


# --------------------------------------------------------------------------- trainer
def _loss_fn(name: str, label_smoothing: float) -> nn.Module:
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "bce_with_logits":
        return nn.BCEWithLogitsLoss()
    if name == "mse":
        return nn.MSELoss()
    return nn.L1Loss()


def _optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
    total = steps_per_epoch * cfg.epochs
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if cfg.scheduler == "onecycle":
        kwargs: dict[str, Any] = {"cycle_momentum": False}
        if cfg.optimizer in ("adam", "adamw"):
            kwargs = {"cycle_momentum": True}
        elif cfg.optimizer in ("sgd", "rmsprop") and cfg.momentum > 0:
            kwargs = {"cycle_momentum": True, "max_momentum": cfg.momentum,
                      "base_momentum": max(0.0, cfg.momentum - 0.1)}
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(2, total),
                                                   pct_start=cfg.warmup_pct, **kwargs)
    return None


def _total_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))


class Trainer:
    """Trains one model on one dataset, one optimizer step at a time.

    ``step()`` -> record dict; ``run_epoch()`` and ``run()`` yield step and epoch events;
    ``evaluate()`` -> ``{"loss", "acc", "n"}``; ``checkpoint()`` / ``load_checkpoint()``
    capture and restore everything needed to continue exactly (weights, optimizer,
    scheduler, scaler, position in the epoch, random generators).
    """

    def __init__(self, config: TrainConfig, data: TrainData | None = None, settings=None, facts: Any = None,
                 dist_info: DistInfo | None = None, limits: Limits | None = None,
                 precision: Precision | None = None, channels_last: bool | None = None) -> None:
        """``data`` may be passed pre-loaded (a page's cached tensors); ``precision``
        overrides ``select_precision`` (tests of the scaler path only); ``channels_last``
        overrides the memory-layout choice (None: the lab's choice; bench/training.py
        compares both layouts)."""
        self.config = TrainConfig.from_dict(config).validate(limits)
        cfg = self.config
        self.dist = dist_info or DistInfo()
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        self.precision = precision or select_precision(cfg.precision, self.device, facts, force=cfg.allow_slow_bf16)
        if self.dist.distributed:
            init_distributed(self.dist, self.device)
        self.task = cfg.resolved_task
        self.loss_name = cfg.resolved_loss
        self.data = (data or load_data(cfg, settings)).to(self.device)
        if len(self.data.train_x) < self.dist.world_size:
            raise ValueError(f"{len(self.data.train_x)} training samples cannot be shared by "
                             f"{self.dist.world_size} processes")

        with torch.random.fork_rng(devices=[]):
            core = M.build_model(cfg.spec(), seed=cfg.seed, param_cap=(limits or Limits.from_env()).max_params)
        self.core = core.to(self.device)
        # Convolutions run faster in channels-last layout on CPU (oneDNN runs NHWC natively) and on tensor
        # cores, in fp32 and bf16 ("Hardware efficiency" in BENCHMARKS.md compares both layouts).
        has_conv = any(isinstance(m, nn.Conv2d) for m in self.core.modules())
        if channels_last is None:
            channels_last = self.device.type in ("cpu", "cuda") and has_conv
        self.channels_last = bool(channels_last) and has_conv
        if self.channels_last:
            self.core = self.core.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.core
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.core, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.loss_fn = _loss_fn(self.loss_name, cfg.label_smoothing).to(self.device)
        self.params = [p for p in self.core.parameters() if p.requires_grad]
        self.optimizer = _optimizer(cfg, self.params)

        # Each process trains on its shard; a step takes batch_size / world samples per process,
        # split into accum_steps micro-batches.
        self.n_shard = len(self.data.train_x) // self.dist.world_size
        per_rank_batch = max(1, cfg.batch_size // self.dist.world_size)
        self.micro_batch = max(1, per_rank_batch // cfg.accum_steps)
        self.batches_per_epoch = -(-self.n_shard // self.micro_batch)
        self.steps_per_epoch = -(-self.batches_per_epoch // cfg.accum_steps)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.scheduler = _scheduler(cfg, self.optimizer, self.steps_per_epoch)
        # fp16 on CUDA: scale the loss against underflow; unscale_ before clipping, step, update.
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision.use_scaler else None

        self.epoch = 0          # completed epochs
        self.batch = 0          # micro-batches done in the current epoch
        self.global_step = 0    # optimizer steps done
        self.last_loss: float | None = None
        self.best: float | None = None  # best test accuracy (classification) or lowest test loss
        self.history: list[dict] = []   # epoch events so far
        self._acc = {"loss_sum": 0.0, "correct": 0, "seen": 0}
        self._order: torch.Tensor | None = None
        self._train_summary: dict = {"train_loss": None, "train_acc": None}  # of the last finished epoch
        self._cpu_rng = torch.Generator().manual_seed(derive_seed(cfg.seed, "torch", self.dist.rank)).get_state()
        self._cuda_rng: torch.Tensor | None = None
        if self.device.type == "cuda":
            with torch.random.fork_rng(devices=[self.device], device_type="cuda"):
                torch.cuda.manual_seed(derive_seed(cfg.seed, "cuda", self.dist.rank))
                self._cuda_rng = torch.cuda.get_rng_state(self.device)
        self.aug_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "augment", self.dist.rank))

    # ---------------------------------------------------------------- helpers
    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @contextmanager
    def _rng(self) -> Iterator[None]:
        """Run with this trainer's own RNG state (dropout), isolated from other code."""
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device] if cuda else [], device_type="cuda"):
            torch.set_rng_state(self._cpu_rng)
            if cuda:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            yield
            self._cpu_rng = torch.get_rng_state()
            if cuda:
                self._cuda_rng = torch.cuda.get_rng_state(self.device)

    def _autocast(self):
        p = self.precision
        if p.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=p.autocast_device, dtype=p.dtype)

    def _epoch_order(self) -> torch.Tensor:
        if self._order is None:
            n = len(self.data.train_x)
            gen = torch.Generator().manual_seed(derive_seed(self.config.seed, "shuffle", self.epoch))
            order = torch.randperm(n, generator=gen)
            if self.dist.distributed:
                order = order[self.dist.rank:self.n_shard * self.dist.world_size:self.dist.world_size]
            self._order = order.to(self.data.train_x.device)
        return self._order

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "bce_with_logits":
            return F.one_hot(y, self.data.outputs).to(torch.float32)
        return y

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ---------------------------------------------------------------- training
    def step(self) -> dict:
        """One optimizer step over ``accum_steps`` micro-batches; returns its record."""
        if self.finished:
            raise RuntimeError(f"the run is complete ({self.config.epochs} epochs); start a new one to train more")
        t0 = time.perf_counter()
        cfg, data = self.config, self.data
        order = self._epoch_order()
        first = self.batch
        last = min(self.batch + cfg.accum_steps, self.batches_per_epoch)
        slices = [order[b * self.micro_batch:(b + 1) * self.micro_batch] for b in range(first, last)]
        total = sum(len(s) for s in slices)
        lr = self.current_lr()
        if not self.core.training:  # evaluation and the step mode's evaluation restore train mode on the whole model;
            self.model.train()      # walking every module each step costs ~0.1 ms (1-2% of a small CNN's step)
        self.optimizer.zero_grad(set_to_none=True)
        # Loss and correct counts stay tensors until every micro-batch is queued (no GPU sync in between),
        # with as few extra ops as possible: each costs ~10 µs on a CPU, a few % of a small model's step
        # ("Trainer overhead" in BENCHMARKS.md).
        losses: list[torch.Tensor] = []
        corrects: list[torch.Tensor] = []
        with self._rng():
            for i, idx in enumerate(slices):
                x, y = data.train_x[idx], data.train_y[idx]
                if cfg.augment:
                    x = augment_batch(x, self.aug_gen)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                sync = (self.model.no_sync() if self.dist.distributed and i < len(slices) - 1 else nullcontext())
                with sync:
                    with self._autocast():
                        out = self.model(x)
                    loss = self.loss_fn(out.float(), self._targets(y))
                    scaled = loss if len(slices) == 1 else loss * (len(idx) / total)
                    if self.scaler is not None:
                        self.scaler.scale(scaled).backward()
                    else:
                        scaled.backward()
                losses.append(loss.detach())
                if self.task == "classification":
                    corrects.append((out.argmax(1) == y).sum())  # argmax is not differentiable: no graph
        loss_value = sum(float(lo) * len(idx) for lo, idx in zip(losses, slices)) / total
        correct = sum(int(c) for c in corrects)
        skipped = False
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # true gradients before measuring or clipping them
        if cfg.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
        else:
            grad_norm = float(_total_norm(self.params))
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skips the step when gradients hold inf/NaN
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale
        else:
            if not math.isfinite(loss_value):
                raise TrainingDiverged(f"the loss became {loss_value} at step {self.global_step + 1}: training "
                                       "diverged; lower the learning rate or turn on gradient clipping")
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_step += 1
        self.batch = last
        self.last_loss = loss_value
        self._acc["loss_sum"] += loss_value * total
        self._acc["correct"] += int(correct)
        self._acc["seen"] += total
        seconds = time.perf_counter() - t0
        record = {
            "kind": "step", "step": self.global_step, "epoch": self.epoch + 1, "batch": self.batch,
            "batches": self.batches_per_epoch, "loss": loss_value, "lr": lr, "grad_norm": grad_norm,
            "samples": total * self.dist.world_size, "seconds": seconds,
            "samples_per_s": total * self.dist.world_size / max(seconds, 1e-9), "skipped": skipped,
            "epoch_end": self.batch >= self.batches_per_epoch,
        }
        if self.task == "classification":
            record["acc"] = int(correct) / total
        if record["epoch_end"]:
            self._train_summary = self._close_epoch()
        return record

    def _close_epoch(self) -> dict:
        acc = self._acc
        stats = torch.tensor([acc["loss_sum"], float(acc["correct"]), float(acc["seen"])], dtype=torch.float64)
        if self.dist.distributed:
            import torch.distributed as dist

            stats = stats.to(self.device)  # NCCL reduces CUDA tensors only
            dist.all_reduce(stats)
        loss_sum, correct, seen = stats.cpu().tolist()
        summary = {"train_loss": loss_sum / max(seen, 1),
                   "train_acc": correct / max(seen, 1) if self.task == "classification" else None}
        self.epoch += 1
        self.batch = 0
        self._order = None
        self._acc = {"loss_sum": 0.0, "correct": 0, "seen": 0}
        return summary

    @torch.no_grad()
    def evaluate(self, split: str = "test", batch_size: int = 1000) -> dict:
        """Mean loss and accuracy (classification) over a whole split, in eval mode."""
        if split not in ("test", "train"):
            raise ValueError("split must be 'test' or 'train'")
        x_all = self.data.test_x if split == "test" else self.data.train_x
        y_all = self.data.test_y if split == "test" else self.data.train_y
        self.core.eval()
        loss_sum, correct, n = 0.0, 0, len(x_all)
        for start in range(0, n, batch_size):
            x, y = x_all[start:start + batch_size], y_all[start:start + batch_size]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out = self.core(x)
            loss_sum += float(self.loss_fn(out.float(), self._targets(y))) * len(x)
            if self.task == "classification":
                correct += int((out.argmax(1) == y).sum())
        self.core.train()
        return {"loss": loss_sum / max(n, 1), "acc": correct / max(n, 1) if self.task == "classification" else None,
                "n": n}

    def _epoch_event(self, seconds: float) -> dict:
        event = {"kind": "epoch", "epoch": self.epoch, "step": self.global_step, **self._train_summary,
                 "test_loss": None, "test_acc": None, "lr": self.current_lr(), "seconds": seconds, "best": False}
        if self.is_main:
            ev = self.evaluate("test")
            event["test_loss"], event["test_acc"] = ev["loss"], ev["acc"]
            score = ev["acc"] if self.task == "classification" else -ev["loss"]
            if score is not None and math.isfinite(score) and (self.best is None or score > self.best):
                self.best = score
                event["best"] = True
        self.history.append({k: v for k, v in event.items() if k != "kind"})
        return event

    def run_epoch(self, stop: Callable[[], bool] | None = None) -> Iterator[dict]:
        """Steps to the end of the current epoch (yielding each), then the epoch event.

        ``stop`` is polled after every step; when it says so, a ``{"kind": "stopped"}``
        event ends the loop (the trainer can be checkpointed and resumed there).
        """
        t0 = time.perf_counter()
        while not self.finished:
            record = self.step()
            yield record
            if record["epoch_end"]:
                yield self._epoch_event(time.perf_counter() - t0)
                return
            if self._should_stop(stop):
                yield {"kind": "stopped", "epoch": self.epoch, "batch": self.batch, "step": self.global_step}
                return

    def run(self, stop: Callable[[], bool] | None = None) -> Iterator[dict]:
        """All remaining epochs: step and epoch events, then ``{"kind": "done"}`` (or ``stopped``)."""
        while not self.finished:
            for event in self.run_epoch(stop):
                yield event
                if event["kind"] == "stopped":
                    return
            if not self.finished and self._should_stop(stop):
                yield {"kind": "stopped", "epoch": self.epoch, "batch": self.batch, "step": self.global_step}
                return
        yield {"kind": "done", "epoch": self.epoch, "step": self.global_step, "best": self.best,
               "last": self.history[-1] if self.history else None}

    def _should_stop(self, stop: Callable[[], bool] | None) -> bool:
        flag = bool(stop()) if (stop is not None and self.is_main) else False
        if self.dist.distributed:
            import torch.distributed as dist

            t = torch.tensor([int(flag)], dtype=torch.int32)
            if self.device.type == "cuda":
                t = t.to(self.device)
            dist.broadcast(t, 0)
            flag = bool(t.item())
        return flag

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        """The tutorials' checkpoint dict plus what an exact resume needs (weights_only-loadable)."""
        rng: dict[str, Any] = {"torch": self._cpu_rng.clone(), "augment": self.aug_gen.get_state()}
        if self._cuda_rng is not None:
            rng["cuda"] = self._cuda_rng.cpu().clone()
        return {
            "epoch": self.epoch,
            "model_state_dict": self.core.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "loss": self.last_loss,
            "config": self.config.to_dict(),
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler_state_dict": self.scaler.state_dict() if self.scaler is not None else {},
            "step": self.global_step,
            "progress": {"batch": self.batch, "loss_sum": self._acc["loss_sum"], "correct": self._acc["correct"],
                         "seen": self._acc["seen"], "best": self.best, "world_size": self.dist.world_size,
                         "history": [{k: v for k, v in h.items()} for h in self.history]},
            "rng": rng,
        }

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.checkpoint(), path)

    def load_checkpoint(self, ckpt: dict | str | Path, max_bytes: int | None = None) -> None:
        """Continue from a checkpoint made by a trainer with the same config."""
        if not isinstance(ckpt, dict):
            ckpt = load_checkpoint(ckpt, max_bytes=max_bytes)
        saved = ckpt.get("config")
        if not isinstance(saved, dict):
            raise CheckpointError("the checkpoint has no lab config; it cannot be resumed here")
        mine = self.config.to_dict()
        diff = sorted(k for k in set(mine) | set(saved) if mine.get(k) != saved.get(k))
        if diff:
            raise CheckpointError("the checkpoint was made with a different config (" + ", ".join(
                f"{k}: {saved.get(k)!r} vs {mine.get(k)!r}" for k in diff[:5]) + ")")
        try:
            self.core.load_state_dict(ckpt["model_state_dict"])
            self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
            if self.scheduler is not None and ckpt.get("scheduler_state_dict"):
                self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
            if self.scaler is not None and ckpt.get("scaler_state_dict"):
                self.scaler.load_state_dict(ckpt["scaler_state_dict"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint does not fit this model: {str(exc).splitlines()[0][:300]}") from None
        progress = ckpt.get("progress") or {}
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt.get("step", 0))
        self.batch = int(progress.get("batch", 0))
        if not 0 <= self.batch < self.batches_per_epoch:
            raise CheckpointError(f"the checkpoint's position in the epoch ({self.batch}) does not fit this data")
        self.last_loss = None if ckpt["loss"] is None else float(ckpt["loss"])
        self._acc = {"loss_sum": float(progress.get("loss_sum", 0.0)), "correct": int(progress.get("correct", 0)),
                     "seen": int(progress.get("seen", 0))}
        self.best = progress.get("best")
        self.history = list(progress.get("history", []))
        self._order = None
        rng = ckpt.get("rng") or {}
        same_world = int(progress.get("world_size", 1)) == self.dist.world_size == 1
        if same_world and isinstance(rng.get("torch"), torch.Tensor):
            self._cpu_rng = rng["torch"].clone()
            self.aug_gen.set_state(rng["augment"])
            if self._cuda_rng is not None and isinstance(rng.get("cuda"), torch.Tensor):
                self._cuda_rng = rng["cuda"].clone()
        else:  # another process layout: fresh, still seeded, generators per rank
            tag = ("resume", self.global_step, self.dist.rank)
            self._cpu_rng = torch.Generator().manual_seed(derive_seed(self.config.seed, "torch", *tag)).get_state()
            self.aug_gen.manual_seed(derive_seed(self.config.seed, "augment", *tag))


# --------------------------------------------------------------------------- CLI
class Progress:
    """A one-line progress printer (``\\r`` on a terminal, a line per epoch otherwise)."""

    def __init__(self, total_steps: int, stream=None, enabled: bool = True) -> None:
        self.total = max(1, total_steps)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._last = 0.0

    def step(self, ev: dict) -> None:
        if not (self.enabled and self.tty):
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and ev["step"] < self.total:
            return
        self._last = now
        frac = min(1.0, ev["step"] / self.total)
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        line = (f"\repoch {ev['epoch']} [{bar}] {ev['step']}/{self.total} loss {ev['loss']:.4f} "
                f"lr {ev['lr']:.2e} {ev['samples_per_s']:.0f} samples/s {now - self.t0:.0f}s")
        self.stream.write(line[:160])
        self.stream.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def epoch_line(ev: dict, epochs: int) -> str:
    acc = f" test_acc {_fmt(ev['test_acc'] and ev['test_acc'] * 100, '.2f')}%" if ev.get("test_acc") is not None else ""
    train_acc = f" train_acc {ev['train_acc'] * 100:.2f}%" if ev.get("train_acc") is not None else ""
    return (f"epoch {ev['epoch']}/{epochs} train_loss {_fmt(ev['train_loss'], '.4f')}{train_acc} "
            f"test_loss {_fmt(ev['test_loss'], '.4f')}{acc} ({ev['seconds']:.1f}s)")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("config (override the recipe / --config file)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        rule = _RULES[f.name]
        if rule[0] == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        elif rule[0] == "choice":
            group.add_argument(flag, dest=f.name, choices=rule[1], default=argparse.SUPPRESS)
        elif rule[0] == "int":
            group.add_argument(flag, dest=f.name, type=int, default=argparse.SUPPRESS, metavar="N")
        elif rule[0] == "float":
            group.add_argument(flag, dest=f.name, type=float, default=argparse.SUPPRESS, metavar="X")
        elif rule[0] == "spec":
            group.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, metavar="JSON|@FILE",
                               help="a model spec as JSON, or @path to a JSON file")
        else:
            group.add_argument(flag, dest=f.name, default=argparse.SUPPRESS,
                               help=f"one of {', '.join(k for k, p in M.PRESETS.items() if p.task != 'shapes')}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train a PyTorch Lab model headless, writing to the lab's run store. "
                    "Under torchrun it trains with DistributedDataParallel.")
    p.add_argument("--recipe", choices=list(RECIPES), help="start from a named recipe (default: default)")
    p.add_argument("--config", metavar="FILE", help="a JSON config saved from the lab (flags override it)")
    p.add_argument("--run-id", help="run a stored run: a queued job, or with --resume a stopped/failed run")
    p.add_argument("--resume", action="store_true", help="with --run-id: continue from the run's last.pt")
    p.add_argument("--home", help="lab home holding runs.sqlite3 and runs/ (default: PYTORCH_LAB_HOME)")
    p.add_argument("--name", default="", help="a name for the new run")
    p.add_argument("--tags", default="", help="comma-separated tags for the new run")
    p.add_argument("--no-store", action="store_true", help="do not write to the run store (print only)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--job-cap", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--print-config", action="store_true", help="print the validated config as JSON and exit")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_config_flags(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = recipe(args.recipe or "default")
    if args.config:
        path = Path(args.config)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
        base = TrainConfig.from_json(text)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if isinstance(overrides.get("model_spec"), str):
        text = overrides["model_spec"]
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text()
            except OSError as exc:
                raise ValueError(f"cannot read the model spec file {text[1:]}: {exc.strerror or exc}") from None
        try:
            overrides["model_spec"] = M.spec_from_json(text)
        except M.SpecError as exc:
            raise ValueError(f"model_spec: {exc}") from None
    return base.replace(**overrides)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:2000]


class _Worker:
    """Store bookkeeping for one run: heartbeat thread, stop flag, metrics, checkpoints."""

    def __init__(self, store, run_id: str, heartbeat_s: float) -> None:
        self.store, self.run_id = store, run_id
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.epoch = 0
        self.step = 0
        self.pending: list[tuple] = []
        self.last_flush = time.monotonic()
        self.heartbeat_s = heartbeat_s
        self.thread = threading.Thread(target=self._beat, name="lab-heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _beat(self) -> None:
        while not self.done.wait(self.heartbeat_s):
            try:
                self.store.heartbeat(self.run_id, epoch=self.epoch, step=self.step)
                if self.store.stop_requested(self.run_id):
                    self.stop_event.set()
            except Exception:  # a busy database must not kill the run; try again next beat
                pass

    def close(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def log_step(self, ev: dict) -> None:
        self.step = ev["step"]
        for name in ("loss", "lr", "grad_norm", "samples_per_s"):
            self.pending.append((ev["step"], ev["epoch"], name, ev[name]))
        if time.monotonic() - self.last_flush > 1.0:
            self.flush()

    def log_epoch(self, ev: dict) -> None:
        self.epoch = ev["epoch"]
        for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
            if ev.get(name) is not None:
                self.pending.append((ev["step"], ev["epoch"], name, ev[name]))
        self.pending.append((ev["step"], ev["epoch"], "epoch_seconds", ev["seconds"]))
        self.flush()

    def flush(self) -> None:
        if self.pending:
            self.store.log_metrics(self.run_id, self.pending)
            self.pending = []
        self.last_flush = time.monotonic()


def _metrics_of(ev: dict) -> dict:
    keys = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")
    return {k: ev.get(k) for k in keys}


def train_run(trainer: Trainer, store=None, run_id: str | None = None, progress: Progress | None = None,
              heartbeat_s: float = 2.0, external_stop: threading.Event | None = None) -> str:
    """Drive a trainer to the end, writing metrics/checkpoints to the store; returns the final status.

    Rank 0 does all writing. The run stops early (status ``stopped``, last.pt saved) when
    the store's stop flag is set or ``external_stop`` (SIGTERM/SIGINT) is.
    """
    cfg = trainer.config
    main = trainer.is_main
    run_dir = store.run_dir(run_id, create=True) if (store is not None and main) else None
    worker = _Worker(store, run_id, heartbeat_s) if (store is not None and main) else None
    external_stop = external_stop or threading.Event()
    if worker is not None:
        worker.epoch, worker.step = trainer.epoch, trainer.global_step
        worker.start()

    def stop() -> bool:
        return external_stop.is_set() or (worker is not None and worker.stop_event.is_set())

    status = "completed"
    try:
        if trainer.finished:
            pass
        for ev in trainer.run(stop):
            kind = ev["kind"]
            if kind == "step":
                if progress:
                    progress.step(ev)
                if worker:
                    worker.log_step(ev)
            elif kind == "epoch":
                if progress:
                    progress.line(epoch_line(ev, cfg.epochs))
                if worker:
                    worker.log_epoch(ev)
                    store.update_run(run_id, last_metrics=_metrics_of(ev), epoch=ev["epoch"], step=ev["step"])
                    if ev["best"]:
                        store.update_run(run_id, best_metrics=_metrics_of(ev))
                if main and run_dir is not None:
                    ckpt = trainer.checkpoint()
                    if ev["best"]:  # best.pt first: a crash in between redoes this epoch from the old last.pt
                        save_checkpoint(ckpt, run_dir / BEST)
                    save_checkpoint(ckpt, run_dir / LAST)
            elif kind == "stopped":
                status = "stopped"
                if worker:  # metrics up to the checkpoint's step are stored before the checkpoint
                    worker.flush()
                if main and run_dir is not None:
                    save_checkpoint(trainer.checkpoint(), run_dir / LAST)
                if progress:
                    progress.line(f"stopped at epoch {ev['epoch'] + 1}, step {ev['step']}; last.pt saved")
        if worker:
            worker.flush()
    finally:
        if worker:
            worker.close()
    return status


def _open_store(home: str | None):
    from core.store import RunStore

    if home:
        return RunStore(home)
    return RunStore.open_default()


def _set_threads(n: int) -> None:
    if n and n > 0:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass  # already set once in this process


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _set_threads(args.threads)
    if args.run_id:
        given = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)]
        if args.config or args.recipe or given:
            print("error: --run-id trains the run's stored config; --config, --recipe and config flags "
                  f"cannot change it (got {', '.join(given + (['--config'] if args.config else []) + (['--recipe'] if args.recipe else []))})",
                  file=sys.stderr)
            return 2
        return _run_stored(args)
    try:
        config = config_from_args(args).validate()
    except (ValueError, TypeError) as exc:
        print(f"error: invalid config: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_json())
        return 0
    from core.data import DataUnavailable

    try:
        info = dist_from_env()
        trainer = Trainer(config, dist_info=info)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DataUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    store, run_id = None, None
    if trainer.is_main and not args.no_store:
        store = _open_store(args.home)
        tags = [t for t in args.tags.split(",") if t.strip()]
        run_id = store.create_run(config.to_dict(), name=args.name, tags=tags, status="running", kind="cli",
                                  device=str(trainer.device), precision=trainer.precision.name)
        store.update_run(run_id, pid=os.getpid())
    return _execute(trainer, store, run_id, args)


def _execute(trainer: Trainer, store, run_id: str | None, args) -> int:
    progress = Progress(trainer.total_steps, enabled=trainer.is_main and not args.quiet)
    external_stop = threading.Event()

    def on_signal(signum, frame):  # finish the current step, checkpoint, status "stopped"
        if external_stop.is_set():  # asked twice: stop now
            raise KeyboardInterrupt
        external_stop.set()

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, on_signal)
    if trainer.is_main:
        where = f" run {run_id} in {store.home}" if store is not None else ""
        progress.line(f"training{where}: {trainer.config.preset if trainer.config.model_spec is None else 'custom'} "
                      f"on {trainer.config.dataset}, {trainer.config.epochs} epochs, {trainer.device}, "
                      f"{trainer.precision.name}, world size {trainer.dist.world_size}")
    code = 0
    try:
        status = train_run(trainer, store, run_id, progress, heartbeat_s=_heartbeat_s(),
                           external_stop=external_stop)
        if store is not None:
            store.finish_run(run_id, status)
        if trainer.is_main and trainer.history:
            last = trainer.history[-1]
            summary = {"run_id": run_id, "status": status, "epoch": trainer.epoch, "step": trainer.global_step,
                       "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss")}
            print(json.dumps(summary))
    except BaseException as exc:  # recorded as "failed" with the reason, then re-raised for the exit code
        if store is not None:
            try:
                store.finish_run(run_id, "failed", error=_error_text(exc))
            except Exception:
                pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        traceback.print_exc()
        code = 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if trainer.dist.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return code


def _heartbeat_s() -> float:
    try:
        value = float(os.environ.get("PYTORCH_LAB_HEARTBEAT_S", "2"))
    except ValueError:
        value = 2.0
    return min(max(value, 0.05), 60.0) if math.isfinite(value) else 2.0


def _run_stored(args) -> int:
    """Worker mode: run the stored run ``--run-id`` (claim its job slot first)."""
    from core.data import DataUnavailable
    from core.store import FINISHED, check_run_id

    try:
        run_id = check_run_id(args.run_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = _open_store(args.home)
    run = store.get_run(run_id)
    if run is None:
        print(f"error: no run {run_id} in {store.path}", file=sys.stderr)
        return 2
    if run["status"] in FINISHED:
        if not args.resume or run["status"] == "completed":
            print(f"error: run {run_id} is {run['status']}; use --resume to continue a stopped or failed run",
                  file=sys.stderr)
            return 2
        store.update_run(run_id, status="queued", stop_requested=False, error=None, finished=None)
    elif run["status"] == "running":
        print(f"error: run {run_id} is already running (pid {run['pid']})", file=sys.stderr)
        return 2
    if not store.claim_run(run_id, os.getpid(), cap=args.job_cap):
        store.release_launch(run_id)
        print(f"run {run_id}: no free job slot (cap {args.job_cap}); left in the queue", file=sys.stderr)
        return 3
    if store.stop_requested(run_id):
        store.finish_run(run_id, "stopped")
        return 0
    try:
        config = TrainConfig.from_dict(run["config"]).validate()
        trainer = Trainer(config)
    except (ValueError, TypeError) as exc:
        store.finish_run(run_id, "failed", error=f"invalid config: {exc}")
        print(f"error: invalid config: {exc}", file=sys.stderr)
        return 2
    except DataUnavailable as exc:
        store.finish_run(run_id, "failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException as exc:
        store.finish_run(run_id, "failed", error=_error_text(exc))
        raise
    store.update_run(run_id, device=str(trainer.device), precision=trainer.precision.name, launched=None)
    last = store.run_dir(run_id) / LAST
    if last.exists():
        try:
            trainer.load_checkpoint(last)
        except CheckpointError as exc:
            store.finish_run(run_id, "failed", error=f"cannot resume: {exc}")
            print(f"error: cannot resume: {exc}", file=sys.stderr)
            return 1
        store.truncate_metrics(run_id, trainer.global_step)
        print(f"resuming run {run_id} at epoch {trainer.epoch + 1}, step {trainer.global_step}", file=sys.stderr)
    else:
        store.truncate_metrics(run_id, 0)
    code = _execute(trainer, store, run_id, args)
    _hand_off(store, args.job_cap)
    return code


def _hand_off(store, cap: int | None) -> None:
    """A finishing job starts the next queued one, so the queue moves with no page open."""
    if cap is None:
        return
    try:
        from core.jobs import JobManager

        JobManager(store=store, cap=cap).poll()
    except Exception as exc:  # the next page visit will launch it instead
        print(f"note: could not start the next queued run: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
