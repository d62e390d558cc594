"""What the safe evaluator allows: names, dtypes, keywords, functions, methods and attributes,
with the size checks run before each call."""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from core.errors import Code, LabError, Term


class ExprError(LabError):
    """An expression was refused or failed: a code (``expr.*``) and parameters each page renders
    in its language (``str(error)`` is the English text)."""


@dataclass(frozen=True)
class Limits:
    max_chars: int = 500
    max_nodes: int = 200
    max_depth: int = 30
    # |exponent| cap for ** / pow when the exponent is a Python number.
    max_exponent: float = 64
    # Elements per tensor (and per list/tuple, counting tensors inside them).
    max_elements: int = 4_000_000
    # Wall clock, checked between node evaluations.
    max_seconds: float = 2.0
    # Python ints (literals and results) beyond this magnitude are refused.
    max_int: int = 10**12
    # How many pieces unbind / split / chunk may return.
    max_pieces: int = 10_000
    # Python items a list or tuple may hold, nested ones counted too (tolist(), [x] * n): each
    # item costs the server a Python object and the page a line of text.
    max_items: int = 1_000_000
    # Multiply-adds one matrix product may take (a 1000 x 1000 @ 1000 x 1000 is 1e9).
    max_macs: int = 1_000_000_000
    # Bytes of values an expression may hold at once; None: the request budget (PYTORCH_LAB_BUDGET_MB).
    max_bytes: int | None = None


DEFAULT_LIMITS = Limits()  # frozen: one shared instance serves as every default

# ---------------------------------------------------------------------------
# Names that are values
# ---------------------------------------------------------------------------

CONSTANTS: Mapping[str, object] = {
    "pi": math.pi,
    "e": math.e,
    "inf": math.inf,
    "nan": math.nan,
    "True": True,
    "False": False,
    "None": None,
}

DTYPES: Mapping[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}

ALLOWED_KEYWORDS: frozenset[str] = frozenset(
    {
        "dim", "keepdim", "dtype", "requires_grad", "unbiased", "correction",
        "p", "min", "max", "input", "other", "exponent", "start", "end", "step",
        "steps", "size", "fill_value", "low", "high", "negative_slope", "alpha",
        "beta", "threshold", "decimals", "dim0", "dim1", "dims", "start_dim",
        "end_dim", "shape", "mask", "value", "condition", "n", "m", "chunks",
        "split_size", "split_size_or_sections", "sections", "tensors",
        "diagonal", "copy", "rtol", "atol", "equal_nan",
    }
)


# ---------------------------------------------------------------------------
# Helpers for the size checks
# ---------------------------------------------------------------------------

def too_many_items(n: int, limits: Limits, what: str = "list") -> None:
    """Refuse a list/tuple of ``n`` Python items (nested ones counted) over the cap."""
    if n > limits.max_items:
        raise ExprError("expr.too_many_items", what=Term(f"expr.{what}"), n=n, max=limits.max_items)


def too_large(n: int, limits: Limits, what: str = "tensor") -> None:
    """Refuse ``n`` elements over the cap; ``what`` is "tensor", "list" or "tuple"."""
    if n > limits.max_elements:
        raise ExprError("expr.too_large", what=Term(f"expr.{what}"), n=n, max=limits.max_elements)


def _as_index(value: Any, what: str = "sizes") -> int:
    """``value`` as an int; ``what`` names it in the refusal (a ``term.expr.*`` word)."""
    try:
        return operator.index(value)  # ints, bools, one-element integer tensors
    except Exception:  # noqa: BLE001 - whatever operator.index refuses is not a whole number
        raise ExprError("expr.not_whole", what=Term(f"expr.{what}")) from None


def _as_number(value: Any, what: str) -> float:
    try:
        return float(value)  # numbers and one-element tensors
    except Exception:  # noqa: BLE001 - whatever float() refuses is not a number
        raise ExprError("expr.not_number", what=Term(f"expr.{what}")) from None


