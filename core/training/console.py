"""The trainer in a terminal: progress lines, and config flags generated from the config schema."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from core.ml.spec import ModelSpec, SpecError
from core.ml.zoo import PRESETS
from core.training.config import ConfigError, TrainConfig, recipe
from core.training.events import EpochEvent, StepEvent


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

    def step(self, ev: StepEvent) -> None:
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


def epoch_line(ev: EpochEvent, epochs: int) -> str:
    test_acc, train_acc, val_acc = ev["test_acc"], ev["train_acc"], ev.get("val_acc")
    acc = f" test_acc {_fmt(test_acc and test_acc * 100, '.2f')}%" if test_acc is not None else ""
    train = f" train_acc {train_acc * 100:.2f}%" if train_acc is not None else ""
    val = ""
    if ev.get("val_loss") is not None:
        val = f" val_loss {_fmt(ev['val_loss'], '.4f')}" + (f" val_acc {val_acc * 100:.2f}%" if val_acc is not None
                                                            else "")
    return (f"epoch {ev['epoch']}/{epochs} train_loss {_fmt(ev['train_loss'], '.4f')}{train}{val} "
            f"test_loss {_fmt(ev['test_loss'], '.4f')}{acc} ({ev['seconds']:.1f}s)")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from the field: choices from its Literal, --x/--no-x
    for a bool, N for an int, X for a float; the model spec as JSON or @file."""
    group = parser.add_argument_group("config (override the recipe / --config file)")
    for name, field in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = field.annotation
        if kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        elif get_origin(kind) is Literal:
            group.add_argument(flag, dest=name, choices=get_args(kind), default=argparse.SUPPRESS)
        elif kind is int:
            group.add_argument(flag, dest=name, type=int, default=argparse.SUPPRESS, metavar="N")
        elif kind is float:
            group.add_argument(flag, dest=name, type=float, default=argparse.SUPPRESS, metavar="X")
        elif name == "dataset":
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS, metavar="NAME",
                               help="digits8k, mnist, fashion_mnist, linear, synthetic, or a dataset added with "
                                    "python -m core.datasets add (python -m core.datasets list)")
        elif ModelSpec in get_args(kind):
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS, metavar="JSON|@FILE",
                               help="a model spec as JSON, or @path to a JSON file")
        else:
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS,
                               help=f"one of {', '.join(k for k, p in PRESETS.items() if p.task != 'shapes')}")


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The config the flags describe: ``--config`` file, else ``--recipe``, else ``base`` (a stored run's
    config, say), else the default recipe; with every config flag given applied on top."""
    if base is None or args.recipe:
        base = recipe(args.recipe or "default")
    if args.config:
        path = Path(args.config)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
        base = TrainConfig.from_json(text)
    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if hasattr(args, name)}
    if isinstance(overrides.get("model_spec"), str):
        text = overrides["model_spec"]
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text()
            except OSError as exc:
                raise ValueError(f"cannot read the model spec file {text[1:]}: {exc.strerror or exc}") from None
        try:
            overrides["model_spec"] = ModelSpec.from_json(text)
        except SpecError as exc:
            raise ConfigError("config.model_spec_json", error=exc) from None
    return base.replace(**{**user_dataset_defaults(overrides, bool(args.config)), **overrides})


def user_dataset_defaults(overrides: dict[str, Any], from_file: bool) -> dict[str, Any]:
    """What ``--dataset NAME`` of a learner's dataset brings when no model is named: a small CNN sized to its
    images and classes (``core.ml.datasets.dataset_model``), the validation split its upload chose, no
    augmentation (the lab's affine suits digits, not every picture)."""
    from core.ml.data import find_dataset
    from core.ml.datasets import dataset_model

    info = find_dataset(overrides.get("dataset"))
    if info is None or not info.user or from_file or {"preset", "model_spec"} & set(overrides):
        return {}
    return {"model_spec": dataset_model(info.input_shape, info.outputs), "val_size": info.val_size,
            "augment": False}
