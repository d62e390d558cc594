"""Model specs and the tutorials' model zoo.

A model is data: a spec ``{"name": str, "input_shape": [C, H, W] or [F] or [T, F],
"layers": [layer, ...]}`` where a layer is ``{"type": str, "args": {...}}`` with literal
arguments, an optional ``"name"`` (the child's attribute name, as in the tutorials'
classes) and, for ``Sequential``, nested ``"layers"``. The spec is validated against each
layer type's schema, its parameter count is checked on the meta device before any memory
is allocated, and it builds an ``nn.Module`` whose printed repr matches PyTorch's.
"""
from __future__ import annotations

import copy
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

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


# --------------------------------------------------------------------------- modules
class ResBlock(nn.Module):
    """The tutorials' residual block: conv-BN-ReLU-conv-BN plus the identity, then ReLU."""

    def __init__(self, channels: int, batchnorm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batchnorm)
        self.bn2 = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class _RecurrentOutput:
    """Mixin picking which output of an LSTM/GRU feeds the next layer.

    ``last``: the last time step of the output sequence (N, H*dirs); ``sequence``: the
    whole output (N, T, H*dirs); ``hidden``: the final hidden state of the top layer (N, H).
    """

    output: str

    def forward(self, x):  # type: ignore[override]
        out, state = super().forward(x)
        if self.output == "sequence":
            return out
        if self.output == "last":
            return out[:, -1]
        h = state[0] if isinstance(state, tuple) else state
        return h[-1]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", output={self.output}"

    def _get_name(self) -> str:
        return type(self).__mro__[2].__name__  # print as LSTM / GRU, as PyTorch does


