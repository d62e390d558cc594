"""Open an ONNX model someone else exported: parse, check, draw, tabulate and run it.

The file is untrusted. It is parsed as protobuf by ``onnx`` (data, never code), under a size cap;
a file whose tensors live in external files (``external_data``: a path the server would read) or
that uses operators outside the standard domains (custom ops: a runtime would look for native
libraries) is refused before anything else, then ``onnx.checker`` validates it and shape
inference adds the shapes drawn on the graph's edges. Only onnxruntime's own CPU kernels run it
(one thread, no custom op libraries, the request's time budget). Refusals are ``OnnxError``s
(``LabError`` codes ``onnx.*``).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.errors import Code, LabError, first_line
from core.safe.budget import Deadline

MAX_ONNX_BYTES = 50 * 1024 * 1024
MAX_NODES = 5_000
GRAPH_NODES = 150  # nodes drawn in the graph (the table lists every node)
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
EVAL_SAMPLES = 2_000  # test images an evaluation runs at most


class OnnxError(LabError):
    """An ONNX file the lab refuses or cannot run, with a message for the user (``onnx.*`` codes)."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int | str, ...]  # a number per fixed dimension, a name (or "?") per dynamic one
    dtype: str


@dataclass
class OnnxModel:
    """A parsed and checked ONNX model (with inferred shapes) and what the page shows about it."""

    proto: Any  # onnx.ModelProto
    data: bytes
    sha: str
    opset: int | None
    producer: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    params: int
    shapes: dict[str, tuple[int | str, ...]] = field(default_factory=dict)  # every value's inferred shape

    @property
    def nodes(self) -> int:
        return len(self.proto.graph.node)


