"""The autograd graph behind a tensor, as data and as Graphviz DOT; trace an expression end to end."""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import torch

from core.errors import Code, LabError, exception_text
from core.lessons.autograd import (
    DOT_MAX_NODES,
    MAX_GRAPH_NODES,
    MAX_NAME_CHARS,
    MAX_VARIABLE_ELEMENTS,
    MAX_VARIABLES,
    SMALL_GRAD,
    _op_label,
)
from core.lessons.derivative import _count, _eval
from core.lessons.tensors import describe, parse_values
from core.safe.allowlist import ALLOWED_FUNCTIONS, CONSTANTS, DTYPES
from core.safe.pycode import imports_line, to_torch_code

# --------------------------------------------------------------------------- graphs


def _clean_name(name: object) -> str:
    text = str(name)
    text = "".join(ch if (ch.isprintable() or ch == "\n") else "\ufffd" for ch in text)
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1] + "…"


def _name_lookup(names: Mapping[Any, Any] | None) -> dict[int, tuple[torch.Tensor, str]]:
    """id(tensor) -> (tensor, name) from {name: tensor} or {tensor: name}."""
    table: dict[int, tuple[torch.Tensor, str]] = {}
    for key, value in (names or {}).items():
        if isinstance(value, torch.Tensor) and not isinstance(key, torch.Tensor):
            table[id(value)] = (value, _clean_name(key))
        elif isinstance(key, torch.Tensor):
            table[id(key)] = (key, _clean_name(value))
        else:
            raise LabError("autograd.names_mapping")
    return table


def _lookup(table: Mapping[int, tuple[torch.Tensor, str]], t: object) -> str | None:
    hit = table.get(id(t))
    return hit[1] if hit is not None and hit[0] is t else None


def _grad_info(g: object) -> dict[str, Any]:
    if not isinstance(g, torch.Tensor):
        return {"grad": None, "grad_norm": None}
    g = g.detach()
    if g.is_floating_point() and g.dtype != torch.float64:
        g = g.float()
    norm = float(g.double().norm()) if g.numel() else 0.0
    values = g.tolist() if g.numel() <= SMALL_GRAD else None
    return {"grad": values, "grad_norm": norm}


