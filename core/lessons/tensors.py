"""Engine of the Tensors page: tutorial examples, tensor makers, operations, broadcasting.

Everything here returns plain data (tensors, strings, shapes, DataFrames) and never
imports streamlit. Text typed by a user (list values, shapes) is parsed only through
:func:`core.safe.expr.evaluate`; it is never handed to Python's own evaluator.

Public API
----------
* ``EXAMPLES`` / :func:`run_example` (in ``tensor_examples``) - the tutorials' T1..T7 with PyTorch's true results.
* :func:`make_tensor` - build a tensor the page asked for, with the equivalent code.
* :func:`describe`, :func:`to_frame` - facts about a tensor and a table of its values.
* :func:`broadcast_explain` - why two shapes broadcast, or which dimension conflicts.
* :func:`apply_op` - one operation on a tensor, with the equivalent code.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from core.errors import Code, LabError, Message, Term, exception_text
from core.safe.allowlist import DTYPES, ExprError, Limits, broadcast_shape, matmul_shape
from core.safe.expr import evaluate

MAX_ELEMENTS = 1_000_000
MAX_DIMS = 8
MAX_DIM_SIZE = 1_000_000
# Shapes given to broadcast_explain are never allocated, so they may be larger.
MAX_BROADCAST_DIM = 10**9
MAX_FRAME_CELLS = 10_000

# Typed values may be long lists: more room than an expression box, same evaluator.
VALUE_LIMITS = Limits(max_chars=20_000, max_nodes=20_000, max_depth=12, max_elements=MAX_ELEMENTS)
SHAPE_LIMITS = Limits(max_chars=200, max_nodes=40, max_depth=4)

DTYPE_NAMES: tuple[str, ...] = (
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
)
KINDS: tuple[str, ...] = ("tensor", "zeros", "ones", "rand", "randn", "arange", "linspace", "eye", "from_numpy")


# --------------------------------------------------------------------------- helpers
# What a refusal calls a value: a parameter's name shown as code, a catalogue word (term.*), or a
# phrase with a parameter (a LabError renders inside another error's text in the same language).
What = Code | Term | LabError


def torch_error(exc: BaseException) -> LabError:
    """torch's own refusal (a shape error in an op, a bad dim) as a coded error carrying its text."""
    return LabError("tensors.torch", torch=Code(exception_text(exc)))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _code_dtype(dtype: torch.dtype) -> str:
    return f"torch.{_dtype_name(dtype)}"


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _args_text(shape: Sequence[int]) -> str:
    return ", ".join(str(s) for s in shape)


def _resolve_dtype(dtype: object, default: torch.dtype | None = None) -> torch.dtype | None:
    if dtype is None or dtype == "":
        return default
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise LabError("tensors.dtype_unsupported", dtype=Code(str(dtype)))
        return dtype
    if isinstance(dtype, str):
        name = dtype.strip().removeprefix("torch.")
        if name in DTYPES:
            return DTYPES[name]
    raise LabError("tensors.dtype_unknown", dtype=Code(repr(dtype)), choices=Code(", ".join(DTYPE_NAMES)))