def _size_numel(dims: Iterable[object]) -> int:
    return math.prod(max(_as_index(d), 0) for d in dims)


def _sizes_from(args: tuple, kwargs: dict, key: str = "size") -> list[object]:
    """The size given as f(2, 3), f((2, 3)), f([2, 3]) or f(size=(2, 3))."""
    if key in kwargs:
        size = kwargs[key]
    elif len(args) == 1 and isinstance(args[0], (list, tuple)):
        size = args[0]
    else:
        size = args
    return list(size) if isinstance(size, (list, tuple)) else [size]


def check_exponent(exponent: object, limits: Limits) -> None:
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
        return  # a tensor exponent: its elements are not known here (the result's size is checked)
    if abs(exponent) > limits.max_exponent:
        raise ExprError("expr.exponent", exponent=exponent, max=limits.max_exponent)


def broadcast_shape(values: Iterable[object]) -> tuple[int, ...] | None:
    """The shape the tensors among ``values`` broadcast to; None for fewer than two tensors or
    shapes that do not broadcast (torch then raises its own, clearer message when the op runs)."""
    shapes = [tuple(v.shape) for v in values if isinstance(v, torch.Tensor)]
    if len(shapes) < 2:
        return None
    try:
        return tuple(int(s) for s in torch.broadcast_shapes(*shapes))
    except Exception:  # noqa: BLE001 - any refusal: the op itself raises torch's message
        return None


def check_broadcast(values: Iterable[object], limits: Limits) -> None:
    shape = broadcast_shape(values)
    if shape is not None:
        too_large(math.prod(shape), limits)


