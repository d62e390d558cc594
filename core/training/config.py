"""The training config: choices, caps, the validated ``TrainConfig`` and the named recipes.

A ``TrainConfig`` is validated when it is made (``TrainConfig(...)``, ``from_dict``,
``from_json``, ``replace``): every field's type and range, then how the fields fit together
(task, loss, dataset, model, the operator's caps). It is frozen, so a config that exists is
valid, and is passed on as it is. Its errors are ``ConfigError`` with codes ``config.*``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from core.errors import Code, LabError
from core.ml.data import DATASETS, DatasetInfo, find_dataset
from core.ml.modules import infer_shapes, parameter_count
from core.ml.spec import ModelSpec, SpecError
from core.ml.zoo import DEFAULT_PRESET, PRESETS, preset_spec
from core.safe.jsontext import loads_user_json
from core.settings import load_settings

# --------------------------------------------------------------------------- choices
Task = Literal["auto", "classification", "regression"]
Loss = Literal["auto", "cross_entropy", "bce_with_logits", "mse", "l1"]
Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "adadelta"]
Scheduler = Literal["none", "step", "cosine", "onecycle", "linear"]
Device = Literal["auto", "cpu", "cuda", "mps"]
PrecisionName = Literal["auto", "fp32", "bf16", "fp16"]
DatasetName = Literal["digits8k", "mnist", "fashion_mnist", "linear", "synthetic"]
TASKS: tuple[str, ...] = get_args(Task)
LOSSES: tuple[str, ...] = get_args(Loss)
CLASSIFICATION_LOSSES = ("cross_entropy", "bce_with_logits")
REGRESSION_LOSSES = ("mse", "l1")
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(PrecisionName)


class ConfigError(LabError):
    """A training config that cannot run; the message names the setting and the fix (codes ``config.*``)."""


# The dataset names of the one registry (core.ml.data.DATASETS), as a type.
assert tuple(DATASETS) == get_args(DatasetName)


MAX_PROCESSES = 64  # most DDP processes a config may ask for (the form offers what the machine has)


# --------------------------------------------------------------------------- limits
@dataclass(frozen=True)
class Limits:
    """Caps an operator sets for everyone (env ``PYTORCH_LAB_MAX_*``), not per config."""

    max_epochs: int = 200          # PYTORCH_LAB_MAX_EPOCHS
    max_batch_size: int = 4096     # PYTORCH_LAB_MAX_BATCH
    max_params: int = 20_000_000   # PYTORCH_LAB_MAX_PARAMS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        s = load_settings(environ)
        return cls(max_epochs=s.max_epochs, max_batch_size=s.max_batch, max_params=s.max_params)


# --------------------------------------------------------------------------- config
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Flag = Annotated[bool, Strict()]


class TrainConfig(BaseModel):
    """One training run, as data, validated when it is made (see the module doc).

    ``TrainConfig()`` is the lab's default MNIST recipe: preset lab_fast (lab_cnn with a strided
    first convolution) on the bundled digits, 500 of the 7,000 training images held out for
    validation, fused AdamW (lr 5e-3, weight decay 5e-4) with a linear warm-up (20%) and linear
    decay to 0, batch 128 (the last partial batch dropped), 12 epochs, light augmentation, bf16
    autocast where the CPU or GPU runs it natively (fp32 elsewhere), and evaluation with the
    weights' exponential moving average (decay 0.98 per step) and test-time augmentation (the
    image and its four 1-pixel shifts). Model selection (best.pt) uses the validation split only;
    the test split is only reported. Numbers (time to 98.5% test accuracy, final accuracy over 5
    seeds, one trick at a time) are in BENCHMARKS.md, measured by ``python -m bench.recipe``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    # Model: a preset key of core.ml.zoo.PRESETS, or a full spec (then the preset is ignored).
    preset: Annotated[str, Strict(), Field(min_length=1, max_length=100)] = DEFAULT_PRESET
    model_spec: ModelSpec | None = None
    # Data: digits8k (bundled), mnist, fashion_mnist, linear (R1), synthetic (R2), or the name of a learner's
    # dataset registered in the lab home (core.ml.userdata: the Data page or python -m core.datasets add).
    dataset: Annotated[str, Strict(), Field(min_length=1, max_length=64)] = "digits8k"
    # classification or regression; auto follows the dataset.
    task: Task = "auto"
    # cross_entropy or bce_with_logits (classification), mse or l1 (regression); auto picks
    # cross_entropy / mse.
    loss: Loss = "auto"
    # Label smoothing of cross_entropy (0 = off).
    label_smoothing: Annotated[Float, Field(ge=0.0, le=0.99)] = 0.0
    # sgd, adam, adamw, rmsprop, adadelta.
    optimizer: Optimizer = "adamw"
    # Learning rate (the peak rate under onecycle).
    lr: Annotated[Float, Field(ge=1e-8, le=10.0)] = 5e-3
    # Momentum of sgd and rmsprop (ignored by the other optimizers).
    momentum: Annotated[Float, Field(ge=0.0, le=0.999)] = 0.9
    # Nesterov momentum (sgd with momentum > 0 only).
    nesterov: Flag = False
    # Weight decay: decoupled for adamw, L2 for the others.
    weight_decay: Annotated[Float, Field(ge=0.0, le=1.0)] = 5e-4
    # none, step (StepLR), cosine (to 0 over the run), onecycle (warm-up then anneal), linear (linear
    # warm-up over warmup_pct of the steps, then linear decay to 0).
    scheduler: Scheduler = "linear"
    # StepLR: multiply the lr by gamma every step_size epochs.
    step_size: Annotated[Int, Field(ge=1, le=100_000)] = 1
    gamma: Annotated[Float, Field(ge=1e-6, le=1.0)] = 0.5
    # OneCycle and linear: fraction of the steps spent warming up.
    warmup_pct: Annotated[Float, Field(ge=0.01, le=0.99)] = 0.2
    # Samples per optimizer step (the global batch; under DDP each process takes its share).
    batch_size: Annotated[Int, Field(ge=1, le=100_000_000)] = 128  # and Limits.max_batch_size
    # Passes over the training data.
    epochs: Annotated[Int, Field(ge=1, le=1_000_000)] = 12  # and Limits.max_epochs
    # Drop each epoch's last partial batch (a BatchNorm over a few samples is noisy).
    drop_last: Flag = True
    # Light random affine (rotation, scale, shift) of image batches while training.
    augment: Flag = True
    # Clip the gradient norm to this value (0 = off).
    grad_clip: Annotated[Float, Field(ge=0.0, le=1e6)] = 0.0
    # Micro-batches accumulated into one optimizer step (each of batch_size / accum_steps).
    accum_steps: Annotated[Int, Field(ge=1, le=1024)] = 1
    # Processes that train together with DistributedDataParallel (the world size): a background job
    # with processes > 1 is launched through torchrun (gloo on CPU, nccl on CUDA); 1 = one process.
    processes: Annotated[Int, Field(ge=1, le=MAX_PROCESSES)] = 1
    # Seeds the weights, the shuffling, augmentation and dropout: same seed, same numbers on CPU.
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1)] = 0
    # auto (cuda, then mps, then cpu), cpu, cuda, mps.
    device: Device = "auto"
    # auto (bf16 where the CPU or GPU runs it natively, else fp32), fp32, bf16 (autocast where natively
    # supported), fp16 (CUDA autocast + GradScaler).
    precision: PrecisionName = "auto"
    # Allow bf16 on a CPU without native bf16 (4-6x slower; benchmarks and tests only).
    allow_slow_bf16: Flag = False
    # Use only the first N training / evaluation (validation and test) samples (0 = all): quick
    # experiments and tests.
    limit_train: Annotated[Int, Field(ge=0, le=100_000_000)] = 0
    limit_test: Annotated[Int, Field(ge=0, le=100_000_000)] = 0
    # Images held out of the training split for validation (class-balanced, seed 1): model selection
    # (best.pt) uses them, never the test split, which is only reported. Image datasets only: the
    # regression datasets have no validation split (R1 has 3 points), there best.pt is the epoch with
    # the lowest training loss. 0 = no validation split (selection on the training accuracy/loss).
    val_size: Annotated[Int, Field(ge=0, le=1_000_000)] = 500
    # Exponential moving average of the weights, decay per optimizer step (warmed up as
    # min(ema, (1 + n) / (10 + n))); 0 = off. Evaluation, checkpoints' evaluation, the Train and Runs
    # pages' evaluation and Predict use the averaged weights.
    ema: Annotated[Float, Field(ge=0.0, le=0.9999)] = 0.98
    # Test-time augmentation: evaluation averages the logits of each image and of its four 1-pixel
    # shifts (the border filled with the background; never flips). Images only: other data ignores it.
    tta: Flag = True
    # Shuffle the training samples every epoch (off: the stored order, the same every epoch; for showing
    # what an unshuffled, sorted dataset does to training).
    shuffle: Flag = True
    # Normalize image inputs with the training images' mean and std (off: raw pixel values 0-255 go
    # into the model, as when a tutorial's Normalize and ToTensor's scaling are left out; for showing
    # what unnormalized inputs do to training).
    normalize: Flag = True
    # Record the training internals (per-layer weight, gradient and activation statistics, update-to-weight
    # ratios, dead ReLUs: core.training.internals) every N optimizer steps and at the first; 0 = off.
    # Reading only: the run trains the same numbers either way.
    internals_every: Annotated[Int, Field(ge=0, le=1_000_000)] = 50

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc) from None

    # ---------------------------------------------------------------- validation
    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        """A built-in dataset or a registered one of the lab home."""
        if find_dataset(value) is None:
            raise ConfigError("config.choice", name=Code("dataset"), choices=Code(", ".join(DATASETS)),
                              got=Code(repr(value)))
        return value

    @property
    def dataset_info(self) -> DatasetInfo:
        """The dataset's ``DatasetInfo`` (built-in, or a learner's registered dataset)."""
        info = find_dataset(self.dataset)
        if info is None:  # removed since the config was made
            raise ConfigError("config.choice", name=Code("dataset"), choices=Code(", ".join(DATASETS)),
                              got=Code(repr(self.dataset)))
        return info

    @field_validator("model_spec", mode="before")
    @classmethod
    def _model_spec(cls, value: Any) -> Any:
        """A spec as data is validated here (a typed ``ModelSpec`` passes as it is)."""
        if value is None or isinstance(value, ModelSpec):
            return value
        if not isinstance(value, dict):
            raise ConfigError("config.model_spec_type", name=Code("model_spec"), got=Code(type(value).__name__))
        try:
            return ModelSpec.parse(value)
        except SpecError as exc:
            raise ConfigError("config.model", error=exc) from None

    @model_validator(mode="after")
    def _fits(self) -> TrainConfig:
        """How the fields fit together: caps, task, loss, options, and the model against the data."""
        limits = Limits.from_env()
        self._check_run_caps(limits)
        if self.batch_size < self.accum_steps:
            raise ConfigError("config.accum", batch=self.batch_size, accum=self.accum_steps)
        if self.batch_size < self.accum_steps * self.processes:
            raise ConfigError("config.processes_batch", batch=self.batch_size, processes=self.processes,
                              accum=self.accum_steps)
        info = self.dataset_info
        task = self.resolved_task
        if task != info.task:
            raise ConfigError("config.task_mismatch", dataset=Code(repr(self.dataset)), kind=Code(info.task),
                              task=Code(repr(self.task)))
        loss = self.resolved_loss
        fits = CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES
        if loss not in fits:
            raise ConfigError("config.loss_mismatch", loss=Code(repr(loss)), task=Code(task),
                              losses=Code(", ".join(fits)))
        if self.label_smoothing and loss != "cross_entropy":
            raise ConfigError("config.label_smoothing")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ConfigError("config.nesterov")
        if self.augment and len(info.input_shape) != 3:
            raise ConfigError("config.augment", dataset=Code(repr(self.dataset)))
        if info.image and self.val_size >= info.train_size:
            raise ConfigError("config.val_size", size=self.val_size, dataset=Code(repr(self.dataset)),
                              n=info.train_size)
        # The model: a known, trainable preset or a valid spec, matching the data, under the cap.
        if self.model_spec is None:
            if self.preset not in PRESETS:
                raise ConfigError("config.unknown_preset", preset=Code(repr(self.preset)),
                                  presets=Code(", ".join(PRESETS)))
            preset = PRESETS[self.preset]
            if preset.task == "shapes":
                raise ConfigError("config.shape_demo", preset=Code(repr(self.preset)))
            if preset.task != task:
                fitting = [k for k, d in DATASETS.items() if d.task == preset.task]
                raise ConfigError("config.preset_task", preset=Code(repr(self.preset)), kind=Code(preset.task),
                                  dataset=Code(repr(self.dataset)), task=Code(task), datasets=Code(", ".join(fitting)))
        samples = min(info.train_size, self.limit_train or info.train_size)
        if samples < self.processes:
            raise ConfigError("config.processes_data", processes=self.processes, dataset=Code(repr(self.dataset)),
                              n=samples)
        spec = self.spec()
        if spec.input_shape != info.input_shape:
            raise ConfigError("config.input_shape", shape=Code(str(list(spec.input_shape))),
                              dataset=Code(repr(self.dataset)), expected=Code(str(list(info.input_shape))))
        try:
            out_shape = infer_shapes(spec, batch=2)[-1].output_shape if spec.layers else (2, *spec.input_shape)
        except SpecError as exc:
            raise ConfigError("config.model", error=exc) from None
        if tuple(out_shape) != (2, info.outputs):
            code = "config.outputs_classes" if task == "classification" else "config.outputs_targets"
            raise ConfigError(code, shape=Code(str(tuple(out_shape[1:]))), dataset=Code(repr(self.dataset)),
                              n=info.outputs)
        self._check_params(parameter_count(spec), limits)
        return self

    def _check_run_caps(self, limits: Limits) -> None:
        if self.epochs > limits.max_epochs:
            raise ConfigError("config.epochs_cap", epochs=self.epochs, cap=limits.max_epochs,
                              var=Code("PYTORCH_LAB_MAX_EPOCHS"))
        if self.batch_size > limits.max_batch_size:
            raise ConfigError("config.batch_cap", batch=self.batch_size, cap=limits.max_batch_size,
                              var=Code("PYTORCH_LAB_MAX_BATCH"))

    @staticmethod
    def _check_params(params: int, limits: Limits) -> None:
        if params > limits.max_params:
            raise ConfigError("config.params_cap", n=params, cap=limits.max_params, var=Code("PYTORCH_LAB_MAX_PARAMS"))
        if params == 0:
            raise ConfigError("config.no_params")

    def validate(self, limits: Limits | None = None) -> TrainConfig:  # type: ignore[override]
        """Returns self: a config is validated when it is made, under the environment's caps;
        other ``limits`` (a test's, a trainer's) are checked here."""
        if limits is not None:
            self._check_run_caps(limits)
            self._check_params(parameter_count(self.spec()), limits)
        return self

    # ---------------------------------------------------------------- (de)serialization
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        """A config from a plain dict (e.g. a JSON file), validated; unknown keys are refused by name.
        A ``TrainConfig`` passes as it is (it is frozen and already valid)."""
        if isinstance(data, TrainConfig):
            return data
        if not isinstance(data, dict):
            raise ConfigError("config.not_object")
        unknown = sorted(str(k) for k in data if not isinstance(k, str))
        if unknown:
            raise ConfigError("config.unknown_keys", keys=Code(", ".join(unknown)), known=Code(", ".join(FIELDS)))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(loads_user_json(text, 500_000, "json.config", ConfigError))  # coded json.* errors

    def replace(self, **changes: Any) -> TrainConfig:
        """A new config with some fields changed, validated (the model spec is not checked again)."""
        return self.from_dict({**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    @classmethod
    def from_stored(cls, data: Any) -> TrainConfig:
        """A config stored by a run or a checkpoint: the settings it lacks were added after it was made,
        so they take the values that reproduce how it trained then (``STORED_BEFORE``), not today's
        defaults; then validated like ``from_dict``."""
        if isinstance(data, dict) and all(isinstance(k, str) for k in data):
            data = {**{k: v for k, v in STORED_BEFORE.items() if k not in data}, **data}
        return cls.from_dict(data)

    @staticmethod
    def model_of(config: Mapping[str, Any]) -> ModelSpec:
        """The model spec of a stored config (its ``model_spec``, else its preset's), without checking the
        rest of it: a checkpoint's model can be rebuilt even if the lab's caps changed since."""
        spec = config.get("model_spec")
        return ModelSpec.parse(spec) if spec is not None else preset_spec(config.get("preset", DEFAULT_PRESET))

    # ---------------------------------------------------------------- resolved values
    @property
    def validation_size(self) -> int:
        """Images held out for validation: ``val_size`` on an image dataset, else 0."""
        return self.val_size if self.dataset_info.image else 0

    @property
    def resolved_task(self) -> str:
        return self.dataset_info.task if self.task == "auto" else self.task

    @property
    def resolved_loss(self) -> str:
        if self.loss != "auto":
            return self.loss
        return "cross_entropy" if self.resolved_task == "classification" else "mse"

    def spec(self) -> ModelSpec:
        """The model spec (``model_spec`` if given, else the preset's)."""
        if self.model_spec is not None:
            return self.model_spec
        return preset_spec(self.preset)


FIELDS: tuple[str, ...] = tuple(TrainConfig.model_fields)

# What a stored config (a run's, a checkpoint's) made before these settings existed trained with:
# no validation split, no weight averaging, no test-time augmentation, every partial batch.
STORED_BEFORE: dict[str, Any] = {"val_size": 0, "ema": 0.0, "tta": False, "drop_last": False}


def field_default(name: str) -> Any:
    """A setting's default value (what ``TrainConfig()`` holds)."""
    return TrainConfig.model_fields[name].default


def _bounds(name: str) -> tuple[Any, Any]:
    meta = TrainConfig.model_fields[name].metadata
    return (next(m.ge for m in meta if hasattr(m, "ge")), next(m.le for m in meta if hasattr(m, "le")))


def config_error(exc: ValidationError) -> ConfigError | LabError:
    """One error in the lab's words for pydantic's errors about a config."""
    errors = exc.errors(include_url=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return ConfigError("config.unknown_keys", keys=Code(", ".join(unknown)), known=Code(", ".join(FIELDS)))
    err = errors[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, LabError):
        return cause
    if not err["loc"] or err["loc"][0] not in TrainConfig.model_fields:
        return ConfigError("config.not_object")
    name, kind, value = str(err["loc"][0]), err["type"], err.get("input")
    field = TrainConfig.model_fields[name]
    where = Code(name)
    if kind == "literal_error":
        return ConfigError("config.choice", name=where, choices=Code(", ".join(get_args(field.annotation))),
                           got=Code(repr(value)))
    if kind == "bool_type":
        return ConfigError("config.bool", name=where, got=Code(repr(value)))
    if kind.startswith("string_"):
        return ConfigError("config.name", name=where, got=Code(repr(value)))
    if kind in ("greater_than_equal", "less_than_equal"):
        lo, hi = _bounds(name)
        return ConfigError("config.int_range" if field.annotation is int else "config.float_range",
                           name=where, lo=lo, hi=hi, value=value)
    if kind == "finite_number":
        return ConfigError("config.finite", name=where, value=value)
    if field.annotation is int:
        return ConfigError("config.int", name=where, got=Code(repr(value)))
    return ConfigError("config.number", name=where, got=Code(repr(value)))


# What the tutorials' recipes keep from before the default recipe's tricks.
_PLAIN: dict[str, Any] = {"precision": "fp32", "ema": 0.0, "tta": False, "drop_last": False}


def steps_per_epoch(samples: int, batch_size: int, accum_steps: int = 1, processes: int = 1,
                    drop_last: bool = False) -> int:
    """Optimizer steps in one epoch, as the trainer takes them: each of ``processes`` processes trains on
    its shard (``samples // processes``) in micro-batches of ``batch_size // processes // accum_steps``
    (the last partial one dropped with ``drop_last``) and steps once every ``accum_steps`` micro-batches
    (the last step of an epoch may take fewer)."""
    shard = samples // max(1, processes)
    micro = max(1, max(1, batch_size // max(1, processes)) // max(1, accum_steps))
    batches = shard // micro if drop_last and shard >= micro else -(-shard // micro)
    return -(-batches // max(1, accum_steps))


# The tutorials' plain MNIST recipe (R3 and the examples built on it): the CNN (M5), Adam lr 1e-3,
# CrossEntropyLoss, batch 64, a constant lr, 5 epochs; no weight decay and no augmentation, and none of
# the default recipe's tricks (fp32, the plain weights evaluated, every batch). Like every run on
# images, it holds out the validation split (best.pt is chosen on it).
_TUTORIAL_CNN: dict[str, Any] = dict(preset="cnn", optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none",
                                     batch_size=64, epochs=5, augment=False, **_PLAIN)

# Named recipes: the settings that differ from TrainConfig()'s (made, and checked, by ``recipe``).
RECIPES: dict[str, dict[str, Any]] = {
    # The lab's default: fast MNIST on the bundled digits (see TrainConfig's doc and BENCHMARKS.md).
    "default": {},
    # The tutorials' recipes are for teaching: plain fp32 training of the plain weights, every batch,
    # no weight averaging or test-time augmentation (the lab's tricks stay out of them).
    # R1: y = 2x, Linear(1, 1), MSELoss, SGD lr .01, 100 epochs on [1, 2, 3] -> [2, 4, 6].
    "r1": dict(preset="linear", dataset="linear", loss="mse", optimizer="sgd", lr=0.01, momentum=0.0,
               weight_decay=0.0, scheduler="none", batch_size=3, epochs=100, augment=False, **_PLAIN),
    # R2: NeuralNet(10, 20, 1), MSELoss, Adam lr .001, 100 epochs on synthetic data.
    "r2": dict(preset="neural_net", dataset="synthetic", loss="mse", optimizer="adam", lr=1e-3,
               weight_decay=0.0, scheduler="none", batch_size=64, epochs=100, augment=False, **_PLAIN),
    # R3: the tutorials' CNN (M5) with their plain recipe, unchanged (over 90% on the bundled digits).
    "r3": dict(_TUTORIAL_CNN),
    # R4: the same with the tutorials' SGD(lr=0.01, momentum=0.9) and a constant lr.
    "r4": dict(_TUTORIAL_CNN, optimizer="sgd", lr=0.01, momentum=0.9),
    # R5: the same with a binary cross-entropy loss over one-hot digits (BCEWithLogitsLoss).
    "r5": dict(_TUTORIAL_CNN, loss="bce_with_logits"),
    # R8: the same trained by 2 processes with DistributedDataParallel (each takes half of every batch).
    "r8": dict(_TUTORIAL_CNN, processes=2),
    # R9: the same with gradient accumulation: each step of 64 sums the gradients of 4 micro-batches of 16.
    "r9": dict(_TUTORIAL_CNN, accum_steps=4),
}


def recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        raise ConfigError("config.unknown_recipe", recipe=Code(repr(name)), recipes=Code(", ".join(RECIPES)))
    return TrainConfig(**RECIPES[name])
