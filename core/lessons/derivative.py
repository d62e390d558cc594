"""f(x) on the Autograd page: f, f', f'' by autograd, and the checks every autograd view shares.

The function the user types is text: it is evaluated only through :func:`core.safe.expr.evaluate`
(never Python's own evaluator). The validation and tensor helpers here (``_finite``, ``_range``,
``_count``, ``_float_dtype``, ``_eval``, ``_as_float_tensor``, ``_grad``, ``_curve``...) are also
used by :mod:`core.lessons.autograd` (gradients of g(w), demos) and :mod:`core.lessons.graph`.

Public API
----------
* :func:`derivatives` / :func:`derivative_figure` - f(x), f'(x), f''(x) at a point and as curves.
  Both are re-exported by :mod:`core.lessons.autograd`, the page's engine.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
import torch

from core.errors import Code, LabError, Term, exception_text
from core.lessons.tensors import finite_number
from core.safe.allowlist import DTYPES, Limits
from core.safe.expr import evaluate
from core.safe.pycode import imports_line, to_torch_code

MAX_POINTS = 2000

# Autograd works on many points at once; keep every intermediate modest.
LIMITS = Limits(max_elements=1_000_000)


# --------------------------------------------------------------------------- validation
def _finite(value: object, what: str) -> float:
    """A finite float; ``what`` is the parameter's name (shown as code when refused)."""
    return finite_number(value, Code(what))


def _count(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise LabError("autograd.not_whole", what=Code(what))
    value = int(value)
    if not lo <= value <= hi:
        raise LabError("autograd.between", what=Code(what), lo=lo, hi=hi, value=value)
    return value


def _range(lo: object, hi: object) -> tuple[float, float]:
    a = finite_number(lo, Term("autograd.range_lo"))
    b = finite_number(hi, Term("autograd.range_hi"))
    if not a < b:
        raise LabError("autograd.range_order", lo=a, hi=b)
    if b - a > 1e12:
        raise LabError("autograd.range_wide")
    return a, b


def _float_dtype(dtype: object) -> torch.dtype:
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype.strip().removeprefix("torch."))
    if dtype not in (torch.float32, torch.float64):
        raise LabError("autograd.dtype")
    return dtype


def _eval(expr_text: str, variables: Mapping[str, object]) -> object:
    return evaluate(expr_text, variables, LIMITS)  # refuses anything but text: ExprError, a ValueError


def _as_float_tensor(value: object, like: torch.Tensor, what: str = "f") -> torch.Tensor:
    """The expression's result as a floating tensor; a plain number is a constant function."""
    if isinstance(value, (bool, int, float)):
        # Through float64: a constant beyond float32's range (1e308) becomes inf, as torch arithmetic
        # makes it; full_like would raise "cannot be converted to type float without overflow".
        return torch.tensor(float(value), dtype=torch.float64).to(like.dtype).expand_as(like.detach()).clone()
    if not isinstance(value, torch.Tensor):
        raise LabError("autograd.result_type", what=Code(what), type=Code(type(value).__name__))
    if value.is_complex():
        raise LabError("autograd.complex", what=Code(what))
    if not value.is_floating_point():
        value = value.to(like.dtype)  # e.g. a comparison: constant pieces, derivative 0
    return value


