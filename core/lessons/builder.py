"""The Model Builder's engine: editing a layer stack, torchinfo summaries, the architecture
graph, parameters, the .train()/.eval() demo and the tutorials' snippets (flattening, logits,
inference, summaries, Sequential vs a subclass, hooks), each computed by torch when asked.
Pages call these and render the results."""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd
import torch
from torch import nn

from core.errors import Code, LabError, first_line
from core.ml.codegen import function_call, module_code, sequential_code
from core.ml.modules import build_model, check_batch, forward_elements, infer_shapes
from core.ml.spec import (
    LAYER_ARGS,
    MAX_BATCH_ACTIVATIONS,
    Layer,
    ModelSpec,
    ResBlockArgs,
    SequentialLayer,
    check_input_shape,
)
from core.ml.zoo import preset_spec


# --------------------------------------------------------------------------- the page's examples
@dataclass(frozen=True)
class Example:
    """A one-click example of the Builder: the zoo model it loads (``None`` keeps the learner's
    model), the view it opens and, for the snippets view, which snippet. Its title is UI text
    (``builder.ex.<id>``)."""

    id: str
    preset: str | None
    tab: str
    snippet: str | None = None


TABS = ("summary", "graph", "code", "forward", "traineval", "snippets")
SNIPPETS = ("flatten", "logits", "inference", "summaries", "subclass", "hooks")
EXAMPLES: dict[str, Example] = {e.id: e for e in [
    Example("M1", "linear", "summary"), Example("M2", "neural_net", "code"),
    Example("M3", "mlp_sequential", "summary"), Example("M4", "neural_network", "forward"),
    Example("M5", "cnn", "summary"), Example("M6", "simple_cnn", "summary"),
    Example("M7", "cnn_rgb16", "summary"), Example("M8", "resblock_net", "graph"),
    Example("M9", "lstm_seq", "summary"), Example("M10", None, "traineval"), Example("M11", None, "forward"),
    Example("M12", "cnn", "snippets", "flatten"), Example("M13", "neural_network", "snippets", "logits"),
    Example("M14", None, "snippets", "inference"), Example("M15", "cnn_rgb16", "snippets", "summaries"),
    Example("M16", "neural_net", "snippets", "subclass"), Example("M17", None, "snippets", "hooks"),
    Example("M18", "conv3d", "summary"),
]}

