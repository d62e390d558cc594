"""Engine of the Autograd page: derivatives, gradients, computation graphs and demos.

Functions the user types are text: they are evaluated only through
:func:`core.safe.expr.evaluate` (never Python's own evaluator) with the variables this
module builds as tensors that require grad. Everything returns plain data (floats,
lists, dicts), plotly figures or Graphviz DOT text; streamlit is never imported.

Public API
----------
* :func:`derivatives` / :func:`derivative_figure` - f(x), f'(x), f''(x) at a point and as curves
  (in :mod:`core.lessons.derivative` with the checks all these views share; re-exported here).
* :func:`gradient`, :func:`contour_data` / :func:`contour_figure` - g(w) of a vector w.
* :func:`graph_from_tensor` / :func:`graph_to_dot` - the autograd graph behind a tensor.
* :func:`trace_expression` - build leaves, evaluate, backward, graph and DOT in one call.
* :func:`demo_accumulation`, :func:`demo_no_grad`, :func:`demo_anomaly`,
  :func:`activations` / :func:`activation_figure` - the tutorials' teaching demos.
* ``EXAMPLES`` / :func:`run_example` - the tutorials' A1..A7 with PyTorch's true results.
"""
from __future__ import annotations

import dataclasses
import math
import re
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from core.errors import Code, LabError, Message, exception_text
from core.lessons.derivative import (
    LIMITS,
    MAX_POINTS,
    _as_float_tensor,
    _close,
    _count,
    _curve,
    _eval,
    _finite,
    _float_dtype,
    _grad,
    _number,
    _range,
)
from core.lessons.derivative import derivative_figure as derivative_figure  # re-exported: the page's engine
from core.lessons.derivative import derivatives as derivatives
from core.lessons.tensors import parse_values
from core.safe.allowlist import ExprError, Limits
from core.safe.budget import Budget, Deadline
from core.safe.expr import evaluate
from core.safe.pycode import imports_line, to_torch_code

MAX_VARIABLES = 8
MAX_VARIABLE_ELEMENTS = 100_000
MAX_GRAPH_NODES = 20_000
DOT_MAX_NODES = 300
MAX_NAME_CHARS = 40
GRID_SECONDS = 4.0  # budget for a contour grid evaluated point by point
SMALL_GRAD = 8  # leaves with at most this many elements show their gradient values

_ANOMALY_LOCK = threading.Lock()  # anomaly mode is process-wide in torch


# --------------------------------------------------------------------------- helpers of the demos and graphs
def _op_label(class_name: str) -> str:
    """"MulBackward0" -> "Mul"; other names unchanged."""
    short = re.sub(r"Backward\d*$", "", class_name)
    return short or class_name


def _leaf_grad(x: torch.Tensor) -> torch.Tensor:
    """``x.grad`` after a backward through ``x`` (the demos only call it then)."""
    assert x.grad is not None, "backward did not reach x"
    return x.grad


def _grad_value(x: torch.Tensor) -> float:
    return float(_leaf_grad(x))


# --------------------------------------------------------------------------- gradients of g(w)
def _w_values(w_values: object) -> list[float]:
    if isinstance(w_values, str):
        w_values = parse_values(w_values)
    if isinstance(w_values, torch.Tensor):
        w_values = w_values.detach().reshape(-1).tolist()
    if isinstance(w_values, (int, float)) and not isinstance(w_values, bool):
        w_values = [w_values]
    if not isinstance(w_values, (list, tuple)):
        raise LabError("autograd.w_list")
    if not 1 <= len(w_values) <= MAX_VARIABLES:
        raise LabError("autograd.w_count", max=MAX_VARIABLES, n=len(w_values))
    return [_finite(v, f"w{i}") for i, v in enumerate(w_values)]


def _w_variables(w: torch.Tensor) -> dict[str, torch.Tensor]:
    """``w`` itself and ``w0, w1, ...`` as views of its first dimension."""
    return {"w": w, **{f"w{i}": w[i] for i in range(w.shape[0])}}