def _saved_text(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def graph_from_tensor(
    t: torch.Tensor,
    names: Mapping[Any, Any] | None = None,
    show_saved: bool = False,
    grads: Mapping[Any, Any] | None = None,
    max_nodes: int = MAX_GRAPH_NODES,
) -> dict[str, Any]:
    """The autograd graph that produced *t*, walked iteratively (no recursion) from ``t.grad_fn``.

    * *names*: ``{name: tensor}`` or ``{tensor: name}``; leaves (and *t*) are labelled with them.
    * *show_saved*: add a node per tensor an op saved for backward (``grad_fn._saved_*``) with its
      shape; non-tensor saved values go in the op node's ``saved`` dict. After a backward without
      ``retain_graph`` they are freed: the op node then has ``saved_freed`` True.
    * *grads*: ``{name or tensor: gradient}`` to show on leaves; default: each leaf's ``.grad``.

    Returns ``{"nodes", "edges", "output", "truncated"}``. Nodes, in breadth-first order from the
    output, are dicts with ``id, kind ("output"|"op"|"leaf"|"saved"), label, detail, name, shape,
    grad_fn, grad (values when at most 8 elements), grad_norm, saved, saved_freed, is_output``.
    Edges ``{"source", "target", "kind": "data"|"saved"}`` point the way data flows forward
    (leaf -> op -> output). At most *max_nodes* nodes; then ``truncated`` is True.
    """
    if not isinstance(t, torch.Tensor):
        raise LabError("tensors.not_tensor", type=Code(type(t).__name__))
    max_nodes = _count(max_nodes, "max_nodes", 1, 1_000_000)
    table = _name_lookup(names)
    grad_table: dict[int, tuple[object, object]] = {}
    for key, g in (grads or {}).items():
        if isinstance(key, torch.Tensor):
            grad_table[id(key)] = (key, g)
        else:
            entry = next((v for v in table.values() if v[1] == _clean_name(key)), None)
            if entry is not None:
                grad_table[id(entry[0])] = (entry[0], g)

    def grad_of(leaf: torch.Tensor) -> object:
        hit = grad_table.get(id(leaf))
        if hit is not None and hit[0] is leaf:
            return hit[1]
        return leaf.grad if grads is None else None

    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    keep: list[object] = []  # keeps every walked object alive, so ids stay unique
    node_of: dict[int, str] = {}
    truncated = False

    def new_node(kind: str, label: str, **extra: Any) -> str:
        node_id = f"n{len(nodes)}"
        node: dict[str, Any] = {"id": node_id, "kind": kind, "label": label, "detail": "", "name": None, "shape": None,
                "grad_fn": None, "grad": None, "grad_norm": None, "saved": {}, "saved_freed": False,
                "is_output": False}
        node.update(extra)
        nodes.append(node)
        return node_id

    def leaf_node(leaf: torch.Tensor, is_output: bool = False) -> str:
        name = _lookup(table, leaf)
        shape = tuple(int(s) for s in leaf.shape)
        return new_node("leaf", name or "leaf", name=name, shape=shape, detail=f"shape {shape}",
                        is_output=is_output, **_grad_info(grad_of(leaf)))

    out_name = _lookup(table, t)
    out_shape = tuple(int(s) for s in t.shape)
    if t.grad_fn is None:
        nid = leaf_node(t, is_output=True)
        if not t.requires_grad:
            nodes[0]["detail"] += " (requires_grad=False: no graph)"
        return {"nodes": nodes, "edges": edges, "output": nid, "truncated": False}

    output_id = new_node("output", out_name or "output", name=out_name, shape=out_shape,
                         detail=f"shape {out_shape}", grad_fn=type(t.grad_fn).__name__, is_output=True)

    def node_for(fn: object) -> tuple[str | None, bool]:
        """Node id for a grad_fn (new: True when it still has to be expanded)."""
        key = id(fn)
        if key in node_of:
            return node_of[key], False
        if len(nodes) >= max_nodes:
            return None, False
        keep.append(fn)
        cls = type(fn).__name__
        if cls == "AccumulateGrad":
            leaf = fn.variable  # type: ignore[attr-defined]
            keep.append(leaf)
            nid = leaf_node(leaf)
            node_of[key] = nid
            return nid, False
        nid = new_node("op", _op_label(cls), detail=cls, grad_fn=cls)
        node_of[key] = nid
        return nid, True

    root_id, _ = node_for(t.grad_fn)
    if root_id is None:  # max_nodes leaves room for the output node alone
        return {"nodes": nodes, "edges": edges, "output": output_id, "truncated": True}
    edges.append({"source": root_id, "target": output_id, "kind": "data"})
    queue: deque[tuple[object, str]] = deque([(t.grad_fn, root_id)])
    while queue:
        fn, fn_id = queue.popleft()
        if show_saved:
            _add_saved(fn, fn_id, nodes, edges, table, new_node, max_nodes)
        for next_fn, _index in getattr(fn, "next_functions", ()):
            if next_fn is None:
                continue
            child, expand = node_for(next_fn)
            if child is None:
                truncated = True
                continue
            edges.append({"source": child, "target": fn_id, "kind": "data"})
            if expand:
                queue.append((next_fn, child))
    return {"nodes": nodes, "edges": edges, "output": output_id, "truncated": truncated}


def _add_saved(fn, fn_id, nodes, edges, table, new_node: Callable[..., str], max_nodes: int) -> None:
    node = nodes[int(fn_id[1:])]
    for attr in dir(fn):
        if not attr.startswith("_saved_"):
            continue
        label = attr[len("_saved_"):]
        try:
            value = getattr(fn, attr)
        except RuntimeError:  # freed by a backward without retain_graph
            node["saved_freed"] = True
            continue
        except Exception:  # noqa: BLE001 - an attribute we cannot read is simply not shown
            continue
        tensors = None
        if isinstance(value, torch.Tensor):
            tensors = [value]
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            tensors = list(value)
        if tensors is None:
            if value is not None:  # None: nothing was saved (that input needs no gradient)
                node["saved"][label] = _saved_text(value)
            continue
        if len(nodes) >= max_nodes:
            return
        shapes = [tuple(int(s) for s in v.shape) for v in tensors]
        name = _lookup(table, tensors[0]) if len(tensors) == 1 else None
        detail = ", ".join(f"shape {s}" for s in shapes)
        sid = new_node("saved", label, name=name, shape=shapes[0] if len(shapes) == 1 else None,
                       detail=f"{name} · {detail}" if name else detail)
        edges.append({"source": sid, "target": fn_id, "kind": "saved"})


_DOT_STYLE = {
    "output": 'shape=box, style="rounded,filled", fillcolor="#c8e6c9"',
    "op": 'shape=box, style=filled, fillcolor="#eeeeee"',
    "leaf": 'shape=box, style="rounded,filled", fillcolor="#bbdefb"',
    "saved": 'shape=box, style="dashed,filled", fillcolor="#ffe0b2", fontsize=9',
    "more": 'shape=plaintext',
}


def dot_escape(text: object) -> str:
    """Text for a double-quoted DOT string: backslashes, quotes and newlines escaped."""
    s = str(text)
    s = "".join(ch if (ch.isprintable() or ch in "\n\r") else "\ufffd" for ch in s)
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    return s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def _format_number(v: float) -> str:
    return f"{v:.4g}"


def _format_grad(node: Mapping[str, Any]) -> str:
    g = node.get("grad")
    if g is not None:
        if not isinstance(g, list):
            return "grad " + _format_number(g)
        flat: list = []
        stack: list = [g]
        while stack:  # flatten nested lists without recursion
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                flat.append(item)
        return "grad [" + ", ".join(_format_number(v) for v in flat) + "]"
    if node.get("grad_norm") is not None:
        return f"|grad| {_format_number(node['grad_norm'])}"
    return ""


def graph_to_dot(graph: Mapping[str, Any], max_nodes: int = DOT_MAX_NODES, rankdir: str = "TB") -> str:
    """Graphviz DOT text for :func:`graph_from_tensor`'s graph (for ``st.graphviz_chart``).

    Labels are escaped (user-chosen names may hold quotes, backslashes, newlines, braces,
    HTML). At most *max_nodes* nodes are drawn, then one "… N more" node stands for the rest.
    """
    if rankdir not in ("TB", "BT", "LR", "RL"):
        raise LabError("autograd.rankdir")
    max_nodes = _count(max_nodes, "max_nodes", 1, 5000)
    nodes = list(graph.get("nodes", ()))
    # The output and (up to 20) leaves are always drawn; the rest in breadth-first order.
    pinned = [n for n in nodes if n.get("is_output") or n.get("kind") in ("output", "leaf")][:20]
    pinned_ids = {n["id"] for n in pinned}
    room = max(max_nodes - len(pinned), 0)
    others = [n for n in nodes if n["id"] not in pinned_ids][:room]
    shown_ids = pinned_ids | {n["id"] for n in others}
    shown = [n for n in nodes if n["id"] in shown_ids]
    hidden = len(nodes) - len(shown)
    lines = [
        "digraph autograd {",
        f"  graph [rankdir={rankdir}, nodesep=0.3, ranksep=0.35];",
        '  node [fontname="Helvetica", fontsize=11, margin="0.12,0.05"];',
        '  edge [arrowsize=0.7];',
    ]
    for n in shown:
        parts = [str(n.get("label", ""))]
        if n.get("kind") == "op":
            parts.append(str(n.get("grad_fn") or ""))
            saved = n.get("saved") or {}
            parts += [f"{k} = {v}" for k, v in list(saved.items())[:4]]
            if n.get("saved_freed"):
                parts.append("(saved tensors freed)")
        elif n.get("detail"):
            parts.append(str(n["detail"]))
        if n.get("kind") == "output" and n.get("grad_fn"):
            parts.append(f"grad_fn={n['grad_fn']}")
        grad = _format_grad(n)
        if grad:
            parts.append(grad)
        label = "\n".join(p for p in parts if p)
        style = _DOT_STYLE.get(str(n.get("kind")), _DOT_STYLE["op"])
        lines.append(f'  "{dot_escape(n["id"])}" [label="{dot_escape(label)}", {style}];')
    cut: list[tuple[str, str]] = []
    seen_cut: set[tuple[str, str]] = set()
    for e in graph.get("edges", ()):
        src, dst = e["source"], e["target"]
        if src in shown_ids and dst in shown_ids:
            attr = ' [style=dashed, color="#999999"]' if e.get("kind") == "saved" else ""
            lines.append(f'  "{dot_escape(src)}" -> "{dot_escape(dst)}"{attr};')
            continue
        pair = (src, "more") if src in shown_ids else ("more", dst) if dst in shown_ids else None
        if pair is not None and pair not in seen_cut:
            seen_cut.add(pair)
            cut.append(pair)
    if hidden > 0 or graph.get("truncated"):
        count = f"{hidden:,} more" if hidden > 0 else "more"
        lines.append(f'  "more" [label="{dot_escape("… " + count + " nodes")}", {_DOT_STYLE["more"]}];')
        for src, dst in cut:
            lines.append(f'  "{dot_escape(src)}" -> "{dot_escape(dst)}" [style=dotted];')
    lines.append("}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- trace_expression
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")


def _leaf_from(name: str, spec: object) -> tuple[torch.Tensor, object]:
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], bool):
        values, requires_grad = spec
    else:
        values, requires_grad = spec, True
    if isinstance(values, str):
        values = parse_values(values)
    try:
        if isinstance(values, torch.Tensor):
            leaf = values.detach().clone().to(torch.float32)
        else:
            leaf = torch.tensor(values, dtype=torch.float32)
    except Exception as exc:
        raise LabError("autograd.variable_failed", name=Code(name), torch=Code(exception_text(exc))) from exc
    if leaf.numel() > MAX_VARIABLE_ELEMENTS:
        raise LabError("autograd.variable_too_large", name=Code(name), n=leaf.numel(), max=MAX_VARIABLE_ELEMENTS)
    return leaf.requires_grad_(bool(requires_grad)), values


