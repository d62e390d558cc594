"""Model specs and the tutorials' model zoo.

A model is data: a spec ``{"name": str, "input_shape": [C, H, W] or [F] or [T, F],
"layers": [layer, ...]}`` where a layer is ``{"type": str, "args": {...}}`` with literal
arguments, an optional ``"name"`` (the child's attribute name, as in the tutorials'
classes) and, for ``Sequential``, nested ``"layers"``. The spec is validated against each
layer type's schema, its parameter count is checked on the meta device before any memory
is allocated, and it builds an ``nn.Module`` whose printed repr matches PyTorch's.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_PARAM_CAP = 50_000_000
MAX_LAYERS = 200
MAX_DIM = 65_536  # any single size argument (features, channels, hidden size)
# Elements one sample puts through the model (its input plus every layer's output), counted
# on the meta device: a small model on a huge input (or with a huge feature map) is refused
# before a forward pass could allocate gigabytes. The largest preset needs ~150,000.
MAX_SAMPLE_ACTIVATIONS = 4_000_000
# The same for a whole batch (forward demo, profiler): ~1 GB in float32.
MAX_BATCH_ACTIVATIONS = 256_000_000


class SpecError(ValueError):
    """A model spec that cannot be built; the message names the layer and the fix."""


# --------------------------------------------------------------------------- schemas
@dataclass(frozen=True)
class Arg:
    kind: str  # "int", "float", "bool", "ints" (int or list of ints), "choice"
    default: Any = None  # None with required=True means: must be given
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()


def _i(lo=1, hi=MAX_DIM, default=None, required=False):
    return Arg("int", default, required, lo, hi)


SIZE = _i(required=True)
KERNEL = Arg("ints", None, True, 1, 64)

SCHEMAS: dict[str, dict[str, Arg]] = {
    "Linear": {"in_features": SIZE, "out_features": SIZE, "bias": Arg("bool", True)},
    "Conv1d": {"in_channels": SIZE, "out_channels": SIZE, "kernel_size": KERNEL,
               "stride": Arg("ints", 1, False, 1, 64), "padding": Arg("ints", 0, False, 0, 64),
               "bias": Arg("bool", True)},
    "Conv2d": {"in_channels": SIZE, "out_channels": SIZE, "kernel_size": KERNEL,
               "stride": Arg("ints", 1, False, 1, 64), "padding": Arg("ints", 0, False, 0, 64),
               "bias": Arg("bool", True)},
    "MaxPool2d": {"kernel_size": KERNEL, "stride": Arg("ints", None, False, 1, 64),
                  "padding": Arg("ints", 0, False, 0, 32)},
    "AvgPool2d": {"kernel_size": KERNEL, "stride": Arg("ints", None, False, 1, 64),
                  "padding": Arg("ints", 0, False, 0, 32)},
    "AdaptiveAvgPool2d": {"output_size": Arg("ints", None, True, 1, 1024)},
    "BatchNorm1d": {"num_features": SIZE},
    "BatchNorm2d": {"num_features": SIZE},
    "LayerNorm": {"normalized_shape": Arg("ints", None, True, 1, MAX_DIM)},
    "Dropout": {"p": Arg("float", 0.5, False, 0.0, 1.0)},
    "ReLU": {},
    "LeakyReLU": {"negative_slope": Arg("float", 0.01, False, 0.0, 1.0)},
    "Sigmoid": {},
    "Tanh": {},
    "Softmax": {"dim": Arg("int", -1, False, -8, 8)},
    "Flatten": {"start_dim": Arg("int", 1, False, -8, 8), "end_dim": Arg("int", -1, False, -8, 8)},
    "LSTM": {"input_size": SIZE, "hidden_size": SIZE, "num_layers": _i(1, 16, 1),
             "dropout": Arg("float", 0.0, False, 0.0, 1.0), "bidirectional": Arg("bool", False),
             "output": Arg("choice", "last", False, choices=("last", "sequence", "hidden"))},
    "GRU": {"input_size": SIZE, "hidden_size": SIZE, "num_layers": _i(1, 16, 1),
            "dropout": Arg("float", 0.0, False, 0.0, 1.0), "bidirectional": Arg("bool", False),
            "output": Arg("choice", "last", False, choices=("last", "sequence", "hidden"))},
    "ResBlock": {"channels": SIZE, "batchnorm": Arg("bool", True)},
    "Sequential": {},
}
LAYER_TYPES = tuple(SCHEMAS)


def _check_value(layer: str, name: str, arg: Arg, value: Any) -> Any:
    where = f"{layer}.{name}"
    if arg.kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{where} must be true or false, got {value!r}")
        return value
    if arg.kind == "choice":
        if value not in arg.choices:
            raise SpecError(f"{where} must be one of {', '.join(arg.choices)}, got {value!r}")
        return value
    if arg.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SpecError(f"{where} must be a finite number, got {value!r}")
        if not (arg.lo <= value <= arg.hi):
            raise SpecError(f"{where} must be between {arg.lo} and {arg.hi}, got {value}")
        return float(value)
    values = value if (arg.kind == "ints" and isinstance(value, list)) else [value]
    if arg.kind == "ints" and isinstance(value, list) and not 1 <= len(value) <= 3:
        raise SpecError(f"{where} must be an integer or a list of 1 to 3 integers, got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(f"{where} must be an integer, got {v!r}")
        if not (arg.lo <= v <= arg.hi):
            raise SpecError(f"{where} must be between {int(arg.lo)} and {int(arg.hi)}, got {v}")
    return list(values) if isinstance(value, list) else value


def _check_layer(layer: Any, path: str, depth: int, count: list[int]) -> dict:
    if depth > 4:
        raise SpecError(f"{path}: Sequential blocks nest at most 4 deep")
    if not isinstance(layer, dict):
        raise SpecError(f"{path} must be an object like {{\"type\": \"Linear\", \"args\": {{...}}}}")
    unknown_keys = set(layer) - {"type", "args", "name", "layers"}
    if unknown_keys:
        raise SpecError(f"{path} has unknown keys: {', '.join(sorted(map(str, unknown_keys)))}")
    kind = layer.get("type")
    if kind not in SCHEMAS:
        raise SpecError(f"{path}: unknown layer type {kind!r}; known types: {', '.join(LAYER_TYPES)}")
    count[0] += 1
    if count[0] > MAX_LAYERS:
        raise SpecError(f"a spec may have at most {MAX_LAYERS} layers")
    where = f"{path} ({kind})"
    args = layer.get("args", {}) or {}
    if not isinstance(args, dict):
        raise SpecError(f"{where}: args must be an object of name: value")
    schema = SCHEMAS[kind]
    extra = set(args) - set(schema)
    if extra:
        allowed = ", ".join(schema) or "no arguments"
        raise SpecError(f"{where}: unknown argument(s) {', '.join(sorted(map(str, extra)))}; allowed: {allowed}")
    clean: dict[str, Any] = {}
    for name, arg in schema.items():
        if name in args and args[name] is not None:
            clean[name] = _check_value(where, name, arg, args[name])
        elif arg.required:
            raise SpecError(f"{where}: argument {name} is required")
    out: dict[str, Any] = {"type": kind, "args": clean}
    if "name" in layer and layer["name"] is not None:
        name = layer["name"]
        if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_") and len(name) <= 40):
            raise SpecError(f"{where}: name must be a Python identifier not starting with '_', got {name!r}")
        out["name"] = name
    if kind == "Sequential":
        inner = layer.get("layers")
        if not isinstance(inner, list) or not inner:
            raise SpecError(f"{where}: a Sequential block needs a non-empty list of layers")
        out["layers"] = [_check_layer(x, f"{path}.{i}", depth + 1, count) for i, x in enumerate(inner)]
    elif "layers" in layer:
        raise SpecError(f"{where}: only Sequential blocks have nested layers")
    return out


def check_input_shape(input_shape: Any, max_dims: int = 4) -> tuple[int, ...]:
    """A model's input shape without the batch dimension: 1 to ``max_dims`` sizes in 1..4096."""
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple, torch.Size)) else None
    if (not shape or len(shape) > max_dims
            or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 4096 for s in shape)):
        raise SpecError(f"input_shape must be 1 to {max_dims} sizes between 1 and 4096, without the batch "
                        f"dimension; got {input_shape!r}")
    return shape