def _graphs(graph) -> Iterator[Any]:
    """The graph and every subgraph in its nodes' attributes (If, Loop, Scan bodies)."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def _tensors(graph) -> Iterator[Any]:
    import onnx

    for g in _graphs(graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.TENSORS:
                    yield from attr.tensors


def _dims(value_type) -> tuple[int | str, ...]:
    if not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in value_type.tensor_type.shape.dim)


def _dtype(value_type) -> str:
    import onnx

    if not value_type.HasField("tensor_type"):
        return "?"
    return onnx.helper.tensor_dtype_to_np_dtype(value_type.tensor_type.elem_type).name \
        if value_type.tensor_type.elem_type else "?"


def _weights(graph) -> dict[str, int]:
    """Elements of each floating-point initializer (the parameters; integer constants such as a Reshape's
    target shape are not counted)."""
    import onnx

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    return {t.name: int(np.prod(t.dims)) if len(t.dims) else 1 for t in graph.initializer if t.data_type in floats}


def open_onnx(data: bytes, max_bytes: int = MAX_ONNX_BYTES) -> OnnxModel:
    """Parse and check an uploaded ONNX file (see the module doc); ``OnnxError`` when it is refused."""
    import onnx
    from google.protobuf.message import DecodeError

    if len(data) > max_bytes:
        raise OnnxError("onnx.too_large", mb=len(data) / 2**20, cap=max_bytes / 2**20)
    if not data:
        raise OnnxError("onnx.empty")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OnnxError("onnx.not_onnx", reason=Code(first_line(exc, 200))) from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise OnnxError("onnx.no_graph")
    nodes = sum(len(g.node) for g in _graphs(proto.graph))
    if nodes > MAX_NODES:
        raise OnnxError("onnx.too_many_nodes", n=nodes, cap=MAX_NODES)
    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            where = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise OnnxError("onnx.external_data", tensor=Code(tensor.name[:100]), path=Code(where[:200]))
    domains = sorted({o.domain for o in proto.opset_import if o.domain not in STANDARD_DOMAINS}
                     | {n.domain for g in _graphs(proto.graph) for n in g.node if n.domain not in STANDARD_DOMAINS})
    if domains or len(proto.functions):
        raise OnnxError("onnx.custom_domain", domains=Code(", ".join(domains or [f.domain for f in proto.functions])))
    try:
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise OnnxError("onnx.invalid", reason=Code(first_line(exc, 300))) from None
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        inferred = proto  # drawn without the shapes inference could not find
    graph = inferred.graph
    init_names = {t.name for t in graph.initializer}
    params = sum(_weights(graph).values())
    shapes = {v.name: _dims(v.type) for v in (*graph.input, *graph.value_info, *graph.output)}
    return OnnxModel(
        proto=inferred, data=data, sha=hashlib.sha256(data).hexdigest()[:16],
        opset=next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        inputs=[TensorInfo(v.name, _dims(v.type), _dtype(v.type)) for v in graph.input if v.name not in init_names],
        outputs=[TensorInfo(v.name, _dims(v.type), _dtype(v.type)) for v in graph.output],
        params=params, shapes=shapes)


# --------------------------------------------------------------------------- what the page shows
def _attribute(attr) -> str:
    import onnx

    value = onnx.helper.get_attribute_value(attr)
    if attr.type == onnx.AttributeProto.TENSOR:
        return f"tensor{tuple(value.dims)}"
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return "graph"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")[:40]
    if isinstance(value, list) and len(value) > 8:
        return f"[{', '.join(map(str, value[:8]))}, …]"
    return str(list(value) if isinstance(value, (list, tuple)) else value)[:60]


def node_table(model: OnnxModel) -> pd.DataFrame:
    """One row per node: its op type, inputs, outputs, attributes and the parameters it holds."""
    graph = model.proto.graph
    sizes = _weights(graph)
    rows = []
    for i, node in enumerate(graph.node):
        rows.append({"#": i, "name": node.name, "op_type": node.op_type,
                     "inputs": ", ".join(node.input), "outputs": ", ".join(node.output),
                     "attributes": "; ".join(f"{a.name}={_attribute(a)}" for a in node.attribute),
                     "parameters": sum(sizes.get(n, 0) for n in node.input)})
    return pd.DataFrame(rows)


def _esc(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')[:60]


def _shape_text(shape: tuple[int | str, ...] | None) -> str:
    return "" if not shape else "(" + ", ".join(map(str, shape)) + ")"


def graph_dot(model: OnnxModel, max_nodes: int = GRAPH_NODES) -> str:
    """Graphviz DOT of the graph (its first ``max_nodes`` nodes): inputs, nodes by op type, outputs,
    with each edge labelled by the tensor's inferred shape; weights are left out (the table counts them)."""
    graph = model.proto.graph
    init = {t.name for t in graph.initializer}
    lines = ["digraph onnx {", '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#f7f7f7", '
             'fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontsize=10];']
    producer: dict[str, str] = {}
    for i, v in enumerate(model.inputs):
        lines.append(f'  in{i} [label="{_esc(v.name)}\\n{_esc(_shape_text(v.shape))}", shape=oval, '
                     'fillcolor="#dbeafe"];')
        producer[v.name] = f"in{i}"
    for i, node in enumerate(graph.node[:max_nodes]):
        lines.append(f'  n{i} [label="{_esc(node.op_type)}"];')
        for name in node.input:
            if name and name not in init and name in producer:
                lines.append(f'  {producer[name]} -> n{i} [label="{_esc(_shape_text(model.shapes.get(name)))}"];')
        for name in node.output:
            producer[name] = f"n{i}"
    if len(graph.node) > max_nodes:
        lines.append(f'  more [label="… {len(graph.node) - max_nodes} more", shape=plaintext];')
    for i, v in enumerate(model.outputs):
        lines.append(f'  out{i} [label="{_esc(v.name)}\\n{_esc(_shape_text(v.shape))}", shape=oval, '
                     'fillcolor="#dcfce7"];')
        if v.name in producer:
            lines.append(f'  {producer[v.name]} -> out{i};')
    lines.append("}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- running it
def fits(model: OnnxModel, input_shape: tuple[int, ...], classes: int) -> bool:
    """Whether the model takes one float input of ``input_shape`` (batched, or flattened) and gives ``classes``
    scores per sample."""
    if len(model.inputs) != 1 or not model.outputs:
        return False
    shape, out = model.inputs[0].shape, model.outputs[0].shape
    body = tuple(shape[1:])
    same = len(body) == len(input_shape) and all(not isinstance(d, int) or d == e for d, e in zip(body, input_shape,
                                                                                                strict=True))
    flat = len(body) == 1 and (not isinstance(body[0], int) or body[0] == int(np.prod(input_shape)))
    scores = len(out) == 2 and (not isinstance(out[1], int) or out[1] == classes)
    return model.inputs[0].dtype == "float32" and (same or flat) and scores


def session(model: OnnxModel):
    """An onnxruntime session on the CPU, one thread, no custom op libraries."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model.data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for any bad graph
        raise OnnxError("onnx.runtime", reason=Code(first_line(exc, 300))) from None


def run(model: OnnxModel, x: torch.Tensor, sess=None, seconds: float | None = None) -> torch.Tensor:
    """The model's first output for inputs ``x`` (N, ...), run in batches its input allows, within the
    time budget."""
    sess = sess or session(model)
    spec = model.inputs[0]
    batch_dim = spec.shape[0] if spec.shape else "?"
    body = tuple(spec.shape[1:])
    flat = len(body) == 1
    arr = x.reshape(len(x), -1) if flat else x
    step = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else 256
    deadline = Deadline(seconds, "budget.evaluation")
    parts = []
    for i in range(0, len(arr), step):
        deadline.check_progress(i, len(arr))
        chunk = arr[i:i + step].detach().cpu().float().numpy()
        n = len(chunk)
        if isinstance(batch_dim, int) and batch_dim > 0 and n < step:  # a fixed batch: pad the last one
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
        try:
            out = sess.run(None, {spec.name: np.ascontiguousarray(chunk, dtype=np.float32)})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors (shapes, types) have their own classes
            raise OnnxError("onnx.runtime", reason=Code(first_line(exc, 300))) from None
        parts.append(torch.from_numpy(np.asarray(out, dtype=np.float32)[:n]))
    return torch.cat(parts)


def evaluate(model: OnnxModel, x: torch.Tensor, y: torch.Tensor, classes: int, limit: int = EVAL_SAMPLES) -> dict:
    """Accuracy, confusion matrix, per-class accuracy and the misclassified samples (like the Train page's
    evaluation) of the model on (``x``, ``y``), at most ``limit`` samples."""
    x, y = x[:limit], y[:limit]
    logits = run(model, x)
    if logits.dim() != 2 or logits.shape[1] != classes:
        raise OnnxError("onnx.outputs", shape=Code(str(tuple(logits.shape[1:]))), classes=classes)
    probs = torch.softmax(logits, dim=1)
    pred = probs.argmax(dim=1)
    confusion = torch.zeros(classes, classes, dtype=torch.int64)
    confusion.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    per_class = confusion.diag().float() / confusion.sum(dim=1).clamp(min=1).float()
    wrong = torch.nonzero(pred != y).flatten()
    order = wrong[torch.argsort(probs[wrong, pred[wrong]], descending=True)]
    return {"accuracy": float((pred == y).float().mean()), "confusion": confusion.numpy(),
            "per_class": per_class.numpy(), "wrong": order.numpy(), "pred": pred.numpy(),
            "confidence": probs.max(dim=1).values.numpy(), "n": len(y)}


def predict_one(model: OnnxModel, x: torch.Tensor) -> dict:
    """Class probabilities for one input (1, ...), as ``core.ml.predict.predict`` gives them."""
    probs = torch.softmax(run(model, x)[:1].float().reshape(1, -1), dim=1)[0]
    return {"probs": probs.tolist(), "label": int(probs.argmax()), "confidence": float(probs.max())}