def _grad(output: torch.Tensor, inputs: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """d output / d inputs, zeros when output does not depend on inputs."""
    if not output.requires_grad:
        return torch.zeros_like(inputs.detach())
    try:
        (g,) = torch.autograd.grad(output, inputs, create_graph=create_graph, allow_unused=True)
    except RuntimeError as exc:
        raise LabError("autograd.grad_failed", torch=Code(exception_text(exc))) from exc
    return torch.zeros_like(inputs.detach()) if g is None else g


def _number(t: torch.Tensor) -> float:
    return float(t.detach().reshape(()).item())


def _curve(t: torch.Tensor) -> list[float | None]:
    """Values for plotting: non-finite values become None (gaps)."""
    return [v if math.isfinite(v) else None for v in t.detach().double().reshape(-1).tolist()]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        return False
    both = torch.isfinite(a) & torch.isfinite(b)
    ok = torch.isclose(a, b, rtol=1e-3, atol=1e-5) | ~both
    return bool(ok.all())



# --------------------------------------------------------------------------- derivatives
def derivatives(
    expr_text: str,
    x0: float,
    lo: float,
    hi: float,
    points: int = 200,
    dtype: object = "float32",
) -> dict[str, Any]:
    """f(x0), f'(x0), f''(x0) and the curves of f, f', f'' on [lo, hi] from autograd.

    *expr_text* uses the variable ``x`` (e.g. ``"x**3 + 5*x"``) and must act elementwise:
    the curves are computed in one pass with x a 1-D tensor of *points* values, using
    ``grad(f(x).sum(), x, create_graph=True)`` and the same again for f''.

    Returns ``{"expr", "x0", "value", "d1", "d2", "x", "f", "df", "d2f", "dtype", "code"}``;
    value/d1/d2 are floats (possibly nan/inf); x/f/df/d2f are lists of floats with None where
    a value is not finite. Raises a LabError (ExprError for the expression) for bad input.
    """
    x0 = _finite(x0, "x0")
    lo, hi = _range(lo, hi)
    points = _count(points, "points", 2, MAX_POINTS)
    dt = _float_dtype(dtype)

    x = torch.tensor(x0, dtype=dt, requires_grad=True)
    y = _as_float_tensor(_eval(expr_text, {"x": x}), x)
    if y.numel() != 1:
        raise LabError("autograd.not_scalar_at", shape=Code(str(tuple(y.shape))))
    y = y.reshape(())
    d1 = _grad(y, x, create_graph=True)
    d2 = _grad(d1, x)

    xs = torch.linspace(lo, hi, points, dtype=dt).requires_grad_(True)
    ys = _as_float_tensor(_eval(expr_text, {"x": xs}), xs)
    if tuple(ys.shape) != tuple(xs.shape):
        raise LabError("autograd.not_elementwise_shape", points=points, shape=Code(str(tuple(ys.shape))))
    _check_elementwise(expr_text, xs, ys)
    dys = _grad(ys.sum(), xs, create_graph=True)
    d2ys = _grad(dys.sum(), xs)

    source, imports = to_torch_code(expr_text, ["x"])
    code = (
        f"{imports_line(imports)}\n"
        f"x = torch.tensor({x0!r}{'' if dt == torch.float32 else ', dtype=torch.float64'}, requires_grad=True)\n"
        f"y = {source}\n"
        "(dy,) = torch.autograd.grad(y, x, create_graph=True)   # f'(x), kept differentiable\n"
        "(d2y,) = torch.autograd.grad(dy, x)                    # f''(x)\n"
        "print(y.item(), dy.item(), d2y.item())"
    )
    return {
        "expr": expr_text, "x0": x0, "value": _number(y), "d1": _number(d1), "d2": _number(d2),
        "x": _curve(xs), "f": _curve(ys), "df": _curve(dys), "d2f": _curve(d2ys),
        "dtype": str(dt).replace("torch.", ""), "code": code,
    }


def _check_elementwise(expr_text: str, xs: torch.Tensor, ys: torch.Tensor) -> None:
    """Refuse expressions that mix points (x - x.mean(), cumsum(x, 0), x.flip(0), rand_like(x))."""
    with torch.no_grad():
        base = xs.detach()
        k = max(1, base.shape[0] // 2)
        part = _eval(expr_text, {"x": base[:k].clone()})
        flipped = _eval(expr_text, {"x": base.flip(0)})
        part_t = _as_float_tensor(part, base[:k])
        flip_t = _as_float_tensor(flipped, base)
    if not (_close(part_t, ys[:k]) and _close(flip_t.flip(0) if flip_t.dim() else flip_t, ys)):
        raise LabError("autograd.not_elementwise")


def derivative_figure(result: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> go.Figure:
    """Curves of f, f', f'' from :func:`derivatives`, the point x0 and the tangent there.

    *labels* may override the keys "f", "df", "d2f", "tangent", "point", "x", "y".
    """
    lab = {"f": "f(x)", "df": "f'(x)", "d2f": "f''(x)", "tangent": "tangent at x0",
           "point": "x0", "x": "x", "y": "value", **(labels or {})}
    xs = result["x"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=result["f"], name=lab["f"], mode="lines", line=dict(width=3)))
    fig.add_trace(go.Scatter(x=xs, y=result["df"], name=lab["df"], mode="lines", line=dict(dash="dash")))
    fig.add_trace(go.Scatter(x=xs, y=result["d2f"], name=lab["d2f"], mode="lines", line=dict(dash="dot")))
    x0, v, d1 = result["x0"], result["value"], result["d1"]
    if all(math.isfinite(u) for u in (x0, v, d1)):
        lo, hi = xs[0], xs[-1]
        fig.add_trace(go.Scatter(x=[lo, hi], y=[v + d1 * (lo - x0), v + d1 * (hi - x0)], name=lab["tangent"],
                                 mode="lines", line=dict(color="grey", width=1)))
        fig.add_trace(go.Scatter(x=[x0], y=[v], name=lab["point"], mode="markers", marker=dict(size=10)))
        finite = [u for u in result["f"] if u is not None]
        if finite:  # keep the view on f, not on a steep tangent
            top, bottom = max([*finite, v]), min([*finite, v])
            pad = 0.1 * (top - bottom or 1.0)
            others = [u for key in ("df", "d2f") for u in result[key] if u is not None]
            top = max([top, *others]) + pad
            bottom = min([bottom, *others]) - pad
            fig.update_yaxes(range=[bottom, top])
    fig.update_layout(height=380, margin=dict(l=0, r=0, t=10, b=0), xaxis_title=lab["x"], yaxis_title=lab["y"],
                      legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    return fig