def _int(value: object, what: What, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool):
        raise LabError("tensors.not_whole", what=what, value=Code(repr(value)))
    if isinstance(value, float):
        if not value.is_integer():
            raise LabError("tensors.not_whole", what=what, value=Code(repr(value)))
        value = int(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if not isinstance(value, (int, np.integer)):
        raise LabError("tensors.not_whole", what=what, value=Code(repr(value)))
    value = int(value)
    if lo is not None and value < lo:
        raise LabError("tensors.too_small", what=what, lo=lo, value=value)
    if hi is not None and value > hi:
        raise LabError("tensors.too_big", what=what, hi=hi, value=value)
    return value


def finite_number(value: Any, what: What) -> float:
    """``value`` (a number or a one-element tensor) as a finite float; ``what`` names it when refused."""
    if isinstance(value, bool) or value is None:
        raise LabError("tensors.not_number", what=what)
    try:
        number = float(value)  # numbers and one-element tensors
    except Exception:  # noqa: BLE001 - whatever float() refuses (TypeError, ValueError, torch's RuntimeError)
        raise LabError("tensors.not_number_value", what=what, value=Code(repr(value))) from None
    if not math.isfinite(number):
        raise LabError("tensors.not_finite", what=what, value=number)
    return number


def _check_numel(shape: Sequence[int], cap: int = MAX_ELEMENTS) -> int:
    n = math.prod(shape)
    if n > cap:
        raise LabError("tensors.too_many_elements", shape=Code(_shape_text(shape)), n=n, max=cap)
    return n


def parse_shape(shape: object, *, max_dim_size: int = MAX_DIM_SIZE, allow_empty: bool = True) -> tuple[int, ...]:
    """A shape from ints, a list/tuple/torch.Size of ints, or text such as ``"3, 2"`` / ``"(3, 2)"``.

    Raises ValueError for negative sizes, more than MAX_DIMS dimensions or non-integers.
    """
    if isinstance(shape, str):
        text = shape.strip()
        if text in ("", "()", "[]"):
            value: object = ()
        else:
            try:
                value = evaluate(text, {}, SHAPE_LIMITS)
            except ExprError as exc:
                raise LabError("tensors.shape_unreadable", text=Code(repr(shape)), reason=exc) from None
    else:
        value = shape
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple, torch.Size)):
        raise LabError("tensors.shape_invalid", value=Code(repr(shape)))
    if len(value) > MAX_DIMS:
        raise LabError("tensors.too_many_dims", max=MAX_DIMS, n=len(value))
    dims = tuple(_int(v, Term("tensors.shape_size"), 0, max_dim_size) for v in value)
    if not dims and not allow_empty:
        raise LabError("tensors.shape_empty")
    return dims


def _is_number(value: object) -> bool:
    return isinstance(value, (bool, int, float)) and not isinstance(value, complex)


def _plain_values(value: object, depth: int = 0) -> object:
    """Check a parsed value is a number or a nested list of numbers; tuples become lists."""
    if _is_number(value):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dim() == 0:
        return value.item()
    if isinstance(value, (list, tuple)) and depth < MAX_DIMS:
        return [_plain_values(v, depth + 1) for v in value]
    raise LabError("tensors.values_not_numbers")


def parse_values(text: str) -> object:
    """Parse typed values (``"[[1, 2], [3, 4.5]]"``, ``"pi"``) into plain Python numbers/lists.

    Uses the lab's safe evaluator with no variables; anything but numbers and
    nested lists of numbers is refused with a ValueError.
    """
    if not isinstance(text, str):
        raise LabError("tensors.values_not_text")
    try:
        value = evaluate(text, {}, VALUE_LIMITS)
    except ExprError as exc:
        raise LabError("tensors.values_unreadable", reason=exc) from None
    return _plain_values(value)


def _literal(value: object) -> str:
    """Python source for a number or nested list of numbers (no inf/nan names needed)."""
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "-float('inf')"
    return repr(value)


def _values_of(t: torch.Tensor) -> object:
    """Tensor values as plain Python lists (bfloat16/float16 shown as float)."""
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.tolist()



