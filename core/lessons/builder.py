"""The Model Builder's engine: editing a layer stack, torchinfo summaries, the architecture
graph, parameters and the .train()/.eval() demo. Pages call these and render the results."""
from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn

from core.errors import Code, LabError
from core.ml.modules import build_model, check_batch, infer_shapes
from core.ml.spec import LAYER_ARGS, Layer, ModelSpec, SequentialLayer, check_input_shape

# Arguments a newly added layer starts with (the editor then fixes sizes to fit).
NEW_LAYER_ARGS: dict[str, dict] = {
    "Linear": {"in_features": 128, "out_features": 10},
    "Conv1d": {"in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
    "Conv2d": {"in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
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
    key = {"Linear": "in_features", "Conv1d": "in_channels", "Conv2d": "in_channels",
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
    for info in stats.summary_list:
        if info.depth > depth or info.depth == 0:
            continue
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
        rows.append({"layer": name, "train mean": float(train_out.mean()), "train std": float(train_out.std()),
                     "eval mean": float(eval_out.mean()), "eval std": float(eval_out.std()),
                     "zeros in train (%)": 100.0 * float((train_out == 0).float().mean()),
                     "max |train − eval|": diff, "differ": diff > 1e-6})
    return pd.DataFrame(rows)


def _esc(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def args_label(layer: Layer, per_line: int = 0) -> str:
    """``in_features=784, out_features=10``; with ``per_line``, a newline after every n arguments."""
    parts = [f"{k}={v}" for k, v in layer.args.model_dump(mode="json").items()]
    if not per_line:
        return ", ".join(parts)
    return "\n".join(", ".join(parts[i:i + per_line]) for i in range(0, len(parts), per_line))


def architecture_dot(spec: ModelSpec) -> str:
    """Graphviz DOT of the layer stack with tensor shapes on the edges.

    A ResBlock is drawn with its inner path and the identity skip as a dashed edge
    into the addition. A stack with a shape error is drawn up to the failing layer,
    which is marked red.
    """
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
             f'  input [label="input\\n{_esc(str((1, *spec.input_shape)))}", shape=oval, fillcolor="#dbeafe"];']
    prev = "input"
    prev_shape: tuple[int, ...] | None = (1, *spec.input_shape)
    for i, layer in enumerate(layers):
        node = f"l{i}"
        title = (f"{layer.name}: " if layer.name else "") + layer.type
        color = "#fecaca" if failed == i else ("#fde68a" if layer.type in ("ResBlock", "Sequential") else "#f7f7f7")
        edge_label = _esc(str(prev_shape)) if prev_shape is not None else ""
        if layer.type == "ResBlock":
            ch = layer.args.model_dump()["channels"]
            lines += [f'  subgraph cluster_{i} {{ label="{_esc(title)}"; style=rounded; color="#b45309";',
                      f'    {node}_c1 [label="Conv2d({ch},{ch},3,p=1) + BN + ReLU"];',
                      f'    {node}_c2 [label="Conv2d({ch},{ch},3,p=1) + BN"];',
                      f'    {node}_add [label="add, then ReLU", shape=ellipse, fillcolor="#fde68a"];',
                      f"    {node}_c1 -> {node}_c2; {node}_c2 -> {node}_add; }}",
                      f'  {prev} -> {node}_c1 [label="{edge_label}"];',
                      f'  {prev} -> {node}_add [label="identity", style=dashed, color="#b45309"];']
            node = f"{node}_add"
        else:
            detail = f"{len(layer.layers)} layers" if isinstance(layer, SequentialLayer) else args_label(layer, 2)
            label = _esc(title + ("\n" + detail if detail else ""))
            lines.append(f'  {node} [label="{label}", fillcolor="{color}"];')
            lines.append(f'  {prev} -> {node} [label="{edge_label}"];')
        if failed == i:
            lines.append(f'  err [label="shape error here", shape=note, fillcolor="#fecaca"]; '
                         f'{node} -> err [style=dotted];')
            break
        prev, prev_shape = node, shapes[i] if i < len(shapes) else None
    else:
        lines.append('  output [label="output", shape=oval, fillcolor="#dcfce7"];')
        lines.append(f'  {prev} -> output [label="{_esc(str(prev_shape))}"];')
    lines.append("}")
    return "\n".join(lines)


def human(n: float) -> str:
    """1234567 -> '1.23M' for compact totals."""
    if n < 1000:
        return f"{n:g}"
    exp = min(int(math.log10(abs(n)) // 3), 4)
    return f"{n / 10 ** (3 * exp):.3g}{'kMGT'[exp - 1]}"