def gradient(expr_text: str, w_values: object, dtype: object = "float32") -> dict[str, Any]:
    """Value and gradient of a scalar function g of a vector w (1..8 values).

    The expression may use ``w`` (``w[0]``, ``w @ w``, ``w.sum()``) or ``w0, w1, ...``.
    Returns ``{"expr", "w", "names", "value", "grad", "code"}`` with floats/lists of floats.
    """
    values = _w_values(w_values)
    dt = _float_dtype(dtype)
    value, grad = _value_and_grad(expr_text, values, dt)
    names = [f"w{i}" for i in range(len(values))]
    source, imports = to_torch_code(expr_text, ["w", *names])
    unpack = f"{', '.join(names)} = {', '.join(f'w[{i}]' for i in range(len(names)))}\n" if \
        any(re.search(rf"\b{n}\b", expr_text) for n in names) else ""
    code = (
        f"{imports_line(imports)}\n"
        f"w = torch.tensor({values!r}{'' if dt == torch.float32 else ', dtype=torch.float64'}, requires_grad=True)\n"
        f"{unpack}"
        f"g = {source}\n"
        "g.backward()\n"
        "print(g.item(), w.grad)"
    )
    return {"expr": expr_text, "w": values, "names": names, "value": value, "grad": grad, "code": code}


def _value_and_grad(expr_text: str, values: list[float], dt: torch.dtype,
                    limits: Limits = LIMITS) -> tuple[float, list[float]]:
    w = torch.tensor(values, dtype=dt, requires_grad=True)
    y = _as_float_tensor(evaluate(expr_text, _w_variables(w), limits), w[0], "g")
    if y.numel() != 1:
        raise LabError("autograd.g_not_scalar", shape=Code(str(tuple(y.shape))))
    y = y.reshape(())
    g = _grad(y, w)
    return _number(y), [float(v) for v in g.detach().tolist()]