# --------------------------------------------------------------------------- make_tensor
def make_tensor(
    kind: str,
    shape: object = (),
    dtype: object = None,
    values_text: str | None = None,
    *,
    start: float = 0.0,
    end: float | None = None,
    step: float = 1.0,
    steps: int = 5,
    n: int | None = None,
    m: int | None = None,
    seed: int | None = 0,
    requires_grad: bool = False,
) -> tuple[torch.Tensor, str]:
    """Build a tensor of *kind* (one of KINDS) and return ``(tensor, pytorch_code)``.

    * ``tensor`` / ``from_numpy``: *values_text* such as ``"[[1, 2], [3, 4]]"`` (safe parser).
    * ``zeros`` / ``ones`` / ``rand`` / ``randn``: *shape* (ints or text ``"3, 2"``); *seed*
      makes rand/randn repeatable (the code then starts with ``torch.manual_seed(seed)``).
    * ``arange``: *start*, *end*, *step* (with *end* None, *start* is the end, as in
      ``torch.arange(5)``); ``linspace``: *start*, *end*, *steps*;
      ``eye``: *n* (or ``shape[0]``) and optional *m* (or ``shape[1]``).

    At most MAX_ELEMENTS elements. Raises a LabError (a ValueError) with a clear message, or
    carrying torch's own (code ``tensors.torch``).
    """
    if kind not in KINDS:
        raise LabError("tensors.kind_unknown", kind=Code(repr(kind)), choices=Code(", ".join(KINDS)))
    torch_dtype = _resolve_dtype(dtype)
    dtype_arg = f", dtype={_code_dtype(torch_dtype)}" if torch_dtype is not None else ""
    if requires_grad and torch_dtype is not None and not (torch_dtype.is_floating_point or torch_dtype.is_complex):
        raise LabError("tensors.grad_needs_float")
    grad_arg = ", requires_grad=True" if requires_grad else ""
    try:
        if kind in ("tensor", "from_numpy"):
            if values_text is None or not str(values_text).strip():
                raise LabError("tensors.values_missing")
            values = parse_values(values_text)
            if kind == "tensor":
                t = torch.tensor(values, dtype=torch_dtype)
                code = f"t = torch.tensor({_literal(values)}{dtype_arg}{grad_arg})"
            else:
                np_dtype = None
                if torch_dtype is not None:
                    if torch_dtype == torch.bfloat16:
                        raise LabError("tensors.numpy_bfloat16")
                    np_dtype = torch.empty((), dtype=torch_dtype).numpy().dtype
                arr = np.array(values, dtype=np_dtype)
                if arr.dtype == object:
                    raise LabError("tensors.ragged")
                t = torch.from_numpy(arr)
                np_arg = f", dtype=np.{np_dtype}" if np_dtype is not None else ""
                code = f"n = np.array({_literal(values)}{np_arg})\nt = torch.from_numpy(n)"
                if requires_grad:
                    code += "\nt.requires_grad_(True)"
            _check_numel(_shape(t))
        elif kind in ("zeros", "ones", "rand", "randn"):
            dims = parse_shape(shape)
            _check_numel(dims)
            if kind in ("rand", "randn") and torch_dtype is not None and not torch_dtype.is_floating_point:
                raise LabError("tensors.random_needs_float", kind=Code(kind), dtype=Code(_dtype_name(torch_dtype)))
            prefix = ""
            if kind in ("zeros", "ones"):
                t = getattr(torch, kind)(dims, dtype=torch_dtype)
            else:
                gen = torch.Generator()
                if seed is not None:
                    seed = _int(seed, Term("tensors.seed"), 0, 2**63 - 1)
                    gen.manual_seed(seed)
                    prefix = f"torch.manual_seed({seed})\n"
                else:
                    gen.seed()
                t = getattr(torch, kind)(dims, dtype=torch_dtype, generator=gen)
            code = f"{prefix}t = torch.{kind}({_args_text(dims)}{dtype_arg}{grad_arg})"
        elif kind == "arange":
            a = finite_number(start, Code("start"))
            b = finite_number(end, Code("end")) if end is not None else None
            st = finite_number(step, Code("step"))
            if st == 0:
                raise LabError("tensors.step_zero")
            lo, hi = (0.0, a) if b is None else (a, b)
            count = max(math.ceil((hi - lo) / st), 0)
            if count > MAX_ELEMENTS:
                raise LabError("tensors.arange_too_long", n=count, max=MAX_ELEMENTS)
            nums = [_num(v) for v in (lo, hi, st)]
            t = torch.arange(*nums, dtype=torch_dtype)
            shown = nums if st != 1 else nums[:2] if lo != 0 else nums[1:2]
            code = f"t = torch.arange({', '.join(_literal(v) for v in shown)}{dtype_arg}{grad_arg})"
        elif kind == "linspace":
            a = finite_number(start, Code("start"))
            b = finite_number(end if end is not None else 1.0, Code("end"))
            k = _int(steps, Code("steps"), 1, MAX_ELEMENTS)
            t = torch.linspace(_num(a), _num(b), k, dtype=torch_dtype)
            code = f"t = torch.linspace({_literal(_num(a))}, {_literal(_num(b))}, {k}{dtype_arg}{grad_arg})"
        else:  # eye
            dims = parse_shape(shape) if shape not in (None, ()) else ()
            rows = n if n is not None else (dims[0] if dims else None)
            cols = m if m is not None else (dims[1] if len(dims) > 1 else None)
            if rows is None:
                raise LabError("tensors.eye_rows")
            rows = _int(rows, Code("n"), 0, MAX_DIM_SIZE)
            cols = rows if cols is None else _int(cols, Code("m"), 0, MAX_DIM_SIZE)
            _check_numel((rows, cols))
            t = torch.eye(rows, cols, dtype=torch_dtype)
            code = f"t = torch.eye({rows}{'' if cols == rows else f', {cols}'}{dtype_arg}{grad_arg})"
        if requires_grad:
            if not (t.dtype.is_floating_point or t.dtype.is_complex):
                raise LabError("tensors.grad_needs_float_not", dtype=Code(_dtype_name(t.dtype)))
            t.requires_grad_(True)
    except LabError:
        raise
    except Exception as exc:  # torch's own refusals (its ValueErrors too: a ragged list)
        raise torch_error(exc) from exc
    return t, code


