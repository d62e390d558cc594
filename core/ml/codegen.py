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

    def extra_repr(self):
        return super().extra_repr() + f", output={{self.output}}"
'''

# Positional arguments in the order PyTorch users write them.
POSITIONAL = {
    "Linear": ["in_features", "out_features"],
    "Conv1d": ["in_channels", "out_channels", "kernel_size"],
    "Conv2d": ["in_channels", "out_channels", "kernel_size"],
    "Conv3d": ["in_channels", "out_channels", "kernel_size"],
    "MaxPool2d": ["kernel_size"], "AvgPool2d": ["kernel_size"],
    "AdaptiveAvgPool2d": ["output_size"],
    "BatchNorm1d": ["num_features"], "BatchNorm2d": ["num_features"],
    "LayerNorm": ["normalized_shape"], "Dropout": ["p"],
    "LSTM": ["input_size", "hidden_size"], "GRU": ["input_size", "hidden_size"],
    "ResBlock": ["channels"],
}
# A functional layer as the call the tutorials write in forward; {args} are its given arguments.
FUNCTIONS = {"ReLU": "torch.relu", "Sigmoid": "torch.sigmoid", "Tanh": "torch.tanh",
             "LeakyReLU": "nn.functional.leaky_relu", "Softmax": "torch.softmax", "Flatten": "torch.flatten"}


def _literal(value) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(map(repr, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _named(layers: tuple[Layer, ...]) -> bool:
    return any(layer.name is not None for layer in layers)


def layer_call(layer: Layer) -> str:
    """``nn.Conv2d(1, 16, 3, padding=1)`` for one layer; Sequential nests (with an OrderedDict
    when its layers have names, so the names, and so the state_dict keys, are kept)."""
    if isinstance(layer, SequentialLayer):
        inner = layer.layers
        if _named(inner):
            items = ",\n".join(f"    ({name!r}, " + layer_call(x).replace("\n", "\n    ") + ")"
                               for name, x in zip(_keys(inner), inner, strict=True))
            return f"nn.Sequential(OrderedDict([\n{items},\n]))"
        body = ",\n".join("    " + layer_call(x).replace("\n", "\n    ") for x in inner)
        return f"nn.Sequential(\n{body},\n)"
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


def function_call(layer: Layer) -> str:
    """A functional layer as the call in forward: ``torch.relu(x)``, ``torch.flatten(x, 1)``."""
    args, schema = layer.args.given(), ARG_INFO[layer.type]
    given = {name: value for name, value in args.items() if value != schema[name].default}
    if layer.type == "Flatten":  # torch.flatten's own defaults are start_dim=0, end_dim=-1
        parts = [repr(args.get("start_dim", 1))] + ([repr(given["end_dim"])] if "end_dim" in given else [])
    elif layer.type == "Softmax":
        parts = [f"dim={args.get('dim', -1)!r}"]
    else:
        parts = [f"{name}={value!r}" for name, value in given.items()]
    return f"{FUNCTIONS[layer.type]}({', '.join(['x', *parts])})"


def _uses(layers: tuple[Layer, ...]) -> set[str]:
    kinds = set()
    for layer in layers:
        kinds.add(layer.type)
        if isinstance(layer, SequentialLayer):
            kinds |= _uses(layer.layers)
    return kinds


def _nested_names(layers: tuple[Layer, ...]) -> bool:
    return any(isinstance(x, SequentialLayer) and (_named(x.layers) or _nested_names(x.layers)) for x in layers)


def _helpers(spec: ModelSpec) -> str:
    kinds = _uses(spec.layers)
    blocks = [RESBLOCK_CODE] if "ResBlock" in kinds else []
    blocks += [RNN_CODE.format(kind=k) for k in ("LSTM", "GRU") if k in kinds]
    return "\n\n".join(blocks)


def _keys(layers: tuple[Layer, ...]) -> list[str]:
    """Each layer's key in the lab's model (``core.ml.modules``): its name, else its index."""
    return [layer.name or str(i) for i, layer in enumerate(layers)]


def _imports(spec: ModelSpec, ordered: bool) -> list[str]:
    head = ["from collections import OrderedDict", ""] if ordered else []
    return [*head, "import torch", "from torch import nn", "", ""]


def _tail(spec: ModelSpec, make: str) -> list[str]:
    return [make, f"x = torch.randn(1, {', '.join(map(str, spec.input_shape))})", "print(model)",
            "print(model(x).shape)", ""]


def module_code(spec: ModelSpec) -> str:
    """A complete script defining the model as a class, as the tutorials write it.

    Named layers are attributes (``self.fc1 = ...``); functional layers are calls in ``forward``
    (``x = torch.relu(x)``). A stack of only unnamed layers is an ``nn.Sequential`` subclass, so
    PyTorch names them ``0``, ``1``... exactly as in the lab's model; in a mixed stack an unnamed
    layer is registered under its index (``self.add_module("3", ...)``). Either way the lab's
    ``state_dict`` loads into the generated model as it is.
    """
    name, layers = spec.name, spec.layers
    lines = _imports(spec, _nested_names(layers))
    helpers = _helpers(spec)
    if helpers:
        lines += [helpers, ""]
    if not _named(layers) and not any(layer.functional for layer in layers):
        lines += [f"class {name}(nn.Sequential):", "    def __init__(self):", "        super().__init__("]
        lines += ["            " + layer_call(layer).replace("\n", "\n            ") + "," for layer in layers]
        lines += ["        )", "", ""]
        return "\n".join(lines + _tail(spec, f"model = {name}()"))
    lines += [f"class {name}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    forward = []
    for key, layer in zip(_keys(layers), layers, strict=True):
        if layer.functional:
            forward.append(f"        x = {function_call(layer)}")
            continue
        call = layer_call(layer).replace("\n", "\n        ")
        if layer.name:
            lines.append(f"        self.{key} = {call}")
            forward.append(f"        x = self.{key}(x)")
        else:  # unnamed: PyTorch's own key for it is its index, as in an nn.Sequential
            lines.append(f"        self.add_module({key!r}, {call})")
            forward.append(f"        x = getattr(self, {key!r})(x)")
    lines += ["", "    def forward(self, x):", *forward, "        return x", "", ""]
    return "\n".join(lines + _tail(spec, f"model = {name}()"))


def sequential_code(spec: ModelSpec) -> str:
    """The same model as one ``nn.Sequential``: plain ``nn.Sequential(nn.Linear(...), ...)`` when no
    layer has a name, else an ``OrderedDict`` that keeps the names (and so the state_dict keys).
    A functional layer becomes its module (``nn.ReLU()``): a Sequential holds modules, not calls."""
    layers = spec.layers
    named = _named(layers)
    lines = _imports(spec, named or _nested_names(layers))
    helpers = _helpers(spec)
    if helpers:
        lines += [helpers, ""]
    if not named:
        lines.append("model = nn.Sequential(")
        lines += ["    " + layer_call(layer).replace("\n", "\n    ") + "," for layer in layers]
        lines.append(")")
    else:
        taken = {layer.name for layer in layers if layer.name}
        lines.append("model = nn.Sequential(OrderedDict([")
        for key, layer in zip(_keys(layers), layers, strict=True):
            if layer.functional:  # no weights, so any free name loads the same state_dict
                readable = layer.type.lower()
                key = readable if readable not in taken else key
                taken.add(key)
            call = layer_call(layer).replace("\n", "\n    ")
            lines.append(f"    ({key!r}, {call}),")
        lines.append("]))")
    return "\n".join(lines + _tail(spec, "")[1:])