def validate_spec(spec: Any) -> dict:
    """A clean copy of ``spec`` or a ``SpecError`` naming what is wrong."""
    if not isinstance(spec, dict):
        raise SpecError("a model spec must be an object with name, input_shape and layers")
    unknown_keys = set(spec) - {"name", "input_shape", "layers"}
    if unknown_keys:
        raise SpecError(f"unknown spec keys: {', '.join(sorted(map(str, unknown_keys)))}")
    name = spec.get("name", "Model")
    if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_") and len(name) <= 40):
        raise SpecError(f"model name must be a Python identifier (letters, digits, _), got {name!r}")
    shape = spec.get("input_shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
            or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 4096 for s in shape)):
        raise SpecError(f"input_shape must be a list of 1 to 3 sizes between 1 and 4096 "
                        f"(without the batch dimension), got {shape!r}")
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise SpecError("layers must be a list")
    count = [0]
    clean = [_check_layer(layer, f"layer {i}", 0, count) for i, layer in enumerate(layers)]
    names = [x["name"] for x in clean if "name" in x]
    if len(names) != len(set(names)):
        raise SpecError("layer names must be unique")
    return {"name": name, "input_shape": list(shape), "layers": clean}


def spec_from_json(text: str) -> dict:
    if len(text) > 200_000:
        raise SpecError("the spec JSON is too long (max 200,000 characters)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:  # json.loads recurses once per [ or {
        raise SpecError("the spec JSON is nested too deeply") from None
    return validate_spec(data)


def spec_to_json(spec: dict) -> str:
    return json.dumps(validate_spec(spec), indent=2)