class LSTM(_RecurrentOutput, nn.LSTM):
    def __init__(self, *args, output: str = "last", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.output = output


class GRU(_RecurrentOutput, nn.GRU):
    def __init__(self, *args, output: str = "last", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.output = output


class SpecModel(nn.Sequential):
    """An ``nn.Sequential`` that prints under the spec's name (e.g. ``NeuralNetwork(...)``).

    Being a plain ``Sequential`` subclass keeps ``state_dict`` keys, tracing and export
    as PyTorch users know them.
    """

    def __init__(self, name: str, modules: "OrderedDict[str, nn.Module]") -> None:
        super().__init__(modules)
        self.spec_name = name

    def _get_name(self) -> str:
        return self.spec_name


def _build_layer(layer: dict) -> nn.Module:
    kind, a = layer["type"], dict(layer["args"])
    for key in ("kernel_size", "stride", "padding", "output_size", "normalized_shape"):
        if isinstance(a.get(key), list):
            a[key] = tuple(a[key])
    if kind == "Sequential":
        return nn.Sequential(_children(layer["layers"]))
    if kind in ("LSTM", "GRU"):
        if a.get("dropout", 0.0) and a.get("num_layers", 1) == 1:
            a["dropout"] = 0.0  # PyTorch warns: dropout only acts between stacked layers
        cls = LSTM if kind == "LSTM" else GRU
        return cls(batch_first=True, **a)
    if kind == "ResBlock":
        return ResBlock(**a)
    return getattr(nn, kind)(**a)


def _children(layers: list[dict]) -> "OrderedDict[str, nn.Module]":
    children: OrderedDict[str, nn.Module] = OrderedDict()
    for i, layer in enumerate(layers):
        children[layer.get("name", str(i))] = _build_layer(layer)
    return children


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_count(spec: dict) -> int:
    """Parameters of a spec, counted on the meta device (no memory is allocated)."""
    spec = validate_spec(spec)
    with torch.device("meta"):
        model = SpecModel(spec["name"], _children(spec["layers"]))
    return count_parameters(model)


def activation_count(spec: dict) -> int:
    """Elements of one sample's input plus every leaf layer's output, from a meta-device
    forward pass (no memory is allocated). A stack with a shape error counts up to it."""
    spec = validate_spec(spec)
    counts = [math.prod(spec["input_shape"])]

    def hook(module, inputs, output) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                counts.append(t[0].numel() if t.dim() else 1)

    if counts[0] > MAX_SAMPLE_ACTIVATIONS:
        return counts[0]
    with torch.device("meta"):
        model = SpecModel(spec["name"], _children(spec["layers"]))
        for module in model.modules():
            if next(module.children(), None) is None:
                module.register_forward_hook(hook)
        try:
            model(torch.empty(1, *spec["input_shape"]))
        except Exception:  # a shape error: infer_shapes reports it; count what ran
            pass
    return sum(counts)


def check_batch(spec: dict, batch: int) -> None:
    """Refuse (SpecError) a batch whose activations would pass ``MAX_BATCH_ACTIVATIONS``."""
    n = activation_count(spec)
    if batch * n > MAX_BATCH_ACTIVATIONS:
        raise SpecError(f"a batch of {batch:,} would put {batch * n:,} activation elements through the model, "
                        f"over the cap of {MAX_BATCH_ACTIVATIONS:,}; use a batch of at most "
                        f"{max(1, MAX_BATCH_ACTIVATIONS // n):,}")


def checked_spec(spec: dict, param_cap: int = DEFAULT_PARAM_CAP) -> dict:
    """``validate_spec`` plus the parameter and activation caps, checked before any allocation."""
    spec = validate_spec(spec)
    n = parameter_count(spec)
    if n > param_cap:
        raise SpecError(f"the model has {n:,} parameters, over the cap of {param_cap:,}; make layers smaller")
    acts = activation_count(spec)
    if acts > MAX_SAMPLE_ACTIVATIONS:
        raise SpecError(f"one sample would put {acts:,} activation elements through the model (its input and "
                        f"every layer's output), over the cap of {MAX_SAMPLE_ACTIVATIONS:,}; use a smaller "
                        "input shape, fewer channels or more pooling")
    return spec


def build_model(spec: dict, seed: int | None = 0, param_cap: int = DEFAULT_PARAM_CAP) -> nn.Module:
    """Build the ``nn.Module`` of a spec after validation and the parameter cap check."""
    spec = checked_spec(spec, param_cap)
    if seed is not None:
        torch.manual_seed(seed)
    return SpecModel(spec["name"], _children(spec["layers"]))


@dataclass
class ShapeStep:
    index: str
    type: str
    output_shape: tuple[int, ...]


class ShapeError(SpecError):
    def __init__(self, message: str, index: str, layer_type: str, got: tuple[int, ...]):
        super().__init__(message)
        self.index, self.layer_type, self.got = index, layer_type, got


def _suggest(layer: dict, got: tuple[int, ...]) -> str:
    kind, a = layer["type"], layer["args"]
    if kind == "Linear":
        if len(got) > 2 and got[-1] != a["in_features"]:
            flat = math.prod(got[1:])
            return (f"Linear expects {a['in_features']} input features but gets shape {got}: add a Flatten "
                    f"before it and set in_features={flat}, or set in_features={got[-1]}")
        return f"Linear expects {a['in_features']} inputs: set in_features={got[-1]}"
    if kind in ("Conv1d", "Conv2d"):
        dims = 3 if kind == "Conv1d" else 4
        if len(got) not in (dims - 1, dims):
            return f"{kind} needs input (N, C, {'L' if dims == 3 else 'H, W'}), got {got}"
        if len(got) == dims and got[1] != a["in_channels"]:
            return f"{kind} expects {a['in_channels']} input channels: set in_channels={got[1]}"
        return f"{kind} kernel is larger than its input {got}: use padding or a smaller kernel"
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return f"{kind} expects {a['num_features']} features: set num_features={got[1] if len(got) > 1 else got}"
    if kind == "LayerNorm":
        return f"LayerNorm normalizes the last dims {a['normalized_shape']}: set normalized_shape={got[-1]}"
    if kind in ("LSTM", "GRU"):
        if len(got) != 3:
            return f"{kind} needs input (N, T, features), got {got}: use Flatten(start_dim=1, end_dim=2) on images"
        return f"{kind} expects {a['input_size']} features per step: set input_size={got[-1]}"
    if kind == "ResBlock":
        return f"ResBlock needs (N, {a['channels']}, H, W): set channels={got[1] if len(got) > 1 else got}"
    if kind in ("MaxPool2d", "AvgPool2d"):
        return f"{kind} kernel is larger than its input {got}: use a smaller kernel_size"
    return f"{kind} cannot take input of shape {got}"


def infer_shapes(spec: dict, batch: int = 2) -> list[ShapeStep]:
    """Output shape of every top-level layer for a batch of the spec's input shape.

    Runs on the meta device, so nothing is allocated. A mismatch raises ``ShapeError``
    naming the layer, the shape it got, and the fix.
    """
    spec = validate_spec(spec)
    x = torch.empty(batch, *spec["input_shape"], device="meta")
    steps: list[ShapeStep] = []
    with torch.device("meta"):
        for i, layer in enumerate(spec["layers"]):
            module = _build_layer(layer)
            got = tuple(x.shape)
            try:
                x = module(x)
            except Exception as exc:  # torch's shape errors vary by op; we re-word them
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                raise ShapeError(
                    f"layer {i} ({layer['type']}) got input shape {got}: {_suggest(layer, got)}. "
                    f"PyTorch says: {first}",
                    str(i), layer["type"], got) from None
            steps.append(ShapeStep(str(i), layer["type"], tuple(x.shape)))
    return steps


# --------------------------------------------------------------------------- zoo
def L(kind: str, name: str | None = None, layers: list | None = None, **args) -> dict:
    layer: dict[str, Any] = {"type": kind, "args": args}
    if name:
        layer["name"] = name
    if layers is not None:
        layer["layers"] = layers
    return layer


@dataclass(frozen=True)
class Preset:
    key: str
    example: str  # SEED_EXAMPLES id, "" for the lab's own
    title: str
    task: str  # "classification", "regression" or "shapes" (a shape demo, not trained)
    spec: dict
    params: int  # the count the tutorials state (checked by the tests)
    note: str = ""


def _preset(key, example, title, task, name, input_shape, layers, params, note=""):
    return Preset(key, example, title, task, {"name": name, "input_shape": input_shape, "layers": layers},
                  params, note)


_MNIST = [1, 28, 28]
PRESETS: dict[str, Preset] = {p.key: p for p in [
    _preset("linear", "M1", "LinearModel: Linear(1, 1)", "regression", "LinearModel", [1],
            [L("Linear", "linear", in_features=1, out_features=1)], 2),
    _preset("neural_net", "M2", "NeuralNet(10, 20, 1)", "regression", "NeuralNet", [10],
            [L("Linear", "fc1", in_features=10, out_features=20), L("ReLU", "relu"),
             L("Linear", "fc2", in_features=20, out_features=1)], 241),
    _preset("mlp_sequential", "M3", "Sequential MLP 10-50-20-1", "regression", "Sequential", [10],
            [L("Linear", in_features=10, out_features=50), L("ReLU"), L("Linear", in_features=50, out_features=20),
             L("ReLU"), L("Linear", in_features=20, out_features=1)], 1591),
    _preset("neural_network", "M4", "NeuralNetwork: Flatten + 784-512-512-10", "classification",
            "NeuralNetwork", _MNIST,
            [L("Flatten", "flatten"),
             L("Sequential", "linear_relu_stack", layers=[
                 L("Linear", in_features=784, out_features=512), L("ReLU"),
                 L("Linear", in_features=512, out_features=512), L("ReLU"),
                 L("Linear", in_features=512, out_features=10)])], 669706),
    _preset("cnn", "M5", "CNN: Conv(1,16) + pool + Linear", "classification", "CNN", _MNIST,
            [L("Conv2d", "conv1", in_channels=1, out_channels=16, kernel_size=3, padding=1), L("ReLU", "relu"),
             L("MaxPool2d", "pool", kernel_size=2), L("Flatten", "flatten"),
             L("Linear", "fc", in_features=16 * 14 * 14, out_features=10)], 31530),
    _preset("simple_cnn", "M6", "SimpleCNN: two conv blocks + Linear", "classification", "SimpleCNN", _MNIST,
            [L("Conv2d", "conv1", in_channels=1, out_channels=32, kernel_size=3, padding=1), L("ReLU", "relu1"),
             L("MaxPool2d", "pool1", kernel_size=2),
             L("Conv2d", "conv2", in_channels=32, out_channels=64, kernel_size=3, padding=1), L("ReLU", "relu2"),
             L("MaxPool2d", "pool2", kernel_size=2), L("Flatten", "flatten"),
             L("Linear", "fc", in_features=64 * 7 * 7, out_features=10)], 50186),
    _preset("cnn_rgb16", "M7", "CNN for 3x16x16 input", "shapes", "CNN3", [3, 16, 16],
            [L("Conv2d", "conv", in_channels=3, out_channels=16, kernel_size=3), L("ReLU", "relu"),
             L("Flatten", "flatten"), L("Linear", "fc", in_features=16 * 14 * 14, out_features=10)], 31818,
            "Linear(16*14*14, 10) fits only 16x16 inputs: a 3x3 conv without padding gives 14x14."),
    _preset("resblock_net", "M8", "NetWithResBlock: Conv + ResBlock(16) + pool + Linear", "classification",
            "NetWithResBlock", _MNIST,
            [L("Conv2d", "conv", in_channels=1, out_channels=16, kernel_size=3, padding=1), L("ReLU", "relu"),
             L("ResBlock", "resblock", channels=16), L("AdaptiveAvgPool2d", "pool", output_size=1),
             L("Flatten", "flatten"), L("Linear", "fc", in_features=16, out_features=10)], 5002),
    _preset("conv2d_rgb", "M9", "Conv2d(3, 64, 3, 1, 1) on 3x32x32", "shapes", "Conv2dDemo", [3, 32, 32],
            [L("Conv2d", in_channels=3, out_channels=64, kernel_size=3, stride=1, padding=1)], 1792),
    _preset("conv1d", "M9", "Conv1d(2, 32, 5) on 2x100", "shapes", "Conv1dDemo", [2, 100],
            [L("Conv1d", in_channels=2, out_channels=32, kernel_size=5)], 352),
    _preset("lstm_seq", "M9", "LSTM(10, 20, 2 layers, dropout .2) on 5 steps", "shapes", "LSTMDemo", [5, 10],
            [L("LSTM", input_size=10, hidden_size=20, num_layers=2, dropout=0.2, output="sequence")], 5920),
    _preset("gru_seq", "M9", "GRU(10, 20, 2 layers) on 5 steps", "shapes", "GRUDemo", [5, 10],
            [L("GRU", input_size=10, hidden_size=20, num_layers=2, output="sequence")], 4440),
    _preset("lstm_mnist", "", "LSTM classifier reading image rows", "classification", "RowLSTM", _MNIST,
            [L("Flatten", "rows", start_dim=1, end_dim=2),
             L("LSTM", "lstm", input_size=28, hidden_size=128, output="last"),
             L("Linear", "fc", in_features=128, out_features=10)], 82186),
    _preset("gru_mnist", "", "GRU classifier reading image rows", "classification", "RowGRU", _MNIST,
            [L("Flatten", "rows", start_dim=1, end_dim=2),
             L("GRU", "gru", input_size=28, hidden_size=128, output="last"),
             L("Linear", "fc", in_features=128, out_features=10)], 61962),
    _preset("lab_cnn", "", "Lab CNN: the fast MNIST recipe", "classification", "LabCNN", _MNIST,
            [L("Conv2d", in_channels=1, out_channels=32, kernel_size=5, padding=2, bias=False),
             L("BatchNorm2d", num_features=32), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Conv2d", in_channels=32, out_channels=64, kernel_size=3, padding=1, bias=False),
             L("BatchNorm2d", num_features=64), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Conv2d", in_channels=64, out_channels=128, kernel_size=3, padding=1, bias=False),
             L("BatchNorm2d", num_features=128), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Flatten"), L("Dropout", p=0.3),
             L("Linear", in_features=128 * 3 * 3, out_features=10)], 104938,
            "Three conv-BN-ReLU-pool blocks (28 -> 14 -> 7 -> 3) and one Linear: ~99% on the bundled "
            "digits in 8 epochs on 2 CPU cores (bench/recipe.py)."),
]}
DEFAULT_PRESET = "lab_cnn"


def preset_spec(key: str) -> dict:
    if key not in PRESETS:
        raise SpecError(f"unknown preset {key!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[key].spec)


def zoo_rows() -> list[dict]:
    """One row per preset: key, example id, title, input/output shapes (batch 1), parameters."""
    rows = []
    for key, p in PRESETS.items():
        steps = infer_shapes(p.spec, batch=1)
        rows.append({"preset": key, "example": p.example or "—", "title": p.title,
                     "input": str(tuple([1, *p.spec["input_shape"]])),
                     "output": str(steps[-1].output_shape), "params": parameter_count(p.spec)})
    return rows