def _num(value: float) -> int | float:
    """Whole floats become ints, so arange(0, 5) gives int64 as in PyTorch."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


# --------------------------------------------------------------------------- describe / frame
def describe(t: torch.Tensor) -> dict[str, Any]:
    """Facts about *t*: shape, dtype, device, stride, is_contiguous, numel, bytes, requires_grad, ...

    ``bytes`` is ``element_size() * numel()`` (the logical size, not the storage size).
    """
    if not isinstance(t, torch.Tensor):
        raise LabError("tensors.not_tensor", type=Code(type(t).__name__))
    return {
        "shape": _shape(t),
        "ndim": t.dim(),
        "dtype": _dtype_name(t.dtype),
        "device": str(t.device),
        "stride": tuple(int(s) for s in t.stride()) if t.layout == torch.strided else None,
        "is_contiguous": bool(t.is_contiguous()),
        "numel": int(t.numel()),
        "element_size": int(t.element_size()),
        "bytes": int(t.element_size() * t.numel()),
        "requires_grad": bool(t.requires_grad),
        "is_leaf": bool(t.is_leaf),
        "grad_fn": type(t.grad_fn).__name__ if t.grad_fn is not None else None,
    }


def to_frame(
    t: torch.Tensor,
    slice_index: Sequence[int] | int | None = None,
    *,
    max_rows: int = 200,
    max_cols: int = 100,
) -> pd.DataFrame:
    """A DataFrame of *t*'s values for display.

    0-D: one cell; 1-D: one row (columns are the indices); 2-D: rows x columns;
    3-D and more: the 2-D slice ``t[slice_index]`` where *slice_index* gives one index per
    leading dimension (default all zeros). Large tensors are cut to *max_rows* x *max_cols*.
    """
    if not isinstance(t, torch.Tensor):
        raise LabError("tensors.not_tensor", type=Code(type(t).__name__))
    t = t.detach().cpu()
    lead = max(t.dim() - 2, 0)
    if slice_index is None:
        index: tuple[int, ...] = (0,) * lead
    elif isinstance(slice_index, (int, np.integer)) and not isinstance(slice_index, bool):
        index = (int(slice_index),)
    else:
        index = tuple(cast(Sequence[int], slice_index))
    if len(index) != lead:
        raise LabError("tensors.slice_count", ndim=t.dim(), lead=lead, n=len(index))
    for d, i in enumerate(index):
        size = t.shape[d]
        i = _int(i, LabError("tensors.phrase.slice_index", d=d))
        if not -size <= i < size:
            raise LabError("tensors.slice_range", i=i, d=d, size=size)
    if lead:
        t = t[tuple(int(i) for i in index)]
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    if t.dim() == 0:
        return pd.DataFrame([[t.item()]], index=[0], columns=[0])
    if t.dim() == 1:
        t = t[:max_cols]
        return pd.DataFrame([t.numpy()], index=[0], columns=list(range(t.shape[0])))
    t = t[:max_rows, :max_cols]
    return pd.DataFrame(t.numpy(), index=list(range(t.shape[0])), columns=list(range(t.shape[1])))


# --------------------------------------------------------------------------- broadcasting
def _virtual(shape: Sequence[int]) -> torch.Tensor:
    """A tensor of *shape* with no memory behind it (stride 0), for asking torch questions."""
    return torch.zeros((), dtype=torch.float32).expand(*shape) if shape else torch.zeros(())


def broadcast_explain(shape_a: object, shape_b: object) -> dict[str, Any]:
    """Explain broadcasting of two shapes (ints, lists or text such as ``"4, 1"``).

    Returns ``{"ok", "shape_a", "shape_b", "ndim", "aligned_a", "aligned_b", "padded_a",
    "padded_b", "expand_a", "expand_b", "conflicts", "result", "error", "rows"}``:
    shapes right-aligned and padded on the left with 1s; ``expand_*`` are the aligned
    dimension indices where that input is repeated; ``conflicts`` the dimensions where the
    sizes differ and neither is 1; ``result`` the broadcast shape (torch.broadcast_shapes)
    or None; ``error`` torch's message for ``a + b`` when they do not broadcast; ``rows``
    one dict per aligned dimension (``dim``, ``a``, ``b``, ``result``, ``rule``: a ``Message`` such as
    ``tensors.rule.conflict``, shown in the page's language) for a table.
    """
    a = parse_shape(shape_a, max_dim_size=MAX_BROADCAST_DIM)
    b = parse_shape(shape_b, max_dim_size=MAX_BROADCAST_DIM)
    ndim = max(len(a), len(b))
    aligned_a = (1,) * (ndim - len(a)) + a
    aligned_b = (1,) * (ndim - len(b)) + b
    result: tuple[int, ...] | None
    error = None
    try:
        result = tuple(int(s) for s in torch.broadcast_shapes(a, b))
    except Exception as exc:  # noqa: BLE001
        result = None
        try:
            _virtual(a) + _virtual(b)  # fails before allocating: torch's usual a + b message
            error = exception_text(exc)
        except Exception as op_exc:  # noqa: BLE001
            error = exception_text(op_exc)
    conflicts = [d for d in range(ndim) if aligned_a[d] != aligned_b[d] and 1 not in (aligned_a[d], aligned_b[d])]
    expand_a = [d for d in range(ndim) if aligned_a[d] == 1 and aligned_b[d] != 1 and d not in conflicts]
    expand_b = [d for d in range(ndim) if aligned_b[d] == 1 and aligned_a[d] != 1 and d not in conflicts]
    rows = []
    for d in range(ndim):
        sa, sb = aligned_a[d], aligned_b[d]
        if d in conflicts:
            rule, out = "conflict", None
        elif sa == sb:
            rule, out = "same", sa
        elif sa == 1:
            rule, out = ("a_padded" if d < ndim - len(a) else "a_one"), sb
        else:
            rule, out = ("b_padded" if d < ndim - len(b) else "b_one"), sa
        rows.append({"dim": d, "dim_from_right": d - ndim, "a": sa, "b": sb, "result": out,
                     "rule": Message(f"tensors.rule.{rule}")})
    return {
        "ok": result is not None,
        "shape_a": a, "shape_b": b, "ndim": ndim,
        "aligned_a": aligned_a, "aligned_b": aligned_b,
        "padded_a": ndim - len(a), "padded_b": ndim - len(b),
        "expand_a": expand_a, "expand_b": expand_b,
        "conflicts": conflicts, "result": result, "error": error, "rows": rows,
    }


# --------------------------------------------------------------------------- operations
_UNARY = ("neg", "abs", "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu",
          "square", "floor", "ceil", "round", "sign")
_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "maximum": None, "minimum": None}
_SYMBOL_FNS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow}
_REDUCE = ("sum", "mean", "max", "min", "std", "var", "prod", "argmax", "argmin")
_SHAPE_OPS = ("view", "reshape", "squeeze", "unsqueeze", "transpose", "permute", "flatten", "contiguous", "t")

# op -> (group, parameters it takes)
OPS: dict[str, dict[str, Any]] = {
    **{name: {"group": "elementwise", "params": ()} for name in _UNARY},
    **{name: {"group": "elementwise", "params": ("other",)} for name in _BINARY},
    "matmul": {"group": "matmul", "params": ("other",)},
    **{name: {"group": "reduction", "params": ("dim", "keepdim")} for name in _REDUCE},
    "view": {"group": "shape", "params": ("shape",)},
    "reshape": {"group": "shape", "params": ("shape",)},
    "squeeze": {"group": "shape", "params": ("dim",)},
    "unsqueeze": {"group": "shape", "params": ("dim",)},
    "transpose": {"group": "shape", "params": ("dim0", "dim1")},
    "permute": {"group": "shape", "params": ("dims",)},
    "flatten": {"group": "shape", "params": ("start_dim", "end_dim")},
    "contiguous": {"group": "shape", "params": ()},
    "t": {"group": "shape", "params": ()},
}


def _other_operand(other: object) -> tuple[object, str]:
    """The second operand: a number, a tensor, a list, or typed text."""
    if isinstance(other, str):
        other = parse_values(other)
    if isinstance(other, bool) or other is None:
        raise LabError("tensors.other_not_number")
    if isinstance(other, (int, float)):
        if isinstance(other, float) and math.isnan(other):
            return other, "float('nan')"
        return other, _literal(other)
    if isinstance(other, (list, tuple)):
        other = torch.tensor(_plain_values(other))
    if isinstance(other, np.ndarray):
        other = torch.from_numpy(other)
    if not isinstance(other, torch.Tensor):
        raise LabError("tensors.other_type", type=Code(type(other).__name__))
    _check_numel(_shape(other))
    if other.numel() <= 24:
        return other, f"torch.tensor({_literal(_values_of(other))})"
    return other, "other"


def _dim_param(value: object, what: str = "dim") -> int | tuple[int, ...] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = _parse_int(value)
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_DIMS:
            raise LabError("tensors.too_many_dims_max", max=MAX_DIMS)
        return tuple(_int(v, Code(what), -MAX_DIMS, MAX_DIMS) for v in value)
    return _int(value, Code(what), -MAX_DIMS, MAX_DIMS)


def _one_dim(op: str, value: object, what: str) -> int:
    """One dimension index for ``op`` (transpose, flatten): not several, not none."""
    dim = _dim_param(value, what)
    if dim is None or isinstance(dim, tuple):
        raise LabError("tensors.one_dim", op=Code(op))
    return dim


def _parse_int(text: str) -> object:
    try:
        return evaluate(text, {}, SHAPE_LIMITS)
    except ExprError as exc:
        raise LabError("tensors.unreadable", text=Code(repr(text)), reason=exc) from None


def _dims_list(value: object, what: What) -> tuple[int, ...]:
    if isinstance(value, str):
        value = _parse_int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple, torch.Size)):
        raise LabError("tensors.dims_invalid", what=what)
    if len(value) > MAX_DIMS:
        raise LabError("tensors.too_many_dims_max", max=MAX_DIMS)
    return tuple(_int(v, what, -MAX_ELEMENTS, MAX_ELEMENTS) for v in value)


def _call_text(name: str, args: Iterable[str], kwargs: Mapping[str, object]) -> str:
    parts = list(args) + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"x.{name}({', '.join(parts)})"


def apply_op(x: torch.Tensor, op: str, **params: Any) -> tuple[torch.Tensor, str]:
    """Apply *op* (a key of OPS) to *x*; return ``(result, pytorch_code)``.

    Parameters by group: elementwise binary and ``matmul`` take ``other`` (number, tensor,
    list or typed text); reductions take ``dim`` (None, int or tuple) and ``keepdim``;
    ``view``/``reshape`` take ``shape`` (``-1`` allowed); ``squeeze`` takes an optional ``dim``;
    ``unsqueeze`` ``dim``; ``transpose`` ``dim0``/``dim1``; ``permute`` ``dims``;
    ``flatten`` ``start_dim``/``end_dim``. ``max``/``min`` with a dim return the values
    (code ``x.max(dim=1).values``). Results above MAX_ELEMENTS are refused. Every failure is
    a LabError (a ValueError); when torch refuses (``view`` on a non-contiguous tensor, a bad
    dim, a shape mismatch) its code is ``tensors.torch`` and the message is torch's own.
    """
    if not isinstance(x, torch.Tensor):
        raise LabError("tensors.not_tensor", type=Code(type(x).__name__))
    if op not in OPS:
        raise LabError("tensors.op_unknown", op=Code(repr(op)), choices=Code(", ".join(OPS)))
    allowed = set(OPS[op]["params"])
    unknown = sorted(set(params) - allowed)
    if unknown and allowed:
        raise LabError("tensors.op_params_takes", op=Code(op), unknown=Code(", ".join(unknown)),
                       allowed=Code(", ".join(sorted(allowed))))
    if unknown:
        raise LabError("tensors.op_params", op=Code(op), unknown=Code(", ".join(unknown)))
    try:
        if op in _UNARY:
            return getattr(torch, op)(x), f"y = torch.{op}(x)"
        if op in _BINARY or op == "matmul":
            if "other" not in params:
                raise LabError("tensors.needs_other", op=Code(op))
            other, other_code = _other_operand(params["other"])
            if op == "matmul":
                if not isinstance(other, torch.Tensor):
                    raise LabError("tensors.matmul_number")
                out_shape = matmul_shape(x, other)  # None: torch refuses the operands with its own message
                if out_shape is not None:
                    _check_numel(out_shape)
                return torch.matmul(x, other), f"y = x @ {other_code}"
            out_shape = broadcast_shape((x, other))  # None: torch's a + b message below
            if out_shape is not None:
                _check_numel(out_shape)
            symbol = _BINARY[op]
            if symbol is None:
                if not isinstance(other, torch.Tensor):
                    other = torch.tensor(other, dtype=x.dtype)
                return getattr(torch, op)(x, other), f"y = torch.{op}(x, {other_code})"
            fn = _SYMBOL_FNS[symbol]
            if symbol == "**" and isinstance(other, (int, float)) and abs(other) > 64:
                raise LabError("tensors.exponent")
            return fn(x, other), f"y = x {symbol} {other_code}"
        if op in _REDUCE:
            dim = _dim_param(params.get("dim"))
            keepdim = bool(params.get("keepdim", False))
            kwargs: dict[str, object] = {}
            if dim is not None:
                kwargs["dim"] = dim
                if keepdim:
                    kwargs["keepdim"] = True
            elif keepdim and op not in ("max", "min"):
                kwargs["keepdim"] = True
            if op in ("max", "min") and dim is not None:
                if isinstance(dim, tuple):
                    raise LabError("tensors.reduce_one_dim", op=Code(op))
                out = getattr(x, op)(**kwargs).values
                return out, f"y = {_call_text(op, (), kwargs)}.values"
            if op in ("argmax", "argmin") and isinstance(dim, tuple):
                raise LabError("tensors.one_dim", op=Code(op))
            return getattr(x, op)(**kwargs), f"y = {_call_text(op, (), kwargs)}"
        if op in ("view", "reshape"):
            if "shape" not in params:
                raise LabError("tensors.needs_shape", op=Code(op))
            shape = _dims_list(params["shape"], Term("tensors.new_shape"))
            result = getattr(x, op)(*shape)
            return result, f"y = x.{op}({_args_text(shape)})"
        if op == "squeeze":
            dim = _dim_param(params.get("dim"))
            if dim is None:
                return x.squeeze(), "y = x.squeeze()"
            return x.squeeze(dim), f"y = x.squeeze({dim})"
        if op == "unsqueeze":
            if params.get("dim") is None:
                raise LabError("tensors.unsqueeze_dim")
            dim = _dim_param(params["dim"])
            if dim is None:
                raise LabError("tensors.unsqueeze_dim")
            if isinstance(dim, tuple):
                raise LabError("tensors.unsqueeze_one")
            if x.dim() >= MAX_DIMS:
                raise LabError("tensors.too_many_dims_max", max=MAX_DIMS)
            return x.unsqueeze(dim), f"y = x.unsqueeze({dim})"
        if op == "transpose":
            d0 = _one_dim(op, params.get("dim0", 0), "dim0")
            d1 = _one_dim(op, params.get("dim1", 1), "dim1")
            return x.transpose(d0, d1), f"y = x.transpose({d0}, {d1})"
        if op == "permute":
            if params.get("dims") is None:
                raise LabError("tensors.permute_dims")
            dims = _dims_list(params["dims"], Code("dims"))
            return x.permute(*dims), f"y = x.permute({_args_text(dims)})"
        if op == "flatten":
            s = _one_dim(op, params.get("start_dim", 0), "start_dim")
            e = _one_dim(op, params.get("end_dim", -1), "end_dim")
            code = "y = x.flatten()" if (s, e) == (0, -1) else f"y = x.flatten({s}, {e})"
            return x.flatten(s, e), code
        if op == "contiguous":
            return x.contiguous(), "y = x.contiguous()"
        return x.t(), "y = x.t()"
    except LabError:
        raise
    except Exception as exc:  # torch's own refusals (its ValueErrors too)
        raise torch_error(exc) from exc
