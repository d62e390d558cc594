"""PyTorch source code for a model spec: an ``nn.Module`` class and an ``nn.Sequential``.

The generated code builds a model with the same parameters, in the same order and with
the same state_dict layout as ``core.ml.modules.build_model`` (tests load one model's
weights into the other and compare outputs).
"""
from __future__ import annotations

import inspect

from core.ml.modules import ResBlock
from core.ml.spec import ARG_INFO, Layer, ModelSpec, SequentialLayer
from core.safe.parsing import PARSE_LOCK

# The generated ResBlock is the lab's own class, so the two can never drift apart. Read once,
# at import, under the parser lock: getsource parses the module with ast (not thread-safe).
with PARSE_LOCK:
    RESBLOCK_CODE = inspect.getsource(ResBlock)

RNN_CODE = '''class {kind}(nn.{kind}):
    """nn.{kind} (batch_first) that passes on one output: the last step, the sequence or the hidden state."""

    def __init__(self, *args, output="last", **kwargs):
        super().__init__(*args, **kwargs)
        self.output = output

    def forward(self, x):
        out, state = super().forward(x)
        if self.output == "sequence":
            return out
        if self.output == "last":
            return out[:, -1]
        h = state[0] if isinstance(state, tuple) else state
        return h[-1]
'''

# Positional arguments in the order PyTorch users write them.
POSITIONAL = {
    "Linear": ["in_features", "out_features"],
    "Conv1d": ["in_channels", "out_channels", "kernel_size"],
    "Conv2d": ["in_channels", "out_channels", "kernel_size"],
    "MaxPool2d": ["kernel_size"], "AvgPool2d": ["kernel_size"],
    "AdaptiveAvgPool2d": ["output_size"],
    "BatchNorm1d": ["num_features"], "BatchNorm2d": ["num_features"],
    "LayerNorm": ["normalized_shape"], "Dropout": ["p"],
    "LSTM": ["input_size", "hidden_size"], "GRU": ["input_size", "hidden_size"],
    "ResBlock": ["channels"],
}


def _literal(value) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(map(repr, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def layer_call(layer: Layer) -> str:
    """``nn.Conv2d(1, 16, 3, padding=1)`` for one layer; Sequential nests."""
    if isinstance(layer, SequentialLayer):
        inner = ",\n".join("    " + layer_call(x).replace("\n", "\n    ") for x in layer.layers)
        return f"nn.Sequential(\n{inner},\n)"
    kind, args, schema = layer.type, layer.args.given(), ARG_INFO[layer.type]
    parts = [_literal(args[name]) for name in POSITIONAL.get(kind, []) if name in args]
    for name in schema:
        if name in args and name not in POSITIONAL.get(kind, []) and args[name] != schema[name].default:
            parts.append(f"{name}={_literal(args[name])}")
    if kind in ("LSTM", "GRU"):
        parts.append("batch_first=True")
        return f"{kind}({', '.join(parts)})"
    prefix = "" if kind == "ResBlock" else "nn."
    return f"{prefix}{kind}({', '.join(parts)})"


def _uses(layers: tuple[Layer, ...]) -> set[str]:
    kinds = set()
    for layer in layers:
        kinds.add(layer.type)
        if isinstance(layer, SequentialLayer):
            kinds |= _uses(layer.layers)
    return kinds


def _helpers(spec: ModelSpec) -> str:
    kinds = _uses(spec.layers)
    blocks = [RESBLOCK_CODE] if "ResBlock" in kinds else []
    blocks += [RNN_CODE.format(kind=k) for k in ("LSTM", "GRU") if k in kinds]
    return "\n\n".join(blocks)


def _names(layers: tuple[Layer, ...]) -> list[str]:
    return [layer.name or f"layer{i}" for i, layer in enumerate(layers)]


def module_code(spec: ModelSpec) -> str:
    """A complete script defining ``class <Name>(nn.Module)`` with ``__init__`` and ``forward``."""
    name, layers = spec.name, spec.layers
    lines = ["import torch", "from torch import nn", "", ""]
    helpers = _helpers(spec)
    if helpers:
        lines += [helpers, ""]
    lines += [f"class {name}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    for attr, layer in zip(_names(layers), layers, strict=False):
        call = layer_call(layer).replace("\n", "\n        ")
        lines.append(f"        self.{attr} = {call}")
    lines += ["", "    def forward(self, x):"]
    for attr in _names(layers):
        lines.append(f"        x = self.{attr}(x)")
    lines += ["        return x", "", "",
              f"model = {name}()",
              f"x = torch.randn(1, {', '.join(map(str, spec.input_shape))})",
              "print(model)",
              "print(model(x).shape)", ""]
    return "\n".join(lines)


def sequential_code(spec: ModelSpec) -> str:
    """The same model as one ``nn.Sequential`` (named children kept through an OrderedDict)."""
    layers = spec.layers
    lines = ["from collections import OrderedDict", "", "import torch", "from torch import nn", "", ""]
    helpers = _helpers(spec)
    if helpers:
        lines += [helpers, ""]
    lines.append("model = nn.Sequential(OrderedDict([")
    for attr, layer in zip(_names(layers), layers, strict=False):
        call = layer_call(layer).replace("\n", "\n    ")
        lines.append(f"    ({attr!r}, {call}),")
    lines += ["]))",
              f"x = torch.randn(1, {', '.join(map(str, spec.input_shape))})",
              "print(model)",
              "print(model(x).shape)", ""]
    return "\n".join(lines)