def trace_expression(
    expr_text: str,
    variables: Mapping[str, object],
    show_saved: bool = False,
    max_dot_nodes: int = DOT_MAX_NODES,
) -> dict[str, Any]:
    """Build leaf tensors, evaluate *expr_text*, call backward and return the graph with grads.

    *variables* maps names to ``(values, requires_grad)`` (values: number, nested list, typed
    text or tensor; leaves are float32). Non-scalar results are reduced with ``.sum()``
    before ``backward()``.

    Returns ``{"result" (tensor, detached), "result_info" (core.lessons.tensors.describe of the result),
    "graph", "dot", "grads" ({name: tensor or None}), "backward" (the backward code, or None when
    nothing requires grad), "code"}``.
    """
    if not isinstance(variables, Mapping):
        raise LabError("autograd.variables_mapping")
    if not 1 <= len(variables) <= MAX_VARIABLES:
        raise LabError("autograd.variables_count", max=MAX_VARIABLES, n=len(variables))
    leaves: dict[str, torch.Tensor] = {}
    for name, spec in variables.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise LabError("autograd.variable_name", name=Code(repr(name)))
        if name in ALLOWED_FUNCTIONS or name in CONSTANTS or name in DTYPES:
            raise LabError("autograd.variable_taken", name=Code(repr(name)))
        leaves[name], _ = _leaf_from(name, spec)
    result = _eval(expr_text, leaves)
    if isinstance(result, (bool, int, float)):
        result = torch.tensor(float(result))
    if not isinstance(result, torch.Tensor):
        raise LabError("autograd.result_not_tensor", type=Code(type(result).__name__))
    backward = None
    if result.requires_grad:
        target = result if result.numel() == 1 else result.sum()
        backward = "y.backward()" if result.numel() == 1 else "y.sum().backward()  # y is not a scalar"
        try:
            target.backward(retain_graph=True)
        except RuntimeError as exc:
            raise LabError("autograd.backward_failed", torch=Code(exception_text(exc))) from exc
    graph = graph_from_tensor(result, names={**leaves, "y": result}, show_saved=show_saved)
    grads = {name: (leaf.grad.detach().clone() if leaf.grad is not None else None) for name, leaf in leaves.items()}

    source, imports = to_torch_code(expr_text, list(leaves))
    lines = [imports_line(imports)]
    for name, leaf in leaves.items():
        values = leaf.detach().tolist()
        rg = ", requires_grad=True" if leaf.requires_grad else ""
        lines.append(f"{name} = torch.tensor({values!r}{rg})")
    lines.append(f"y = {source}")
    if backward:
        lines.append(backward)
        lines += [f"print({name}.grad)" for name, leaf in leaves.items() if leaf.requires_grad]
    return {
        "result": result.detach(), "result_info": describe(result), "graph": graph,
        "dot": graph_to_dot(graph, max_nodes=max_dot_nodes), "grads": grads,
        "backward": backward, "code": "\n".join(lines),
    }
