"""The ``nn.Module``s a spec builds, and what is checked before building: parameters, activations, shapes."""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from core.ml.spec import DEFAULT_PARAM_CAP, MAX_BATCH_ACTIVATIONS, MAX_SAMPLE_ACTIVATIONS, SpecError, validate_spec


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

    def __init__(self, name: str, modules: OrderedDict[str, nn.Module]) -> None:
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


def _children(layers: list[dict]) -> OrderedDict[str, nn.Module]:
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