def _grid_vectorized(expr_text: str, a: torch.Tensor,
                     b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """g, dg/dw0, dg/dw1 on the grid a x b (rows follow b) in one pass, or None when g is not
    elementwise on the grid (``w @ w``, ``w.sum()``)."""
    B, A = torch.meshgrid(b, a, indexing="ij")
    W0 = A.clone().requires_grad_(True)
    W1 = B.clone().requires_grad_(True)
    try:
        z = _as_float_tensor(_eval(expr_text, {"w": torch.stack([W0, W1]), "w0": W0, "w1": W1}), W0, "g")
        if tuple(z.shape) == tuple(W0.shape):
            k = max(1, W0.shape[0] // 2)
            with torch.no_grad():
                s0, s1 = A[:k].clone(), B[:k].clone()
                part = _as_float_tensor(_eval(expr_text, {"w": torch.stack([s0, s1]), "w0": s0, "w1": s1}), s0)
            if _close(part, z[:k]):
                total = z.sum()
                grads: tuple[torch.Tensor | None, ...] = (None, None)
                if total.requires_grad:
                    grads = torch.autograd.grad(total, (W0, W1), allow_unused=True)
                g0, g1 = (torch.zeros_like(A) if g is None else g for g in grads)
                return z.detach(), g0.detach(), g1.detach()
    except ExprError as exc:
        if exc.code in ("expr.timeout", "expr.memory_budget"):
            raise  # over the budget on the whole grid: one point at a time would not be faster
    except (ValueError, RuntimeError):
        pass
    return None


def _grid_slow(deadline: Deadline) -> LabError:
    return LabError("autograd.grid_slow", seconds=deadline.seconds, example=Code("w0**2 + w1**2"),
                    instead=Code("w @ w"))


def _grid_pointwise(expr_text: str, a: torch.Tensor, b: torch.Tensor, deadline: Deadline, done: int = 0,
                    total: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """g, dg/dw0, dg/dw1 on the grid a x b, one point at a time. The clock is checked before
    every point, each point's evaluation may only use the time that is left, and the points so
    far (``done`` before this grid, of ``total`` in all) stop it early when the rest cannot fit."""
    total = total if total is not None else done + len(a) * len(b)
    n_b, n_a = len(b), len(a)
    z = torch.empty(n_b, n_a, dtype=a.dtype)
    g0 = torch.empty_like(z)
    g1 = torch.empty_like(z)
    for i in range(n_b):
        for j in range(n_a):
            if deadline.expired() or deadline.cannot_finish(done + i * n_a + j, total):
                raise _grid_slow(deadline)
            limits = dataclasses.replace(LIMITS, max_seconds=max(deadline.remaining(), 1e-3))
            try:
                value, grad = _value_and_grad(expr_text, [float(a[j]), float(b[i])], a.dtype, limits)
            except ExprError as exc:
                if exc.code == "expr.timeout":
                    raise _grid_slow(deadline) from None
                raise
            z[i, j] = value
            g0[i, j], g1[i, j] = grad
    return z, g0, g1


def contour_data(
    expr_text: str,
    center: Sequence[float],
    span: float,
    points: int = 41,
    arrows: int = 11,
) -> dict[str, Any]:
    """g(w0, w1) on a grid around *center* (half-width *span*) and the gradient field.

    Returns ``{"expr", "center", "span", "w0", "w1", "z", "arrows": {"w0", "w1", "g0", "g1"},
    "value", "grad", "vectorized"}`` (z is a list of rows, one per w1 value; None where not
    finite). Expressions that are not elementwise on the grid (``w @ w``) are evaluated point
    by point on a coarser grid (at most 21 x 21, arrows at most 15 x 15), with ``vectorized``
    False, within ``GRID_SECONDS`` (and the request budget ``PYTORCH_LAB_BUDGET_S``) in all.
    """
    values = _w_values(center)
    if len(values) != 2:
        raise LabError("autograd.contour_vars", n=len(values))
    span = _finite(span, "span")
    if not 0 < span <= 1e6:
        raise LabError("autograd.span")
    points = _count(points, "points", 5, 201)
    arrows = _count(arrows, "arrows", 2, 31)
    at = gradient(expr_text, values)  # validates the expression on one point first

    def axes(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.linspace(values[0] - span, values[0] + span, n),
                torch.linspace(values[1] - span, values[1] + span, n))

    deadline = Deadline(min(GRID_SECONDS, Budget.current().seconds), "autograd.grid")
    a, b = axes(points)
    grid = _grid_vectorized(expr_text, a, b)
    vectorized = grid is not None
    if grid is not None:
        z = grid[0]
        qa, qb = axes(arrows)
        field = _grid_vectorized(expr_text, qa, qb)
        if field is None:  # elementwise on one grid, not on the other: rare; do it point by point
            field = _grid_pointwise(expr_text, qa, qb, deadline)
    else:
        a, b = axes(min(points, 21))
        qa, qb = axes(min(arrows, 15))
        total = len(a) * len(b) + len(qa) * len(qb)
        z, _, _ = _grid_pointwise(expr_text, a, b, deadline, 0, total)
        field = _grid_pointwise(expr_text, qa, qb, deadline, len(a) * len(b), total)
    _, g0, g1 = field
    QB, QA = torch.meshgrid(qb, qa, indexing="ij")
    return {
        "expr": expr_text, "center": values, "span": span,
        "w0": a.tolist(), "w1": b.tolist(), "z": [_curve(row) for row in z],
        "arrows": {"w0": _curve(QA), "w1": _curve(QB), "g0": _curve(g0), "g1": _curve(g1)},
        "value": at["value"], "grad": at["grad"], "vectorized": vectorized,
    }


def _arrow_segments(xs, ys, us, vs, scale: float) -> tuple[list, list]:
    """Line coordinates (with None breaks) for arrows from (x, y) along (u, v) * scale."""
    px: list[float | None] = []
    py: list[float | None] = []
    for x, y, u, v in zip(xs, ys, us, vs, strict=False):
        if None in (x, y, u, v) or (u == 0 and v == 0):
            continue
        ex, ey = x + u * scale, y + v * scale
        length = math.hypot(ex - x, ey - y)
        ang = math.atan2(ey - y, ex - x)
        head = 0.3 * length
        px += [x, ex, None]
        py += [y, ey, None]
        for side in (math.pi - 0.45, -(math.pi - 0.45)):
            px += [ex, ex + head * math.cos(ang + side), None]
            py += [ey, ey + head * math.sin(ang + side), None]
    return px, py


def contour_figure(
    expr_text: str,
    center: Sequence[float],
    span: float,
    points: int = 41,
    arrows: int = 11,
    labels: Mapping[str, str] | None = None,
    data: Mapping[str, Any] | None = None,
) -> go.Figure:
    """Contour of g(w0, w1) with gradient arrows (pointing uphill) and the point *center*.

    Pass *data* from :func:`contour_data` to avoid computing it again. *labels* may
    override "w0", "w1", "g", "gradient", "point".
    """
    lab = {"w0": "w0", "w1": "w1", "g": "g(w)", "gradient": "gradient", "point": "w", **(labels or {})}
    d = dict(data) if data is not None else contour_data(expr_text, center, span, points, arrows)
    fig = go.Figure()
    fig.add_trace(go.Contour(x=d["w0"], y=d["w1"], z=d["z"], colorscale="Viridis", name=lab["g"],
                             colorbar=dict(title=lab["g"]), contours=dict(showlabels=True)))
    q = d["arrows"]
    norms = [math.hypot(u, v) for u, v in zip(q["g0"], q["g1"], strict=False) if u is not None and v is not None]
    biggest = max(norms, default=0.0)
    n_side = max(2, round(math.sqrt(len(q["w0"]))))
    cell = 2 * d["span"] / (n_side - 1)
    if biggest > 0:
        scale = 0.9 * cell / biggest
        ax, ay = _arrow_segments(q["w0"], q["w1"], q["g0"], q["g1"], scale)
        fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", name=lab["gradient"],
                                 line=dict(color="white", width=1.5), hoverinfo="skip"))
    c0, c1 = d["center"]
    g0, g1 = d["grad"]
    fig.add_trace(go.Scatter(x=[c0], y=[c1], mode="markers", name=lab["point"],
                             marker=dict(color="red", size=10),
                             hovertext=[f"g = {d['value']:.4g}, grad = [{g0:.4g}, {g1:.4g}]"]))
    gn = math.hypot(g0, g1)
    if gn > 0 and math.isfinite(gn):
        ax, ay = _arrow_segments([c0], [c1], [g0], [g1], 1.5 * cell / gn)
        fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", showlegend=False,
                                 line=dict(color="red", width=3), hoverinfo="skip"))
    fig.update_layout(height=460, margin=dict(l=0, r=0, t=10, b=0), xaxis_title=lab["w0"], yaxis_title=lab["w1"],
                      legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    fig.update_xaxes(range=[d["w0"][0], d["w0"][-1]])
    fig.update_yaxes(range=[d["w1"][0], d["w1"][-1]], scaleanchor="x", scaleratio=1)
    return fig



# --------------------------------------------------------------------------- demos
def demo_accumulation(expr_text: str = "x**2 + 2*x + 2", x0: float = 2.0) -> dict[str, Any]:
    """Gradients add up: backward twice without zeroing doubles x.grad; x.grad.zero_() resets it.

    Returns ``{"expr", "x0", "value", "steps": [{"code", "grad", "note"}], "first", "second",
    "after_zero", "after_zero_backward", "code"}`` (grads as floats).
    """
    x0 = _finite(x0, "x0")
    x = torch.tensor(x0, requires_grad=True)

    def forward() -> torch.Tensor:
        y = _as_float_tensor(_eval(expr_text, {"x": x}), x)
        if y.numel() != 1:
            raise LabError("autograd.f_not_scalar", shape=Code(str(tuple(y.shape))))
        if not y.requires_grad:
            raise LabError("autograd.no_gradient")
        return y.reshape(())

    y = forward()
    y.backward()
    first = _grad_value(x)
    forward().backward()
    second = _grad_value(x)
    _leaf_grad(x).zero_()
    after_zero = _grad_value(x)
    forward().backward()
    after = _grad_value(x)
    source, imports = to_torch_code(expr_text, ["x"])
    code = (
        f"{imports_line(imports)}\n"
        f"x = torch.tensor({x0!r}, requires_grad=True)\n"
        f"({source}).backward()\nprint(x.grad)   # {first:g}\n"
        f"({source}).backward()\nprint(x.grad)   # {second:g}: added to the first\n"
        f"x.grad.zero_()\nprint(x.grad)   # {after_zero:g}\n"
        f"({source}).backward()\nprint(x.grad)   # {after:g}"
    )
    steps = [
        {"code": "y.backward()", "grad": first, "note": Message("autograd.step.first")},
        {"code": "y.backward()", "grad": second, "note": Message("autograd.step.again")},
        {"code": "x.grad.zero_()", "grad": after_zero, "note": Message("autograd.step.zeroed")},
        {"code": "y.backward()", "grad": after, "note": Message("autograd.step.after_zero")},
    ]
    return {"expr": expr_text, "x0": x0, "value": _number(y), "steps": steps, "first": first, "second": second,
            "after_zero": after_zero, "after_zero_backward": after, "code": code}


def demo_no_grad() -> dict[str, Any]:
    """requires_grad / grad_fn of results with and without torch.no_grad(), and with .detach().

    Returns ``{"rows": [{"code", "requires_grad", "grad_fn", "is_leaf"}], "by_name": {...},
    "detach_shares_memory", "code"}``.
    """
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    with torch.no_grad():
        z = x * 2
    d = x.detach()
    w = d * 2

    def row(code: str, t: torch.Tensor) -> dict[str, Any]:
        return {"code": code, "requires_grad": bool(t.requires_grad),
                "grad_fn": type(t.grad_fn).__name__ if t.grad_fn is not None else None,
                "is_leaf": bool(t.is_leaf), "value": t.detach().tolist()}

    rows = [row("x = torch.tensor([1., 2., 3.], requires_grad=True)", x), row("y = x * 2", y),
            row("with torch.no_grad(): z = x * 2", z), row("d = x.detach()", d), row("w = d * 2", w)]
    code = (
        "import torch\n"
        "x = torch.tensor([1., 2., 3.], requires_grad=True)\n"
        "y = x * 2\n"
        "print(y.requires_grad, y.grad_fn)   # True <MulBackward0 ...>\n"
        "with torch.no_grad():\n"
        "    z = x * 2\n"
        "print(z.requires_grad, z.grad_fn)   # False None\n"
        "d = x.detach()                      # same memory, no graph\n"
        "print(d.requires_grad, d.grad_fn)   # False None"
    )
    return {"rows": rows, "by_name": {"x": rows[0], "y": rows[1], "z": rows[2], "d": rows[3], "w": rows[4]},
            "detach_shares_memory": d.data_ptr() == x.data_ptr(), "code": code}


def demo_anomaly(expr_text: str = "sqrt(x) * 0", x0: float = 0.0) -> dict[str, Any]:
    """Backward with ``torch.autograd.detect_anomaly(check_nan=True)``: torch's error and the op.

    Returns ``{"expr", "x0", "value", "grad_plain" (x.grad without anomaly mode: often nan),
    "error" (torch's RuntimeError message or None), "op" (e.g. "SqrtBackward0"), "forward_op"
    (e.g. "Sqrt"), "warning" (the anomaly warning's first line), "nan" (bool), "code"}``.
    The warning's traceback points into the lab's evaluator, so the op name is the useful part.
    """
    x0 = _finite(x0, "x0")

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = _as_float_tensor(_eval(expr_text, {"x": x}), x)
        if not y.requires_grad:
            raise LabError("autograd.no_backward")
        return y if y.numel() == 1 else y.sum()

    x = torch.tensor(x0, requires_grad=True)
    y = forward(x)
    value = _number(y)
    y.backward()
    grad_plain = _grad_value(x)

    error = op = first_line = None
    x = torch.tensor(x0, requires_grad=True)
    with _ANOMALY_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autograd.detect_anomaly(check_nan=True):
                forward(x).backward()
        except RuntimeError as exc:
            error = exception_text(exc, limit=10_000)
    match = re.search(r"Function '([A-Za-z0-9_]+)' returned nan", error or "")
    if match:
        op = match.group(1)
    for w in caught:
        text = str(w.message)
        hit = re.search(r"Error detected in ([A-Za-z0-9_]+)", text)
        if hit:
            first_line = text.splitlines()[0]
            op = op or hit.group(1)
            break
    source, imports = to_torch_code(expr_text, ["x"])
    code = (
        f"{imports_line(imports)}\n"
        f"x = torch.tensor({x0!r}, requires_grad=True)\n"
        "with torch.autograd.detect_anomaly(check_nan=True):\n"
        f"    y = {source}\n"
        "    y.backward()   # RuntimeError naming the backward op that made NaN"
    )
    return {"expr": expr_text, "x0": x0, "value": value, "grad_plain": grad_plain, "error": error, "op": op,
            "forward_op": _op_label(op) if op else None, "warning": first_line,
            "nan": bool(error and "nan" in error.lower()), "code": code}


_ACTIVATIONS: dict[str, Callable[[float], nn.Module]] = {
    "ReLU": lambda slope: nn.ReLU(),
    "Sigmoid": lambda slope: nn.Sigmoid(),
    "Tanh": lambda slope: nn.Tanh(),
    "LeakyReLU": lambda slope: nn.LeakyReLU(slope),
}


def activations(lo: float = -5.0, hi: float = 5.0, points: int = 201, negative_slope: float = 0.01) -> dict[str, Any]:
    """ReLU, Sigmoid, Tanh and LeakyReLU on [lo, hi] and their derivatives from autograd.

    Returns ``{"x": [...], "names": [...], "functions": {name: {"y": [...], "dy": [...],
    "module": "nn.ReLU()"}}, "code"}``. Note PyTorch uses relu'(0) = 0.
    """
    lo, hi = _range(lo, hi)
    points = _count(points, "points", 2, MAX_POINTS)
    slope = _finite(negative_slope, "negative_slope")
    x = torch.linspace(lo, hi, points).requires_grad_(True)
    out: dict[str, dict[str, Any]] = {}
    for name, make in _ACTIVATIONS.items():
        module = make(slope)
        y = module(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
        out[name] = {"y": _curve(y), "dy": _curve(dy), "module": f"nn.{module!r}"}
    code = (
        "import torch\nfrom torch import nn\n"
        f"x = torch.linspace({lo!r}, {hi!r}, {points}, requires_grad=True)\n"
        f"y = nn.LeakyReLU({slope!r})(x)   # or nn.ReLU(), nn.Sigmoid(), nn.Tanh()\n"
        "(dy,) = torch.autograd.grad(y.sum(), x)   # elementwise, so this is y'(x) at every x"
    )
    return {"x": _curve(x), "names": list(out), "functions": out, "negative_slope": slope, "code": code}


# One colour and line style per function, the same in both panels. ReLU is drawn wide and first, and
# LeakyReLU dashed on top: with the usual slope 0.01 the two curves almost coincide, and one drawn
# over the other in the same style would hide it.
ACTIVATION_STYLES: dict[str, dict[str, Any]] = {
    "ReLU": {"color": "#1f77b4", "width": 6, "dash": "solid"},
    "Sigmoid": {"color": "#2ca02c", "width": 2.5, "dash": "solid"},
    "Tanh": {"color": "#9467bd", "width": 2.5, "dash": "dashdot"},
    "LeakyReLU": {"color": "#ff7f0e", "width": 2.5, "dash": "dash"},
}


def activation_figure(result: Mapping[str, Any], labels: Mapping[str, str] | None = None,
                      which: Sequence[str] | None = None) -> go.Figure:
    """Two panels: the activation functions and their derivatives (from :func:`activations`).

    Each function keeps one colour and line style (``ACTIVATION_STYLES``) in both panels, so curves
    that coincide (ReLU and LeakyReLU for x > 0) stay visible, the dashed one over the wide one.
    """
    lab = {"function": "function", "derivative": "derivative (autograd)", "x": "x", **(labels or {})}
    names = list(which) if which else list(result["names"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=(lab["function"], lab["derivative"]))
    fallback = ["#d62728", "#8c564b", "#e377c2", "#7f7f7f"]
    for i, name in enumerate(names):
        f = result["functions"][name]
        style = ACTIVATION_STYLES.get(name, {"color": fallback[i % len(fallback)], "width": 2.5, "dash": "dot"})
        line = dict(color=style["color"], width=style["width"], dash=style["dash"])
        fig.add_trace(go.Scatter(x=result["x"], y=f["y"], name=name, legendgroup=name, line=line), row=1, col=1)
        fig.add_trace(go.Scatter(x=result["x"], y=f["dy"], name=name, legendgroup=name, showlegend=False,
                                 line=line), row=1, col=2)
    fig.update_xaxes(title_text=lab["x"])
    fig.update_layout(height=380, margin=dict(l=0, r=0, t=30, b=0),
                      legend=dict(orientation="h", y=-0.22))
    return fig


# --------------------------------------------------------------------------- examples
EXAMPLES: dict[str, dict[str, Any]] = {
    "A1": {
        "title": Message("autograd.ex.A1"),
        "expr": "x**3 + 5*x", "point": 2.0, "values": None,
        "code": ("import torch\nx = torch.tensor(2.0, requires_grad=True)\ny = x**3 + 5*x\ny.backward()\n"
                 "print(y.item(), x.grad.item())   # 18.0 17.0"),
        "note": None,
    },
    "A2": {
        "title": Message("autograd.ex.A2"),
        "expr": "x**2 + 2*x + 2", "point": 2.0, "values": None,
        "code": ("import torch\nx = torch.tensor(2.0, requires_grad=True)\ny = x**2 + 2*x + 2\ny.backward()\n"
                 "print(y.item(), x.grad.item())   # 10.0 6.0"),
        "note": None,
    },
    "A3": {
        "title": Message("autograd.ex.A3"),
        "expr": "2*w0*w1 + w1*cos(w0)", "point": None, "values": [3.14, 1.0],
        "code": ("import torch\nw = torch.tensor([3.14, 1.0], requires_grad=True)\n"
                 "g = 2*w[0]*w[1] + w[1]*torch.cos(w[0])\ng.backward()\n"
                 "print(w.grad)   # tensor([1.9984, 5.2800])"),
        "note": None,  # computed: see a3_note
    },
    "A4": {
        "title": Message("autograd.ex.A4"),
        "expr": "x**2 + 2*x + 2", "point": 2.0, "values": None,
        "code": ("import torch\nx = torch.tensor(2.0, requires_grad=True)\n"
                 "(x**2 + 2*x + 2).backward(); print(x.grad)   # 6\n"
                 "(x**2 + 2*x + 2).backward(); print(x.grad)   # 12: added, not replaced\n"
                 "x.grad.zero_(); print(x.grad)                # 0"),
        "note": None,
    },
    "A5": {
        "title": Message("autograd.ex.A5"),
        "expr": "x * 2", "point": None, "values": [1.0, 2.0, 3.0],
        "code": (
            "import torch\nx = torch.tensor([1., 2., 3.], requires_grad=True)\n"
            "with torch.no_grad():\n    z = x * 2\nprint(z.requires_grad, z.grad_fn)   # False None\n"
            "d = x.detach()\nprint(d.requires_grad)              # False"),
        "note": None,
    },
    "A6": {
        "title": Message("autograd.ex.A6"),
        "expr": "sqrt(x) * 0", "point": 0.0, "values": None,
        "code": ("import torch\nx = torch.tensor(0.0, requires_grad=True)\n"
                 "with torch.autograd.detect_anomaly(check_nan=True):\n"
                 "    y = torch.sqrt(x) * 0     # forward is fine: 0\n"
                 "    y.backward()              # d sqrt/dx at 0 is inf, times 0 is NaN\n"
                 "# RuntimeError: Function 'SqrtBackward0' returned nan values in its 0th output."),
        "note": None,
    },
    "A7": {
        "title": Message("autograd.ex.A7"),
        "expr": "", "point": None, "values": None, "range": (-5.0, 5.0),
        "code": ("import torch\nfrom torch import nn\nx = torch.linspace(-5, 5, 201, requires_grad=True)\n"
                 "y = nn.Sigmoid()(x)\n(dy,) = torch.autograd.grad(y.sum(), x)   # sigmoid'(0) = 0.25"),
        "note": None,
    },
}


A3_CLAIM = (2.0, 6.28)  # what a tutorial prints for A3's gradient


def a3_note(result: Mapping[str, Any]) -> Message | None:
    """What the tutorial's A3 claim gets wrong, with the values :func:`gradient` computed; None when
    ``result`` is not A3's g(w) at A3's point (the learner changed them)."""
    ex = EXAMPLES["A3"]
    if result.get("expr", "").replace(" ", "") != ex["expr"].replace(" ", "") or list(result["w"]) != ex["values"]:
        return None
    w0 = ex["values"][0]
    g0, g1 = result["grad"]
    return Message("autograd.note.A3", claim0=A3_CLAIM[0], claim1=A3_CLAIM[1], g0=g0, g1=g1, cos=math.cos(w0),
                   two_w0=2 * w0)


def run_example(example_id: str) -> dict[str, Any]:
    """Run tutorial example A1..A7 with torch; returns ``{**EXAMPLES[id], "id", "result"}``.

    ``title`` and ``note`` are ``Message``s (A3's note holds the computed gradient; see :func:`a3_note`).
    ``result`` is what the matching function returns: :func:`derivatives` (A1, A2; range
    x0 ± 3), :func:`gradient` (A3), :func:`demo_accumulation` (A4), :func:`demo_no_grad` (A5),
    :func:`demo_anomaly` (A6) and :func:`activations` (A7).
    """
    if example_id not in EXAMPLES:
        raise LabError("autograd.example_unknown", example=Code(repr(example_id)), choices=Code(", ".join(EXAMPLES)))
    ex = EXAMPLES[example_id]
    if example_id in ("A1", "A2"):
        result = derivatives(ex["expr"], ex["point"], ex["point"] - 3, ex["point"] + 3)
    elif example_id == "A3":
        result = gradient(ex["expr"], ex["values"])
        return {**ex, "id": example_id, "result": result, "note": a3_note(result)}
    elif example_id == "A4":
        result = demo_accumulation(ex["expr"], ex["point"])
    elif example_id == "A5":
        result = demo_no_grad()
    elif example_id == "A6":
        result = demo_anomaly(ex["expr"], ex["point"])
    else:
        result = activations(*ex["range"])
    return {**ex, "id": example_id, "result": result}
