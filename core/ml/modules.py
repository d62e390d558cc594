"""The ``nn.Module``s a spec builds, and what is checked before building: parameters, activations, shapes."""
from __future__ import annotations

import contextlib
import functools
import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import torch
from torch import nn
from torch.nn.modules.module import _addindent

from core.errors import Code, LabError, first_line
from core.ml.spec import (
    DEFAULT_PARAM_CAP,
    MAX_BATCH_ACTIVATIONS,
    MAX_SAMPLE_ACTIVATIONS,
    BatchNormArgs,
    ConvArgs,
    Layer,
    LayerNormArgs,
    LinearArgs,
    ModelSpec,
    RecurrentArgs,
    ResBlockArgs,
    SequentialLayer,
    SpecError,
)
from core.safe.budget import setting_name
from core.settings import load_settings


# --------------------------------------------------------------------------- modules
class ResBlock(nn.Module):
    """The tutorial's residual block: conv1 -> bn1 -> relu -> conv2 -> bn2, plus the input (the
    identity), then relu. ``bias=False`` or ``batchnorm=False`` are the lab's variations."""

    def __init__(self, channels: int, bias: bool = True, batchnorm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += identity
        out = self.relu(out)
        return out


class _RecurrentOutput:
    """Mixin picking which output of an LSTM/GRU feeds the next layer.

    ``last``: the last time step of the output sequence (N, H*dirs); ``sequence``: the
    whole output (N, T, H*dirs); ``hidden``: the final hidden state of the top layer (N, H).
    """

    output: str
    mode: str
    hidden_size: int
    num_layers: int
    bidirectional: bool

    def forward(self, input: torch.Tensor, hx: Any = None) -> torch.Tensor:
        if input.is_meta and hx is None:
            out, h = self._meta_outputs(input)
        else:
            out, state = cast(Any, super()).forward(input, hx)
            h = state[0] if isinstance(state, tuple) else state
        if self.output == "sequence":
            return out
        if self.output == "last":
            return out[:, -1]
        return h[-1]

    def _meta_outputs(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output sequence and final hidden state PyTorch would give, as meta tensors made
        from the shapes alone. On the meta device PyTorch's own forward steps through every
        time step (milliseconds each): 4,096 steps of 16 bidirectional layers took minutes.
        The same checks and messages as PyTorch's forward (tests compare both)."""
        if input.dim() not in (2, 3):
            raise ValueError(f"{self.mode}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0)
        cast(Any, self).check_input(x, None)
        dirs = 2 if self.bidirectional else 1
        n, steps = x.shape[0], x.shape[1]
        out = torch.empty(n, steps, dirs * self.hidden_size, dtype=input.dtype, device="meta")
        h = torch.empty(self.num_layers * dirs, n, self.hidden_size, dtype=input.dtype, device="meta")
        return (out, h) if batched else (out[0], h[:, 0])

    def extra_repr(self) -> str:
        return cast(Any, super()).extra_repr() + f", output={self.output}"

    def _get_name(self) -> str:
        return type(self).__mro__[2].__name__  # print as LSTM / GRU, as PyTorch does


class LSTM(_RecurrentOutput, nn.LSTM):  # type: ignore[misc]  # forward(input, hx) overrides overloads
    def __init__(self, *args: Any, output: str = "last", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output = output


class GRU(_RecurrentOutput, nn.GRU):  # type: ignore[misc]  # forward(input, hx) overrides overloads
    def __init__(self, *args: Any, output: str = "last", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output = output


class SpecModel(nn.Sequential):
    """An ``nn.Sequential`` that prints under the spec's name (e.g. ``NeuralNetwork(...)``).

    Being a plain ``Sequential`` subclass keeps ``state_dict`` keys, tracing and export
    as PyTorch users know them. A functional layer (``torch.relu(x)`` in the tutorials'
    ``forward``) is a parameterless child here too, under its index, so that scripting and
    export work unchanged; ``print(model)`` leaves it out, as PyTorch prints the tutorials'
    class, which has no such attribute.
    """

    def __init__(self, name: str, modules: OrderedDict[str, nn.Module], functional: tuple[str, ...] = ()) -> None:
        super().__init__(modules)
        self.spec_name = name
        self.functional = functional  # the children that are calls in the tutorials' forward

    def _get_name(self) -> str:
        return self.spec_name

    def __repr__(self) -> str:
        lines = [f"({key}): " + _addindent(repr(module), 2) for key, module in self._modules.items()
                 if key not in self.functional]
        return self._get_name() + ("(\n  " + "\n  ".join(lines) + "\n)" if lines else "()")


def _build_layer(layer: Layer) -> nn.Module:
    if isinstance(layer, SequentialLayer):
        return nn.Sequential(_children(layer.layers))
    kind, a = layer.type, layer.args.given()
    if kind in ("LSTM", "GRU"):
        if a.get("dropout", 0.0) and a.get("num_layers", 1) == 1:
            a["dropout"] = 0.0  # PyTorch warns: dropout only acts between stacked layers
        cls = LSTM if kind == "LSTM" else GRU
        return cls(batch_first=True, **a)
    if kind == "ResBlock":
        return ResBlock(**a)
    module: nn.Module = getattr(nn, kind)(**a)
    return module


def _children(layers: tuple[Layer, ...]) -> OrderedDict[str, nn.Module]:
    children: OrderedDict[str, nn.Module] = OrderedDict()
    for i, layer in enumerate(layers):
        children[layer.name or str(i)] = _build_layer(layer)
    return children


def spec_model(spec: ModelSpec) -> SpecModel:
    """The ``SpecModel`` of a spec, on the current default device, without any check (see ``build_model``)."""
    functional = tuple(str(i) for i, layer in enumerate(spec.layers) if layer.functional)
    return SpecModel(spec.name, _children(spec.layers), functional)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_count(spec: ModelSpec) -> int:
    """Parameters of a spec, counted on the meta device (no memory is allocated)."""
    return _parameter_count(spec.model_dump_json())


# Every TrainConfig checks its model (shapes, parameters): the Train page's form makes one per view, and
# a class of learners views it many times a second with the same few specs. Building the layers on
# the meta device costs milliseconds; the spec's JSON is the key of these small caches.
@lru_cache(maxsize=256)
def _parameter_count(spec_json: str) -> int:
    with torch.device("meta"):
        model = spec_model(ModelSpec.model_validate_json(spec_json))
    return count_parameters(model)


# Time steps recurrent layers take one after another for one sample (steps x stacked layers x
# directions). Each is a few small matrix products whose fixed cost dominates: 131,072 of them
# (4,096 steps through 16 bidirectional layers) held a server thread for seconds per forward
# pass on a busy machine, however few their multiply-adds. The presets need at most 28.
MAX_RECURRENT_STEPS = 16_384


@dataclass(frozen=True)
class SpecCost:
    """What one sample costs a model: ``activations`` (elements of its input plus every leaf
    layer's output), ``macs`` (multiply-adds, counted by formula per layer) and
    ``recurrent_steps`` (cell steps its LSTM/GRU layers take one after another)."""

    activations: int
    macs: int
    recurrent_steps: int = 0


def recurrent_steps(module: nn.RNNBase, input: torch.Tensor) -> int:
    """Cell steps a recurrent layer takes one after another: time steps x stacked layers x directions."""
    steps = input.shape[1] if input.dim() == 3 else input.shape[0]
    return steps * module.num_layers * (2 if module.bidirectional else 1)


def layer_macs(module: nn.Module, input: torch.Tensor, output: torch.Tensor) -> int:
    """Multiply-adds of one leaf layer's forward, from its input and output shapes (any batch).

    Linear and convolutions: one per weight an output element reads; LSTM/GRU: each direction
    of each stacked layer multiplies its input and its hidden state into 4 (LSTM) or 3 (GRU)
    gates at every time step; pools: one per window element; anything else: one per output element.
    """
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.RNNBase):
        gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
        batch, steps = (input.shape[0], input.shape[1]) if input.dim() == 3 else (1, input.shape[0])
        dirs = 2 if module.bidirectional else 1
        per_step = sum(dirs * gates * module.hidden_size * (size + module.hidden_size)
                       for size in [module.input_size] + [dirs * module.hidden_size] * (module.num_layers - 1))
        return batch * steps * per_step
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel = module.kernel_size
        return output.numel() * math.prod(kernel if isinstance(kernel, tuple) else (kernel, kernel))
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return input.numel()
    return output.numel()


@functools.lru_cache(maxsize=64)
def spec_cost(spec: ModelSpec) -> SpecCost:
    """Activations and multiply-adds of one sample, from a meta-device forward pass (nothing is
    allocated; recurrent layers take their shapes by formula). A stack with a shape error counts
    up to it (``infer_shapes`` reports the error)."""
    counts = [math.prod(spec.input_shape)]
    macs = [0]
    serial = [0]

    def hook(module, inputs, output) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                counts.append(t[0].numel() if t.dim() else 1)
        if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
            macs.append(layer_macs(module, inputs[0], output))
            if isinstance(module, nn.RNNBase):
                serial.append(recurrent_steps(module, inputs[0]))

    if counts[0] > MAX_SAMPLE_ACTIVATIONS:
        return SpecCost(counts[0], 0)
    with torch.device("meta"):
        model = spec_model(spec)
        for module in model.modules():
            if next(module.children(), None) is None:
                module.register_forward_hook(hook)
        # A shape error (torch raises several types) stops the count there; infer_shapes reports it.
        with contextlib.suppress(Exception):
            model(torch.empty(1, *spec.input_shape))
    return SpecCost(sum(counts), sum(macs), sum(serial))


def forward_elements(spec: ModelSpec, shape: tuple[int, ...]) -> int:
    """Elements of an input of the whole ``shape`` (batch included, as given) plus every leaf
    layer's outputs, from a meta-device forward pass of the spec's model (nothing is allocated).
    A shape error stops the count there (as torch would stop)."""
    counts = [math.prod(shape)]

    def hook(module, inputs, output) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                counts.append(t.numel())

    with torch.device("meta"):
        model = spec_model(spec)
        for module in model.modules():
            if next(module.children(), None) is None:
                module.register_forward_hook(hook)
        with contextlib.suppress(Exception):  # torch raises several types for a shape error
            model(torch.empty(shape))
    return sum(counts)


def activation_count(spec: ModelSpec) -> int:
    """Elements of one sample's input plus every leaf layer's output, from a meta-device
    forward pass (no memory is allocated). A stack with a shape error counts up to it."""
    return spec_cost(spec).activations


def mac_count(spec: ModelSpec) -> int:
    """Multiply-adds one sample needs through the model (``layer_macs`` of every leaf layer)."""
    return spec_cost(spec).macs


def _gmac(n: float) -> float:
    return n / 1e9


def check_batch(spec: ModelSpec, batch: int, passes: int = 1) -> None:
    """Refuse (SpecError) a batch the server should not run: activations over
    ``MAX_BATCH_ACTIVATIONS``, or ``passes`` x the batch's multiply-adds over the per-request
    compute cap (``PYTORCH_LAB_MAX_BATCH_GMAC``; a training step is about 3 forward passes)."""
    cost = spec_cost(spec)
    n = cost.activations
    if batch * n > MAX_BATCH_ACTIVATIONS:
        raise SpecError("spec.batch_cap", batch=batch, total=batch * n, cap=MAX_BATCH_ACTIVATIONS,
                        fit=max(1, MAX_BATCH_ACTIVATIONS // n))
    cap = load_settings().max_batch_gmac * 1e9
    work = cost.macs * batch * passes
    if work > cap:
        raise SpecError("budget.batch_macs", batch=batch, gmac=_gmac(work), cap=_gmac(cap),
                        fit=int(cap // max(1, cost.macs * passes)), setting=setting_name("max_batch_gmac"))


def checked_spec(spec: ModelSpec, param_cap: int = DEFAULT_PARAM_CAP) -> ModelSpec:
    """The spec, after the parameter, activation and compute caps are checked (before any allocation)."""
    n = parameter_count(spec)
    if n > param_cap:
        raise SpecError("spec.param_cap", n=n, cap=param_cap)
    cost = spec_cost(spec)
    if cost.activations > MAX_SAMPLE_ACTIVATIONS:
        raise SpecError("spec.activation_cap", n=cost.activations, cap=MAX_SAMPLE_ACTIVATIONS)
    if cost.recurrent_steps > MAX_RECURRENT_STEPS:
        raise SpecError("budget.recurrent_steps", n=cost.recurrent_steps, cap=MAX_RECURRENT_STEPS)
    cap = load_settings().max_sample_gmac * 1e9
    if cost.macs > cap:
        raise SpecError("budget.sample_macs", gmac=_gmac(cost.macs), cap=_gmac(cap),
                        setting=setting_name("max_sample_gmac"))
    return spec


def build_model(spec: ModelSpec, seed: int | None = 0, param_cap: int = DEFAULT_PARAM_CAP) -> nn.Module:
    """Build the ``nn.Module`` of a spec after the parameter and activation caps are checked."""
    spec = checked_spec(spec, param_cap)
    if seed is not None:
        torch.manual_seed(seed)
    return spec_model(spec)


@dataclass
class ShapeStep:
    index: str
    type: str
    output_shape: tuple[int, ...]


class ShapeError(SpecError):
    """A layer that cannot take the shape it gets: ``index``, ``layer_type`` and the shape ``got``."""

    @property
    def index(self) -> str:
        return str(self.params["layer"])

    @property
    def layer_type(self) -> str:
        return str(self.params["kind"])

    @property
    def got(self) -> tuple[int, ...]:
        return tuple(self.params["dims"])


def _fix(layer: Layer, got: tuple[int, ...]) -> LabError:
    """What to change so ``layer`` takes input of shape ``got`` (a message in the page's language;
    layer types, shapes and the settings to type are code)."""
    kind, a, shape = Code(layer.type), layer.args, Code(str(got))

    def setting(name: str, value: object) -> Code:
        return Code(f"{name}={value}")

    if isinstance(a, LinearArgs):
        if len(got) > 2 and got[-1] != a.in_features:
            return LabError("spec.fix.linear_flatten", kind=kind, n=a.in_features, shape=shape,
                            flat=setting("in_features", math.prod(got[1:])), last=setting("in_features", got[-1]))
        return LabError("spec.fix.linear_features", kind=kind, n=a.in_features, last=setting("in_features", got[-1]))
    if isinstance(a, ConvArgs):
        spatial = {"Conv1d": "L", "Conv2d": "H, W", "Conv3d": "D, H, W"}[layer.type]
        dims = 2 + len(spatial.split(", "))
        if len(got) != dims:  # the lab's shapes always have the batch first: a missing or extra dimension
            return LabError("spec.fix.conv_input", kind=kind, expected=Code(f"(N, C, {spatial})"), shape=shape)
        if len(got) == dims and got[1] != a.in_channels:
            return LabError("spec.fix.conv_channels", kind=kind, n=a.in_channels, got=setting("in_channels", got[1]))
        return LabError("spec.fix.conv_kernel", kind=kind, shape=shape)
    if isinstance(a, BatchNormArgs):
        return LabError("spec.fix.norm_features", kind=kind, n=a.num_features,
                        got=setting("num_features", got[1]) if len(got) > 1 else shape)
    if isinstance(a, LayerNormArgs):
        return LabError("spec.fix.layer_norm", kind=kind, dims=Code(str(a.normalized_shape)),
                        got=setting("normalized_shape", got[-1]))
    if isinstance(a, RecurrentArgs):
        if len(got) != 3:
            return LabError("spec.fix.rnn_input", kind=kind, expected=Code("(N, T, features)"), shape=shape,
                            fix=Code("Flatten(start_dim=1, end_dim=2)"))
        return LabError("spec.fix.rnn_features", kind=kind, n=a.input_size, got=setting("input_size", got[-1]))
    if isinstance(a, ResBlockArgs):
        return LabError("spec.fix.resblock", kind=kind, expected=Code(f"(N, {a.channels}, H, W)"),
                        got=setting("channels", got[1]) if len(got) > 1 else shape)
    if layer.type in ("MaxPool2d", "AvgPool2d"):
        return LabError("spec.fix.pool_kernel", kind=kind, shape=shape, arg=Code("kernel_size"))
    return LabError("spec.fix.other", kind=kind, shape=shape)


def infer_shapes(spec: ModelSpec, batch: int = 2) -> list[ShapeStep]:
    """Output shape of every top-level layer for a batch of the spec's input shape.

    Runs on the meta device, so nothing is allocated. A mismatch raises ``ShapeError``
    naming the layer, the shape it got, and the fix. Answers are kept per spec (see
    ``_parameter_count``); a spec that fails is tried again each time.
    """
    return list(_infer_shapes(spec.model_dump_json(), batch))


@lru_cache(maxsize=256)
def _infer_shapes(spec_json: str, batch: int) -> tuple[ShapeStep, ...]:
    spec = ModelSpec.model_validate_json(spec_json)
    x = torch.empty(batch, *spec.input_shape, device="meta")
    steps: list[ShapeStep] = []
    with torch.device("meta"):
        for i, layer in enumerate(spec.layers):
            module = _build_layer(layer)
            got = tuple(x.shape)
            try:
                x = module(x)
            except Exception as exc:  # noqa: BLE001 - torch's shape errors vary by op; we re-word them
                raise ShapeError("spec.shape", layer=str(i), kind=Code(layer.type), shape=Code(str(got)),
                                 fix=_fix(layer, got), torch=Code(first_line(exc)), dims=got) from None
            steps.append(ShapeStep(str(i), layer.type, tuple(x.shape)))
    return tuple(steps)