# Arguments a newly added layer starts with (the editor then fixes sizes to fit).
NEW_LAYER_ARGS: dict[str, dict] = {
    "Linear": {"in_features": 128, "out_features": 10},
    "Conv1d": {"in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
    "Conv2d": {"in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
    "Conv3d": {"in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
    "MaxPool2d": {"kernel_size": 2}, "AvgPool2d": {"kernel_size": 2},
    "AdaptiveAvgPool2d": {"output_size": 1},
    "BatchNorm1d": {"num_features": 16}, "BatchNorm2d": {"num_features": 16},
    "LayerNorm": {"normalized_shape": 16}, "Dropout": {"p": 0.5},
    "ReLU": {}, "LeakyReLU": {"negative_slope": 0.01}, "Sigmoid": {}, "Tanh": {},
    "Softmax": {"dim": -1}, "Flatten": {},
    "LSTM": {"input_size": 28, "hidden_size": 64, "output": "last"},
    "GRU": {"input_size": 28, "hidden_size": 64, "output": "last"},
    "ResBlock": {"channels": 16},
}
EDITABLE_TYPES = list(LAYER_ARGS)


def fitted_args(kind: str, input_shape: tuple[int, ...] | None) -> dict:
    """Default arguments for a new layer, with its input size taken from the shape it gets."""
    args = dict(NEW_LAYER_ARGS[kind])
    if not input_shape or len(input_shape) < 2:
        return args
    features, channels = input_shape[-1], input_shape[1]
    key = {"Linear": "in_features", "Conv1d": "in_channels", "Conv2d": "in_channels", "Conv3d": "in_channels",
           "BatchNorm1d": "num_features", "BatchNorm2d": "num_features", "ResBlock": "channels",
           "LSTM": "input_size", "GRU": "input_size", "LayerNorm": "normalized_shape"}.get(kind)
    if key in ("in_features", "input_size", "normalized_shape"):
        args[key] = features
    elif key:
        args[key] = channels
    return args


def parse_input_shape(text: str) -> tuple[int, ...]:
    """The Builder's input shape as typed: '1, 28, 28' (or '1x28x28') -> (1, 28, 28), under the
    spec's one input-shape rule (``check_input_shape``: how many sizes, and how large)."""
    parts = [p.strip() for p in text.replace("×", ",").replace("x", ",").split(",") if p.strip()]
    if not parts or not all(p.isdecimal() and len(p) <= 5 for p in parts):
        raise LabError("builder.input_shape", text=Code(text[:40]))
    return check_input_shape([int(p) for p in parts])


def add_layer(spec: ModelSpec, kind: str, position: int | None = None) -> ModelSpec:
    """A new spec with a new layer inserted (at the end by default), sized to fit (``SpecError``
    if the spec would break a rule, e.g. its layer count)."""
    if kind not in EDITABLE_TYPES:
        raise LabError("builder.layer_type", kind=Code(repr(kind)))
    layers: list[Layer | dict] = list(spec.layers)
    position = len(layers) if position is None else max(0, min(position, len(layers)))
    shape: tuple[int, ...] | None = (2, *spec.input_shape)
    if position:
        try:
            shape = infer_shapes(spec.head(position))[-1].output_shape
        except ValueError:
            shape = None
    layers.insert(position, {"type": kind, "args": fitted_args(kind, shape)})
    return spec.edit(layers=layers)


def remove_layer(spec: ModelSpec, index: int) -> ModelSpec:
    if not 0 <= index < len(spec.layers):
        raise LabError("builder.no_layer", index=index)
    return spec.edit(layers=spec.layers[:index] + spec.layers[index + 1:])


def move_layer(spec: ModelSpec, index: int, offset: int) -> ModelSpec:
    layers = list(spec.layers)
    target = index + offset
    if not (0 <= index < len(layers) and 0 <= target < len(layers)):
        return spec
    layers[index], layers[target] = layers[target], layers[index]
    return spec.edit(layers=layers)


def summary(spec: ModelSpec, depth: int = 3, batch: int = 1) -> tuple[pd.DataFrame, dict]:
    """torchinfo's summary as a table plus totals (params, trainable, MACs, MB)."""
    from torchinfo import summary as torchinfo_summary

    if not 1 <= depth <= 8:
        raise LabError("builder.depth")
    check_batch(spec, batch)  # torchinfo runs a real forward pass: its work is counted first
    model = build_model(spec)
    stats = torchinfo_summary(model, input_size=(batch, *spec.input_shape), depth=depth, verbose=0,
                              col_names=("output_size", "num_params", "mult_adds", "trainable"),
                              device="cpu", mode="eval")
    rows = []
    functional = set(getattr(model, "functional", ()))
    for info in stats.summary_list:
        if info.depth > depth or info.depth == 0:
            continue
        if info.depth == 1 and info.var_name in functional:  # a call in forward, not a layer: torchinfo
            continue  # lists no row for the tutorials' torch.relu(x) either
        leaf = info.is_leaf_layer or info.depth == depth
        params = info.num_params if leaf else info.leftover_params()
        rows.append({
            "layer": "  " * (info.depth - 1) + f"{info.class_name} ({info.var_name})",
            "depth": info.depth,
            "output shape": str(tuple(info.output_size)) if info.output_size else "--",
            "parameters": int(params),
            "mult-adds": int(info.macs if info.is_leaf_layer else
                             (sum(c.macs for c in _descendants(info, stats.summary_list)) if leaf else 0)),
            "trainable": info.trainable,
        })
    totals = {
        "parameters": int(stats.total_params),
        "trainable": int(stats.trainable_params),
        "macs": int(stats.total_mult_adds),
        "param_mb": stats.to_megabytes(stats.total_param_bytes),
        "activation_mb": stats.to_megabytes(stats.total_output_bytes),
        "input_mb": stats.to_megabytes(stats.total_input),
    }
    return pd.DataFrame(rows), totals


def _descendants(info, summary_list) -> list:
    """Leaf layers below ``info`` in torchinfo's flat, depth-first summary list."""
    start = summary_list.index(info)
    out = []
    for other in summary_list[start + 1:]:
        if other.depth <= info.depth:
            break
        if other.is_leaf_layer:
            out.append(other)
    return out


def parameters_table(model: nn.Module) -> pd.DataFrame:
    """named_parameters (M11): name, shape, count, L2 norm, trainable."""
    rows = [{"name": name, "shape": str(tuple(p.shape)), "count": p.numel(),
             "norm": float(p.detach().float().norm()), "trainable": p.requires_grad}
            for name, p in model.named_parameters()]
    return pd.DataFrame(rows, columns=["name", "shape", "count", "norm", "trainable"])


def forward_demo(spec: ModelSpec, batch: int = 64, seed: int = 0) -> dict:
    """A forward pass on a random batch: input and output shapes, output statistics."""
    if not 1 <= batch <= 1024:
        raise LabError("builder.batch")
    check_batch(spec, batch)  # activations of the whole batch, counted before allocating them
    model = build_model(spec, seed=seed).eval()
    x = torch.randn(batch, *spec.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x)
    return {"input_shape": tuple(x.shape), "output_shape": tuple(y.shape),
            "output_mean": float(y.float().mean()), "output_std": float(y.float().std()) if y.numel() > 1 else 0.0,
            "first_row": y.reshape(batch, -1)[0, :10].tolist()}


def train_eval_demo(seed: int = 0) -> pd.DataFrame:
    """M10: .train() vs .eval() for Dropout(p=.2) on randn(32, 100), BatchNorm1d(256), LayerNorm(256)."""
    gen = torch.Generator().manual_seed(seed)
    cases = [("Dropout(p=0.2)", nn.Dropout(p=0.2), torch.randn(32, 100, generator=gen)),
             ("BatchNorm1d(256)", nn.BatchNorm1d(256), 3 + 2 * torch.randn(32, 256, generator=gen)),
             ("LayerNorm(256)", nn.LayerNorm(256), 3 + 2 * torch.randn(32, 256, generator=gen))]
    rows = []
    torch.manual_seed(seed)
    for name, layer, x in cases:
        with torch.no_grad():
            train_out = layer.train()(x)
            eval_out = layer.eval()(x)
        diff = float((train_out - eval_out).abs().max())
        rows.append({"layer": name, "train_mean": float(train_out.mean()), "train_std": float(train_out.std()),
                     "eval_mean": float(eval_out.mean()), "eval_std": float(eval_out.std()),
                     "zeros_train": 100.0 * float((train_out == 0).float().mean()),
                     "max_diff": diff, "differ": diff > 1e-6})
    return pd.DataFrame(rows)


# --------------------------------------------------------------- model.train() vs model.eval() on the learner's model
def mode_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The submodules whose behaviour depends on model.train() / model.eval() or that normalize: Dropout, batch
    norm, layer/group norm (listed to show they do not change), and LSTM/GRU with dropout between layers."""
    found = []
    for name, module in model.named_modules():
        rnn_dropout = isinstance(module, nn.RNNBase) and module.dropout > 0 and module.num_layers > 1
        if rnn_dropout or isinstance(module, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm,
                                              nn.LayerNorm, nn.GroupNorm)):
            found.append((name, module))
    return found


def _capture_inputs(model: nn.Module, modules: list[tuple[str, nn.Module]], x: torch.Tensor) -> dict[str, Any]:
    """The input each of ``modules`` gets in one eval-mode forward pass of ``model``."""
    seen: dict[str, Any] = {}
    handles = [module.register_forward_pre_hook(lambda m, args, name=name: seen.setdefault(name, args[0]))
               for name, module in modules]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def model_train_eval(spec: ModelSpec, seed: int = 0, batch: int = 8) -> dict:
    """model.train() vs model.eval() on the learner's own model, for a random batch: for each Dropout or
    normalization layer, the largest change of its output between the modes (on the input it
    gets), and the same for the whole model's output. ``rows`` is empty for a model without such layers."""
    check_batch(spec, batch)
    model = build_model(spec, seed=seed)
    x = torch.randn(batch, *spec.input_shape, generator=torch.Generator().manual_seed(seed))
    layers = mode_layers(model)
    inputs = _capture_inputs(model, layers, x)
    rows = []
    for name, module in layers:
        if name not in inputs:
            continue
        torch.manual_seed(seed)
        with torch.no_grad():  # a copy: batch norm's train() pass updates its running statistics
            train_out, eval_out = copy.deepcopy(module).train()(inputs[name]), module.eval()(inputs[name])
        diff = float((_first(train_out) - _first(eval_out)).abs().max())
        rows.append({"layer": name, "type": type(module).__name__, "max_diff": diff, "differ": diff > 1e-6,
                     "zeros_train": 100.0 * float((_first(train_out) == 0).float().mean())})
    torch.manual_seed(seed)
    with torch.no_grad():
        y_train = copy.deepcopy(model).train()(x)
        y_eval = model.eval()(x)
    return {"rows": rows, "output_diff": float((y_train - y_eval).abs().max()), "batch": batch, "name": spec.name}


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # nn.LSTM returns (output, state)


# --------------------------------------------------------------------------- the tutorials' snippets
def _attempt(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """``(fn(), None)``, or ``(None, PyTorch's message)`` when torch refuses (a shape error)."""
    try:
        return fn(), None
    except Exception as exc:  # noqa: BLE001 - torch's shape errors vary by op; shown as its own words
        cause = exc.__cause__ if exc.__cause__ is not None and "torchinfo" in str(exc) else exc
        return None, first_line(cause)


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


FLATTEN_WAYS: tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...] = (
    ("x.view(-1, 16*14*14)", lambda x: x.view(-1, 16 * 14 * 14)),
    ("x.view(x.size(0), -1)", lambda x: x.view(x.size(0), -1)),
    ("torch.flatten(x, 1)", lambda x: torch.flatten(x, 1)),
)


def flatten_demo(seed: int = 0, batch: int = 4, wrong: tuple[int, int, int] = (1, 56, 56)) -> dict:
    """The tutorial CNN's (M5) three ways to flatten its (N, 16, 14, 14) feature map before ``fc``,
    on a right-sized batch and on a wrong-sized one (56x56 images): the shape each gives, and
    what ``fc`` does with it. ``view(-1, 16*14*14)`` keeps the numbers but not the batch."""
    spec = preset_spec("cnn")
    model = build_model(spec, seed=seed).eval()
    flat_at = next(i for i, layer in enumerate(spec.layers) if layer.type == "Flatten")
    head = nn.Sequential(*list(model.children())[:flat_at])
    fc = list(model.children())[-1]
    gen = torch.Generator().manual_seed(seed)
    rows = []
    results: dict[str, torch.Tensor] = {}
    for right, size in ((True, (batch, *spec.input_shape)), (False, (batch, *wrong))):
        x = torch.rand(size, generator=gen)
        with torch.no_grad():
            features = head(x)
            for code, way in FLATTEN_WAYS:
                flat, error = _attempt(partial(way, features))
                out, out_error = (None, None) if flat is None else _attempt(partial(fc, flat))
                if right and flat is not None:
                    results[code] = flat
                rows.append({"code": code, "input": str(size), "features": _shape(features),
                             "flat": None if flat is None else _shape(flat), "error": error or out_error,
                             "output": None if out is None else _shape(out),
                             "batch_kept": flat is not None and flat.shape[0] == batch})
    same = [torch.equal(results[FLATTEN_WAYS[0][0]], other) for other in results.values()]
    return {"rows": rows, "same": len(same) == len(FLATTEN_WAYS) and all(same), "batch": batch,
            "in_features": fc.in_features}


def logits_demo(spec: ModelSpec, seed: int = 0, batch: int = 2) -> dict:
    """The tutorial's ``logits = model(torch.rand(2, 1, 28, 28))`` on the learner's model, with
    ``nn.Softmax(dim=1)`` and ``argmax(1)`` when the output is (N, classes): as PyTorch prints them."""
    check_batch(spec, batch)
    model = build_model(spec, seed=seed)
    shape = ", ".join(map(str, (batch, *spec.input_shape)))
    torch.manual_seed(seed)
    X = torch.rand(batch, *spec.input_shape)
    logits = model(X)
    code = [f"model = {spec.name}()", f"X = torch.rand({shape})", "logits = model(X)", "print(logits)"]
    result = {"logits": str(logits), "shape": _shape(logits), "probab": None, "pred": None}
    if logits.dim() == 2:
        pred_probab = nn.Softmax(dim=1)(logits)
        result.update(probab=str(pred_probab), pred=str(pred_probab.argmax(1)))
        code += ["pred_probab = nn.Softmax(dim=1)(logits)", "y_pred = pred_probab.argmax(1)",
                 'print(f"Predicted class: {y_pred}")']
    return {**result, "code": "\n".join(code)}


def inference_demo(spec: ModelSpec, seed: int = 0, batch: int = 4) -> dict:
    """``model.eval()`` + ``torch.no_grad()``: for train mode, eval mode and eval under no_grad, the
    same batch twice: whether the outputs agree, whether they require grad, and their grad_fn."""
    check_batch(spec, batch)
    x = torch.randn(batch, *spec.input_shape, generator=torch.Generator().manual_seed(seed))
    rows = []
    for setting, train, no_grad in (("model.train()", True, False), ("model.eval()", False, False),
                                    ("model.eval() + torch.no_grad()", False, True)):
        model = build_model(spec, seed=seed).train(train)
        with torch.set_grad_enabled(not no_grad):
            first, second = model(x), model(x)
        rows.append({"setting": setting, "same_twice": bool(torch.equal(first, second)),
                     "max_diff": float((first - second).detach().abs().max()), "requires_grad": first.requires_grad,
                     "grad_fn": type(first.grad_fn).__name__ if first.grad_fn is not None else "None"})
    return {"rows": rows, "mode_layers": [name for name, _ in mode_layers(build_model(spec, seed=seed))],
            "code": "model.eval()\nwith torch.no_grad():\n    pred = model(x)"}


def summaries_demo(spec: ModelSpec, seed: int = 0) -> list[dict]:
    """torchinfo's ``summary`` with and without the batch dimension, and the tutorials'
    ``input_size=(3, 224, 224)``, on the learner's model; torchsummary (another package, not
    installed here) takes the shape without the batch and runs the model on ``torch.rand(2, *shape)``,
    which is run here as it would. Each row: the call, the parameters counted or PyTorch's error."""
    from torchinfo import summary as torchinfo_summary

    model = build_model(spec, seed=seed).eval()
    shape = tuple(spec.input_shape)
    cases = [(f"torchinfo.summary(model, input_size={(1, *shape)})", "torchinfo", (1, *shape)),
             (f"torchinfo.summary(model, input_size={shape})", "torchinfo", shape),
             ("torchinfo.summary(model, input_size=(1, 3, 224, 224))", "torchinfo", (1, 3, 224, 224)),
             ("torchsummary.summary(model, (3, 224, 224))", "torchsummary", (2, 3, 224, 224))]
    rows: list[dict] = []
    for call, tool, size in cases:
        row: dict[str, Any] = {"call": call, "tool": tool, "runs": str(size), "params": None, "output": None,
                               "error": None, "too_large": False}
        # Counted on the meta device first: a large input through a wide model must not take the server's memory.
        if forward_elements(spec, size) > MAX_BATCH_ACTIVATIONS:
            row["too_large"] = True
        elif tool == "torchinfo":
            stats, row["error"] = _attempt(partial(torchinfo_summary, model, input_size=size, verbose=0,
                                                   device="cpu", mode="eval"))
            if stats is not None:
                row["params"] = int(stats.total_params)
                row["output"] = str(tuple(stats.summary_list[0].output_size))
        else:
            with torch.no_grad():
                out, row["error"] = _attempt(partial(model, torch.rand(size)))
            if out is not None:
                row["params"] = sum(p.numel() for p in model.parameters())
                row["output"] = _shape(out)
        rows.append(row)
    return rows


def plain_spec(spec: ModelSpec) -> ModelSpec:
    """The spec as a plain ``nn.Sequential``: no names, every functional layer a module."""
    def plain(layer: dict) -> dict:
        out = {"type": layer["type"], "args": layer.get("args", {})}
        if "layers" in layer:
            out["layers"] = [plain(x) for x in layer["layers"]]
        return out

    return ModelSpec.parse({"name": "Sequential", "input_shape": list(spec.input_shape),
                            "layers": [plain(x) for x in spec.to_dict()["layers"]]})


def subclass_demo(spec: ModelSpec, seed: int = 0, batch: int = 3) -> dict:
    """The tutorial's "key difference": the learner's model as a class (its functional layers are
    calls in ``forward``) and as a plain ``nn.Sequential`` (every step a module). Both printed,
    their code, their parameter counts, and their outputs for the same weights (copied in order)."""
    check_batch(spec, batch)
    sub = build_model(spec, seed=seed).eval()
    seq_spec = plain_spec(spec)
    seq = build_model(seq_spec, seed=seed).eval()
    seq.load_state_dict(dict(zip(seq.state_dict(), sub.state_dict().values(), strict=True)))
    x = torch.randn(batch, *spec.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        diff = float((sub(x) - seq(x)).abs().max())
    return {"subclass_repr": repr(sub), "sequential_repr": repr(seq), "subclass_code": _class_only(module_code(spec)),
            "sequential_code": _class_only(sequential_code(seq_spec)),
            "params": (sum(p.numel() for p in sub.parameters()), sum(p.numel() for p in seq.parameters())),
            "max_diff": diff, "keys": (list(sub.state_dict())[:4], list(seq.state_dict())[:4]),
            "functional": [function_call(layer) for layer in spec.layers if layer.functional]}


def _class_only(code: str) -> str:
    """The model's definition from a generated script: no imports and no lines that run it."""
    lines = code.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(("class ", "model = nn.")))
    end = next((i for i, line in enumerate(lines) if line.startswith("x = torch.randn")), len(lines))
    return "\n".join(lines[start:end]).strip()


def hooks_demo(spec: ModelSpec, seed: int = 0, batch: int = 2) -> dict:
    """``model(x)`` vs ``model.forward(x)``: a forward hook on the model and one on its first layer
    count their calls. ``model(x)`` (``__call__``) runs the model's hooks; ``forward`` skips them,
    while the layers it calls as ``layer(x)`` still run theirs. The outputs are the same."""
    check_batch(spec, batch)
    model = build_model(spec, seed=seed).eval()
    first_name, first = next(((n, m) for n, m in model.named_children() if n not in getattr(model, "functional", ())),
                             next(iter(model.named_children())))
    calls = {"model": 0, "layer": 0}

    def counter(who: str):
        def hook(module, inputs, output) -> None:
            calls[who] += 1
        return hook

    handles = [model.register_forward_hook(counter("model")), first.register_forward_hook(counter("layer"))]
    x = torch.randn(batch, *spec.input_shape, generator=torch.Generator().manual_seed(seed))
    rows = []
    outputs = []
    try:
        with torch.no_grad():
            for call, run in (("model(x)", lambda: model(x)), ("model.forward(x)", lambda: model.forward(x))):
                outputs.append(run())
                rows.append({"call": call, "model_hook": calls["model"], "layer_hook": calls["layer"]})
    finally:
        for handle in handles:
            handle.remove()
    return {"rows": rows, "layer": first_name, "same": bool(torch.equal(outputs[0], outputs[1])),
            "code": "calls = 0\n\ndef hook(module, inputs, output):\n    global calls\n    calls += 1\n\n"
                    "model.register_forward_hook(hook)\nmodel(x)          # calls == 1\n"
                    "model.forward(x)  # calls == 1"}


def _esc(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def args_label(layer: Layer, per_line: int = 0) -> str:
    """``in_features=784, out_features=10``; with ``per_line``, a newline after every n arguments."""
    parts = [f"{k}={v}" for k, v in layer.args.model_dump(mode="json").items()]
    if not per_line:
        return ", ".join(parts)
    return "\n".join(", ".join(parts[i:i + per_line]) for i in range(0, len(parts), per_line))


# The graph's own words; the page passes them in its language.
GRAPH_WORDS = {"input": "input", "output": "output", "identity": "identity", "add": "add, then ReLU",
               "error": "shape error here", "layers": "{n} layers", "in_forward": "a call in forward"}


def architecture_dot(spec: ModelSpec, words: dict[str, str] | None = None) -> str:
    """Graphviz DOT of the layer stack with tensor shapes on the edges.

    A ResBlock is drawn with its inner path and the identity skip as a dashed edge
    into the addition; a functional layer (a call in forward) as a dashed box. A stack
    with a shape error is drawn up to the failing layer, which is marked red. ``words``
    replaces ``GRAPH_WORDS`` (the page's language).
    """
    w = {**GRAPH_WORDS, **(words or {})}
    layers = spec.layers
    shapes: list[tuple[int, ...]]
    try:
        shapes = [s.output_shape for s in infer_shapes(spec, batch=1)]
        failed = None
    except ValueError as exc:
        index = getattr(exc, "index", None)
        failed = int(index) if index is not None and str(index).isdigit() else len(layers)
        shapes = [s.output_shape for s in infer_shapes(spec.head(failed), batch=1)] if failed else []
    lines = ["digraph model {", '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#f7f7f7", '
             'fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontsize=10];',
             f'  input [label="{_esc(w["input"])}\\n{_esc(str((1, *spec.input_shape)))}", shape=oval, '
             'fillcolor="#dbeafe"];']
    prev = "input"
    prev_shape: tuple[int, ...] | None = (1, *spec.input_shape)
    for i, layer in enumerate(layers):
        node = f"l{i}"
        title = (f"{layer.name}: " if layer.name else "") + layer.type
        color = "#fecaca" if failed == i else ("#fde68a" if layer.type in ("ResBlock", "Sequential") else "#f7f7f7")
        edge_label = _esc(str(prev_shape)) if prev_shape is not None else ""
        if isinstance(layer.args, ResBlockArgs):
            ch, bn = layer.args.channels, " + BN" if layer.args.batchnorm else ""
            conv = f"Conv2d({ch},{ch},3,p=1{'' if layer.args.bias else ',bias=False'})"
            lines += [f'  subgraph cluster_{i} {{ label="{_esc(title)}"; style=rounded; color="#b45309";',
                      f'    {node}_c1 [label="{conv}{bn} + ReLU"];',
                      f'    {node}_c2 [label="{conv}{bn}"];',
                      f'    {node}_add [label="{_esc(w["add"])}", shape=ellipse, fillcolor="#fde68a"];',
                      f"    {node}_c1 -> {node}_c2; {node}_c2 -> {node}_add; }}",
                      f'  {prev} -> {node}_c1 [label="{edge_label}"];',
                      f'  {prev} -> {node}_add [label="{_esc(w["identity"])}", style=dashed, color="#b45309"];']
            node = f"{node}_add"
        elif layer.functional:
            label = _esc(f"{function_call(layer)}\n({w['in_forward']})")
            lines.append(f'  {node} [label="{label}", style="rounded,dashed", fillcolor="#ffffff"];')
            lines.append(f'  {prev} -> {node} [label="{edge_label}"];')
        else:
            detail = (w["layers"].format(n=len(layer.layers)) if isinstance(layer, SequentialLayer)
                      else args_label(layer, 2))
            label = _esc(title + ("\n" + detail if detail else ""))
            lines.append(f'  {node} [label="{label}", fillcolor="{color}"];')
            lines.append(f'  {prev} -> {node} [label="{edge_label}"];')
        if failed == i:
            lines.append(f'  err [label="{_esc(w["error"])}", shape=note, fillcolor="#fecaca"]; '
                         f'{node} -> err [style=dotted];')
            break
        prev, prev_shape = node, shapes[i] if i < len(shapes) else None
    else:
        lines.append(f'  output [label="{_esc(w["output"])}", shape=oval, fillcolor="#dcfce7"];')
        lines.append(f'  {prev} -> output [label="{_esc(str(prev_shape))}"];')
    lines.append("}")
    return "\n".join(lines)


def human(n: float) -> str:
    """1234567 -> '1.23M' for compact totals."""
    if n < 1000:
        return f"{n:g}"
    exp = min(int(math.log10(abs(n)) // 3), 4)
    return f"{n / 10 ** (3 * exp):.3g}{'kMGT'[exp - 1]}"