def matmul_shape(a: object, b: object) -> tuple[int, ...] | None:
    """The shape of ``a @ b`` (batch dimensions broadcast), or None when torch would refuse the
    operands anyway (not two tensors, a 0-D operand, batch shapes that do not broadcast)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return None
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        return None
    rows = () if len(sa) == 1 else (int(sa[-2]),)
    cols = () if len(sb) == 1 else (int(sb[-1]),)
    try:
        batch = tuple(int(s) for s in torch.broadcast_shapes(sa[:-2], sb[:-2]))
    except Exception:  # noqa: BLE001 - any refusal: the op itself raises torch's message
        return None
    return batch + rows + cols


def check_matmul(a: object, b: object, limits: Limits) -> None:
    """Refuse a matrix product whose result or whose work (multiply-adds) is over the caps,
    before it runs: one product of a 2000 x 2000 pair takes 8e9 multiply-adds (seconds of CPU)."""
    shape = matmul_shape(a, b)
    if shape is None:
        return
    too_large(math.prod(shape), limits)
    inner = int(a.shape[-1]) if isinstance(a, torch.Tensor) else 1  # matmul_shape: a is a tensor
    macs = math.prod(shape) * inner
    if macs > limits.max_macs:
        raise ExprError("expr.too_much_work", n=macs, max=limits.max_macs)


# Prechecks for functions: (args, kwargs, limits) -> None, raising ExprError.

def _pre_factory(args: tuple, kwargs: dict, limits: Limits) -> None:
    too_large(_size_numel(_sizes_from(args, kwargs)), limits)


def _pre_full(args: tuple, kwargs: dict, limits: Limits) -> None:
    size = kwargs["size"] if "size" in kwargs else (args[0] if args else ())
    dims = list(size) if isinstance(size, (list, tuple)) else [size]
    too_large(_size_numel(dims), limits)


def _pre_randint(args: tuple, kwargs: dict, limits: Limits) -> None:
    size = kwargs.get("size")
    if size is None:
        size = next((a for a in reversed(args) if isinstance(a, (list, tuple))), None)
    if size is None:
        return  # torch insists on a size and says so
    dims = list(size) if isinstance(size, (list, tuple)) else [size]
    too_large(_size_numel(dims), limits)


def _pre_arange(args: tuple, kwargs: dict, limits: Limits) -> None:
    start: object = 0
    end: object = None
    step: object = 1
    if len(args) == 1:
        if "end" in kwargs:
            start = args[0]
        else:
            end = args[0]
    elif len(args) >= 2:
        start, end = args[0], args[1]
        if len(args) >= 3:
            step = args[2]
    start = kwargs.get("start", start)
    end = kwargs.get("end", end)
    step = kwargs.get("step", step)
    if end is None:
        return
    lo = _as_number(start, "arange_bounds")
    hi = _as_number(end, "arange_bounds")
    st = _as_number(step, "arange_step")
    if st == 0 or not all(math.isfinite(v) for v in (lo, hi, st)):
        return  # torch refuses these itself
    too_large(max(math.ceil((hi - lo) / st), 0), limits)


def _pre_linspace(args: tuple, kwargs: dict, limits: Limits) -> None:
    steps = args[2] if len(args) >= 3 else kwargs.get("steps")
    if steps is not None:
        too_large(max(_as_index(steps, "steps"), 0), limits)


def _pre_eye(args: tuple, kwargs: dict, limits: Limits) -> None:
    n = args[0] if args else kwargs.get("n")
    if n is None:
        return
    m = args[1] if len(args) >= 2 else kwargs.get("m", n)
    if m is None:
        m = n
    too_large(max(_as_index(n), 0) * max(_as_index(m), 0), limits)


def _pre_combine(args: tuple, kwargs: dict, limits: Limits) -> None:
    """cat / stack: each tensor in the list costs time of its own, so their number is capped
    (as unbind / split / chunk's pieces are), and the result's size is checked before it is made."""
    tensors = args[0] if args else kwargs.get("tensors")
    if not isinstance(tensors, (list, tuple)):
        return  # torch says what it wanted
    _too_many_pieces(len(tensors), limits)
    too_large(sum(t.numel() for t in tensors if isinstance(t, torch.Tensor)), limits)


def _pre_broadcast(args: tuple, kwargs: dict, limits: Limits) -> None:
    check_broadcast([*args, *kwargs.values()], limits)


def _pre_matmul(args: tuple, kwargs: dict, limits: Limits) -> None:
    a = args[0] if args else kwargs.get("input")
    b = args[1] if len(args) >= 2 else kwargs.get("other")
    check_matmul(a, b, limits)


def _pre_outer(args: tuple, kwargs: dict, limits: Limits) -> None:
    a = args[0] if args else kwargs.get("input")
    b = args[1] if len(args) >= 2 else kwargs.get("vec2")
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        too_large(a.numel() * b.numel(), limits)


def _pre_pow(args: tuple, kwargs: dict, limits: Limits) -> None:
    exponent = args[1] if len(args) >= 2 else kwargs.get("exponent")
    check_exponent(exponent, limits)
    _pre_broadcast(args, kwargs, limits)


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Op:
    fn: Callable[..., Any]
    precheck: Callable[..., None] | None = None
    # Convert a Python number / list given as the first argument to a tensor,
    # so that sin(pi / 2) or sum([1, 2, 3]) work.
    tensorize: bool = False


# Wrappers so that no in-place flag is reachable, and softmax has a default dim.
def softmax(input, dim=-1, dtype=None):
    return torch.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim=-1, dtype=None):
    return torch.log_softmax(input, dim, dtype=dtype)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    return torch.norm(input, p, dim, keepdim, dtype=dtype)


def leaky_relu(input, negative_slope=0.01):
    return F.leaky_relu(input, negative_slope)


def elu(input, alpha=1.0):
    return F.elu(input, alpha)


def silu(input):
    return F.silu(input)


def gelu(input):
    return F.gelu(input)


def softplus(input, beta=1.0, threshold=20.0):
    return F.softplus(input, beta, threshold)


def describe_value(value: object) -> Code | Term | LabError:
    """What ``value`` is, as a refusal names it ("a tensor", "an int"), for an error parameter:
    a catalogue word (``term.expr.value.*``) or a phrase naming its type, in the reader's language."""
    if value is None:
        return Code("None")
    if isinstance(value, torch.Tensor):
        return Term("expr.value.tensor")
    if isinstance(value, torch.Size):
        return Term("expr.value.size")
    if isinstance(value, torch.dtype):
        return Term("expr.value.dtype")
    if isinstance(value, torch.device):
        return Term("expr.value.device")
    name = type(value).__name__
    # A phrase with a parameter: a LabError renders inside another error's text in the same language.
    if name[:1] in "aeiou":
        return LabError("expr.value.an", type=Code(name))
    return LabError("expr.value.a", type=Code(name))


def _len(obj: object) -> int:
    if isinstance(obj, (torch.Tensor, list, tuple)):
        return len(obj)
    raise ExprError("expr.len", what=describe_value(obj))


_MATH: dict[str, Callable[..., Any]] = {
    # unary math and activations
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp,
    "log": torch.log, "log2": torch.log2, "log10": torch.log10,
    "sqrt": torch.sqrt, "abs": torch.abs, "relu": torch.relu,
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "floor": torch.floor,
    "ceil": torch.ceil, "round": torch.round, "sign": torch.sign,
    "sinh": torch.sinh, "cosh": torch.cosh, "asin": torch.asin,
    "acos": torch.acos, "atan": torch.atan, "erf": torch.erf,
    "log1p": torch.log1p, "expm1": torch.expm1, "rsqrt": torch.rsqrt,
    "reciprocal": torch.reciprocal, "neg": torch.neg, "square": torch.square,
    "isnan": torch.isnan, "isinf": torch.isinf, "isfinite": torch.isfinite,
    "softmax": softmax, "log_softmax": log_softmax, "leaky_relu": leaky_relu,
    "gelu": gelu, "silu": silu, "elu": elu, "softplus": softplus,
    # reductions and scans
    "sum": torch.sum, "mean": torch.mean, "max": torch.max, "min": torch.min,
    "std": torch.std, "var": torch.var, "prod": torch.prod,
    "argmax": torch.argmax, "argmin": torch.argmin, "norm": norm,
    "cumsum": torch.cumsum, "amax": torch.amax, "amin": torch.amin,
    "logsumexp": torch.logsumexp, "all": torch.all, "any": torch.any,
}

FUNCTIONS: dict[str, _Op] = {name: _Op(fn, tensorize=True) for name, fn in _MATH.items()}
FUNCTIONS.update(
    {
        # linear algebra
        "matmul": _Op(torch.matmul, _pre_matmul),
        "mm": _Op(torch.mm, _pre_matmul),
        "bmm": _Op(torch.bmm, _pre_matmul),
        "mv": _Op(torch.mv, _pre_matmul),
        "dot": _Op(torch.dot, _pre_matmul),
        "outer": _Op(torch.outer, _pre_outer),
        "trace": _Op(torch.trace),
        "tril": _Op(torch.tril),
        "triu": _Op(torch.triu),
        # factories
        "zeros": _Op(torch.zeros, _pre_factory),
        "ones": _Op(torch.ones, _pre_factory),
        "rand": _Op(torch.rand, _pre_factory),
        "randn": _Op(torch.randn, _pre_factory),
        "full": _Op(torch.full, _pre_full),
        "randint": _Op(torch.randint, _pre_randint),
        "arange": _Op(torch.arange, _pre_arange),
        "linspace": _Op(torch.linspace, _pre_linspace),
        "eye": _Op(torch.eye, _pre_eye),
        "tensor": _Op(torch.tensor),
        "zeros_like": _Op(torch.zeros_like),
        "ones_like": _Op(torch.ones_like),
        "rand_like": _Op(torch.rand_like),
        "randn_like": _Op(torch.randn_like),
        "full_like": _Op(torch.full_like),
        # combining and elementwise with broadcasting
        "cat": _Op(torch.cat, _pre_combine),
        "stack": _Op(torch.stack, _pre_combine),
        "where": _Op(torch.where, _pre_broadcast),
        "clamp": _Op(torch.clamp, _pre_broadcast, tensorize=True),
        "pow": _Op(torch.pow, _pre_pow),
        "maximum": _Op(torch.maximum, _pre_broadcast),
        "minimum": _Op(torch.minimum, _pre_broadcast),
        "atan2": _Op(torch.atan2, _pre_broadcast),
        "allclose": _Op(torch.allclose),
        "isclose": _Op(torch.isclose, _pre_broadcast),
        # shapes
        "transpose": _Op(torch.transpose),
        "reshape": _Op(torch.reshape),
        "flatten": _Op(torch.flatten),
        "squeeze": _Op(torch.squeeze),
        "unsqueeze": _Op(torch.unsqueeze),
        "permute": _Op(torch.permute),
        "numel": _Op(torch.numel),
        # Python
        "len": _Op(_len),
    }
)

ALLOWED_FUNCTIONS: frozenset[str] = frozenset(FUNCTIONS)


# ---------------------------------------------------------------------------
# Tensor methods and attributes
# ---------------------------------------------------------------------------

def _pre_m_sizes(kind: str) -> Callable[..., None]:
    def precheck(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
        dims = [_as_index(d) for d in _sizes_from(args, kwargs, "size" if kind == "expand" else "repeats")]
        if kind == "repeat":
            n = math.prod(max(d, 0) for d in dims) * t.numel()
        else:  # expand: -1 keeps the existing size of that dimension
            shape = [1] * (len(dims) - t.dim()) + list(t.shape)
            n = math.prod(max(s if d == -1 else d, 0) for d, s in zip(dims, shape, strict=False))
        too_large(n, limits)

    return precheck


def _dim_size(t: torch.Tensor, dim: object) -> int | None:
    try:
        return int(t.shape[_as_index(dim, "dim")])
    except Exception:  # noqa: BLE001 - a bad dim: the op itself raises torch's message
        return None  # torch raises its own message


def _too_many_pieces(n: int, limits: Limits) -> None:
    if n > limits.max_pieces:
        raise ExprError("expr.pieces", n=n, max=limits.max_pieces)


def _pre_m_unbind(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
    size = _dim_size(t, args[0] if args else kwargs.get("dim", 0))
    if size is not None:
        _too_many_pieces(size, limits)


def _pre_m_chunk(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
    chunks = args[0] if args else kwargs.get("chunks")
    if chunks is None:
        return
    chunks = _as_index(chunks, "chunks")
    size = _dim_size(t, args[1] if len(args) >= 2 else kwargs.get("dim", 0))
    if size is not None:
        _too_many_pieces(min(chunks, size), limits)


def _pre_m_split(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
    split = args[0] if args else kwargs.get("split_size", kwargs.get("split_size_or_sections"))
    if split is None:
        return
    if isinstance(split, (list, tuple)):
        _too_many_pieces(len(split), limits)
        return
    split = _as_index(split, "split_sizes")
    size = _dim_size(t, args[1] if len(args) >= 2 else kwargs.get("dim", 0))
    if size is not None and split > 0:
        _too_many_pieces(math.ceil(size / split), limits)


def _pre_m_tolist(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
    """The items tolist() would make: every number plus every inner list (d0 + d0*d1 + ...)."""
    too_many_items(sum(math.prod(t.shape[:k]) for k in range(1, t.dim() + 1)), limits)


def _pre_m_broadcast(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
    check_broadcast([t, *args, *kwargs.values()], limits)


def _pre_m_pow(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
    check_exponent(args[0] if args else kwargs.get("exponent"), limits)
    _pre_m_broadcast(t, args, kwargs, limits)


def _pre_m_matmul(t: torch.Tensor, args: tuple, kwargs: dict, limits: Limits) -> None:
    check_matmul(t, args[0] if args else kwargs.get("other"), limits)


def _tensor_to(t: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """Tensor.to restricted to dtype conversions (no devices, no other tensors)."""
    bad = [a for a in args if not isinstance(a, torch.dtype)]
    bad += [v for k, v in kwargs.items() if k == "dtype" and not isinstance(v, torch.dtype)]
    bad_keys = [k for k in kwargs if k not in ("dtype", "copy")]
    if bad or bad_keys or len(args) > 1:
        raise ExprError("expr.to_dtype_only")
    return t.to(*args, **kwargs)


_PLAIN_METHODS = (
    "view", "reshape", "transpose", "permute", "squeeze", "unsqueeze",
    "flatten", "contiguous", "is_contiguous", "sum", "mean", "max", "min",
    "std", "var", "prod", "abs", "t", "exp", "log", "sqrt", "sin", "cos",
    "tanh", "sigmoid", "relu", "softmax", "argmax", "argmin", "norm", "numel",
    "dim", "size", "stride", "float", "double", "int", "long", "bool", "half",
    "bfloat16", "clone", "detach", "item", "cumsum", "round",
    "floor", "ceil", "sign", "storage_offset", "element_size", "nelement",
    "all", "any", "neg", "square", "tan", "log2", "log10", "log_softmax",
    "tril", "triu", "amax", "amin", "trace", "flip", "is_floating_point",
)

TENSOR_METHODS: dict[str, _Op] = {name: _Op(getattr(torch.Tensor, name)) for name in _PLAIN_METHODS}
TENSOR_METHODS.update(
    {
        "to": _Op(_tensor_to),
        "tolist": _Op(torch.Tensor.tolist, _pre_m_tolist),
        "expand": _Op(torch.Tensor.expand, _pre_m_sizes("expand")),
        "repeat": _Op(torch.Tensor.repeat, _pre_m_sizes("repeat")),
        "unbind": _Op(torch.Tensor.unbind, _pre_m_unbind),
        "chunk": _Op(torch.Tensor.chunk, _pre_m_chunk),
        "split": _Op(torch.Tensor.split, _pre_m_split),
        "pow": _Op(torch.Tensor.pow, _pre_m_pow),
        "matmul": _Op(torch.Tensor.matmul, _pre_m_matmul),
        "mm": _Op(torch.Tensor.mm, _pre_m_matmul),
        "dot": _Op(torch.Tensor.dot, _pre_m_matmul),
        "clamp": _Op(torch.Tensor.clamp, _pre_m_broadcast),
        "masked_fill": _Op(torch.Tensor.masked_fill, _pre_m_broadcast),
        "where": _Op(torch.Tensor.where, _pre_m_broadcast),
        "maximum": _Op(torch.Tensor.maximum, _pre_m_broadcast),
        "minimum": _Op(torch.Tensor.minimum, _pre_m_broadcast),
        **{name: _Op(getattr(torch.Tensor, name), _pre_m_broadcast) for name in ("eq", "ne", "lt", "gt", "le", "ge")},
    }
)

SIZE_METHODS: dict[str, _Op] = {"numel": _Op(torch.Size.numel)}

TENSOR_ATTRS: dict[str, Callable[[Any], Any]] = {
    name: operator.attrgetter(name)
    for name in ("shape", "dtype", "ndim", "T", "mT", "requires_grad", "is_leaf", "grad", "device")
}
DTYPE_ATTRS: dict[str, Callable[[Any], Any]] = {
    name: operator.attrgetter(name)
    for name in ("is_floating_point", "is_signed", "is_complex", "itemsize")
    if hasattr(torch.float32, name)
}
# Named results such as x.max(dim=0) -> (values, indices).
RESULT_ATTRS: dict[str, Callable[[Any], Any]] = {
    name: operator.attrgetter(name) for name in ("values", "indices")
}

ALLOWED_METHODS: frozenset[str] = frozenset(TENSOR_METHODS) | frozenset(SIZE_METHODS)
ALLOWED_ATTRIBUTES: frozenset[str] = frozenset(TENSOR_ATTRS) | frozenset(DTYPE_ATTRS) | frozenset(RESULT_ATTRS)
