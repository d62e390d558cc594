"""The tree walker behind :func:`core.safe.expr.evaluate`: operators, values and their sizes.

:func:`core.safe.expr.check` has already refused every node type, name, attribute, method and
keyword that is not allowed; :class:`Evaluator` walks what is left. Functions come from an explicit
table of torch callables; methods and attributes are looked up in explicit tables built from
constant names, and only on tensor / Size / dtype values. Sizes are checked before allocation where
they can be known (factories, expand/repeat, matmul, broadcasting, advanced indexing, list
repetition) and every intermediate result is checked again afterwards. A wall clock is checked
between node evaluations. The operator tables here are also the checker's allow-list of operators.
"""
from __future__ import annotations

import ast
import math
import operator
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from core.errors import Code, exception_text
from core.safe.allowlist import (
    CONSTANTS,
    DTYPE_ATTRS,
    DTYPES,
    FUNCTIONS,
    RESULT_ATTRS,
    SIZE_METHODS,
    TENSOR_ATTRS,
    TENSOR_METHODS,
    ExprError,
    Limits,
    check_broadcast,
    check_exponent,
    check_matmul,
    describe_value,
    too_large,
    too_many_items,
)
from core.safe.budget import setting_name

# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------

BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.MatMult: operator.matmul,
    # Elementwise logic on (boolean) tensors: (x > 0) & (x < 1).
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
UNARYOPS: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
    ast.Not: operator.not_,
}
CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}

# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

_SCALARS = (bool, int, float, complex)
_VALUE_TYPES = (torch.Tensor, torch.dtype, torch.device, bool, int, float, complex, slice, list, tuple)


def _tensors_in(value: object, limit: int) -> list[torch.Tensor]:
    """The tensors inside nested lists/tuples (at most ``limit`` containers and items are looked at)."""
    found: list[torch.Tensor] = []
    stack, seen = [value], 0
    while stack and seen <= limit:
        item = stack.pop()
        seen += 1
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


def _is_result_tuple(value: object) -> bool:
    return isinstance(value, tuple) and type(value).__module__ == "torch.return_types"


class Evaluator:
    """Evaluates one checked tree (``visit(tree.body)``) with the page's variables within ``limits``."""

    def __init__(self, variables: Mapping[str, object], limits: Limits) -> None:
        self.variables = variables
        self.limits = limits
        self.start = time.monotonic()
        # id -> (object, element count); the object is kept so ids stay unique.
        self.counts: dict[int, tuple[object, int]] = {}
        self.item_counts: dict[int, tuple[object, int]] = {}  # id -> (object, Python items), likewise
        self.live = 0  # bytes of values held by the operations still being evaluated
        self.visitors: dict[type, Callable[[Any], Any]] = {
            ast.Constant: self.constant,
            ast.Name: self.name,
            ast.BinOp: self.binop,
            ast.UnaryOp: self.unaryop,
            ast.BoolOp: self.boolop,
            ast.Compare: self.compare,
            ast.IfExp: self.ifexp,
            ast.Call: self.call,
            ast.Attribute: self.attribute,
            ast.Subscript: self.subscript,
            ast.Slice: self.slice,
            ast.List: self.list_display,
            ast.Tuple: self.tuple_display,
        }

    # -- bookkeeping -------------------------------------------------------
    def tick(self) -> None:
        if time.monotonic() - self.start > self.limits.max_seconds:
            raise ExprError("expr.timeout", seconds=self.limits.max_seconds)

    def count(self, value: object) -> int:
        """Elements in a value: tensors count numel, lists/tuples their contents."""
        if isinstance(value, torch.Tensor):
            return value.numel()
        if not isinstance(value, (list, tuple)):
            return 1
        hit = self.counts.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        kinds = set(map(type, value))
        if not any(issubclass(k, (list, tuple, torch.Tensor)) for k in kinds):
            n = len(value)
        else:
            n = 0
            for item in value:
                n += self.count(item)
                if n > self.limits.max_elements:
                    break
        self.counts[id(value)] = (value, n)
        return n

    def items(self, value: object) -> int:
        """Python items in a list/tuple, nested lists and tuples counted too (0 for anything else)."""
        if not isinstance(value, (list, tuple)) or isinstance(value, torch.Size):
            return 0
        hit = self.item_counts.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        n = len(value)
        for item in value:
            if n > self.limits.max_items:
                break
            if isinstance(item, (list, tuple)):
                n += self.items(item)
        self.item_counts[id(value)] = (value, n)
        return n

    def nbytes(self, value: object) -> int:
        """Memory a value holds: its tensors' bytes plus a Python object per list item (an estimate)."""
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
            return 32 * self.items(value) + sum(
                t.numel() * t.element_size() for t in _tensors_in(value, self.limits.max_items))
        return 0

    def hold(self, value: object) -> int:
        """Count ``value`` as held until the operation that needs it has run; refuse past the budget."""
        n = self.nbytes(value)
        self.live += n
        cap = self.limits.max_bytes
        if cap is not None and self.live > cap:
            raise ExprError("expr.memory_budget", mb=self.live / 2**20, budget=cap / 2**20,
                            setting=setting_name("budget_mb"))
        return n

    def check_result(self, value: object) -> None:
        if value is None or value is Ellipsis:
            return
        if not isinstance(value, _VALUE_TYPES):
            raise ExprError("expr.result", what=describe_value(value))
        if isinstance(value, torch.Tensor):
            too_large(value.numel(), self.limits)
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > self.limits.max_int:
                raise ExprError("expr.integer", value=value, max=self.limits.max_int)
        elif isinstance(value, (list, tuple)):
            what = "list" if isinstance(value, list) else "tuple"
            too_large(self.count(value), self.limits, what)
            too_many_items(self.items(value), self.limits, what)

    def check_variable(self, name: str, value: object, depth: int = 0) -> None:
        if value is None or isinstance(value, (torch.Tensor, torch.dtype, torch.device, *_SCALARS)):
            return
        if isinstance(value, (list, tuple)) and depth < 32:
            for item in value:
                self.check_variable(name, item, depth + 1)
            return
        raise ExprError("expr.variable", name=Code(name), what=describe_value(value))

    # -- entry point ---------------------------------------------------------
    def visit(self, node: ast.AST) -> object:
        self.tick()
        visitor = self.visitors.get(type(node))
        if visitor is None:  # check() refuses these already
            raise ExprError("expr.node", kind=Code(type(node).__name__))
        value = visitor(node)
        if not isinstance(node, ast.Name):  # the page's own variables are not results
            self.check_result(value)
        return value

    # -- nodes ---------------------------------------------------------------
    def constant(self, node: ast.Constant) -> object:
        return node.value

    def name(self, node: ast.Name) -> object:
        name = node.id
        if name in self.variables:
            value = self.variables[name]
            self.check_variable(name, value)
            return value
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in DTYPES:
            return DTYPES[name]
        raise ExprError("expr.name", name=Code(name))

    def binop(self, node: ast.BinOp) -> object:
        held = 0
        try:
            left = self.visit(node.left)
            held += self.hold(left)
            right = self.visit(node.right)
            held += self.hold(right)
            return self.apply_binop(node, left, right)
        finally:
            self.live -= held

    def apply_binop(self, node: ast.BinOp, left: Any, right: Any) -> object:
        kind = type(node.op)
        if kind is ast.Pow:
            check_exponent(right, self.limits)
        if kind is ast.Mult:
            self.check_repetition(left, right)
        if kind is ast.MatMult:
            check_matmul(left, right, self.limits)
        else:
            check_broadcast((left, right), self.limits)
        return BINOPS[kind](left, right)

    def check_repetition(self, left: Any, right: Any) -> None:
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (list, tuple)) and not isinstance(times, (list, tuple)):
                try:
                    k = operator.index(times)
                except Exception:  # noqa: BLE001 - not a whole number: no repetition to count
                    continue
                what = "list" if isinstance(seq, list) else "tuple"
                too_large(self.count(seq) * max(k, 0), self.limits, what)
                too_many_items(self.items(seq) * max(k, 0), self.limits, what)

    def unaryop(self, node: ast.UnaryOp) -> object:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not self.truth(operand)
        return UNARYOPS[type(node.op)](operand)

    @staticmethod
    def truth(value: object) -> bool:
        try:
            return bool(value)
        except Exception as exc:
            raise ExprError("expr.truth", error=Code(exception_text(exc)), ops=Code("& | ~")) from exc

    def boolop(self, node: ast.BoolOp) -> object:
        is_and = isinstance(node.op, ast.And)
        value: object = None
        for part in node.values:
            value = self.visit(part)
            if self.truth(value) != is_and:
                return value
        return value

    def compare(self, node: ast.Compare) -> object:
        left = self.visit(node.left)
        acc: Any = True  # True, then a boolean tensor
        for op, part in zip(node.ops, node.comparators, strict=False):
            right = self.visit(part)
            check_broadcast((left, right), self.limits)
            result = CMPOPS[type(op)](left, right)
            if isinstance(result, torch.Tensor):
                check_broadcast((acc, result), self.limits)
                acc = result if acc is True else acc & result
            elif not self.truth(result):
                if not isinstance(acc, torch.Tensor):
                    return False
                acc = acc & False
            left = right
        return acc

    def ifexp(self, node: ast.IfExp) -> object:
        return self.visit(node.body) if self.truth(self.visit(node.test)) else self.visit(node.orelse)

    def call(self, node: ast.Call) -> object:
        held = 0
        try:
            receiver = None
            if isinstance(node.func, ast.Attribute):
                receiver = self.visit(node.func.value)
                held += self.hold(receiver)
            args = []
            for arg in node.args:
                args.append(self.visit(arg))
                held += self.hold(args[-1])
            kwargs = {}
            for kw in node.keywords:  # check() refused **kwargs, so every keyword has a name
                if kw.arg is not None:
                    kwargs[kw.arg] = self.visit(kw.value)
                    held += self.hold(kwargs[kw.arg])
            return self.apply_call(node, receiver, tuple(args), kwargs)
        finally:
            self.live -= held

    def apply_call(self, node: ast.Call, receiver: object, args: tuple, kwargs: dict) -> object:
        func = node.func
        self.tick()
        if isinstance(func, ast.Name):
            op = FUNCTIONS.get(func.id)
            if op is None:
                raise ExprError("expr.function", name=Code(func.id))
            if op.tensorize and args and isinstance(args[0], (*_SCALARS, list, tuple)):
                args = (torch.as_tensor(args[0]), *args[1:])
            if op.precheck is not None:
                op.precheck(args, kwargs, self.limits)
            return op.fn(*args, **kwargs)
        if isinstance(func, ast.Attribute):
            return self.call_method(receiver, func.attr, args, kwargs)
        raise ExprError("expr.callee")  # check() refuses these already

    def call_method(self, obj: object, name: str, args: tuple, kwargs: dict) -> object:
        if isinstance(obj, torch.Tensor):
            op = TENSOR_METHODS.get(name)
        elif isinstance(obj, torch.Size):
            op = SIZE_METHODS.get(name)
        else:
            op = None
        if op is None:
            raise ExprError("expr.method_on", name=Code(name), what=describe_value(obj))
        if op.precheck is not None:
            op.precheck(obj, args, kwargs, self.limits)
        return op.fn(obj, *args, **kwargs)

    def attribute(self, node: ast.Attribute) -> object:
        obj = self.visit(node.value)
        name = node.attr
        if isinstance(obj, torch.Tensor):
            getter = TENSOR_ATTRS.get(name)
        elif isinstance(obj, torch.dtype):
            getter = DTYPE_ATTRS.get(name)
        elif _is_result_tuple(obj):
            getter = RESULT_ATTRS.get(name)
        else:
            getter = None
        if getter is None:
            raise ExprError("expr.attribute_on", name=Code(name), what=describe_value(obj))
        return getter(obj)

    def subscript(self, node: ast.Subscript) -> object:
        obj = self.visit(node.value)
        index: Any = self.visit(node.slice)  # torch and Python refuse what does not index
        if isinstance(obj, torch.Tensor):
            index = self.tensor_index(index)
            self.check_index(obj, index)
            return obj[index]
        if isinstance(obj, (list, tuple)):
            return obj[index]
        raise ExprError("expr.not_indexable", what=describe_value(obj))

    @staticmethod
    def tensor_index(index: object) -> object:
        """Lists inside an index become tensors, so indexing means exactly one thing."""
        def convert(item: object) -> object:
            return torch.as_tensor(item) if isinstance(item, list) else item

        if isinstance(index, tuple) and not isinstance(index, torch.Size):
            return tuple(convert(item) for item in index)
        return convert(index)

    def check_index(self, t: torch.Tensor, index: object) -> None:
        """Refuse advanced indexing whose result would be too large."""
        items = index if isinstance(index, tuple) else (index,)
        if not any(isinstance(item, torch.Tensor) for item in items):
            return  # basic indexing makes a view no larger than t

        def consumed(item: object) -> int:
            if item is None or item is Ellipsis or isinstance(item, bool):
                return 0
            if isinstance(item, torch.Tensor) and item.dtype in (torch.bool, torch.uint8):
                return max(item.dim(), 1)
            return 1

        shape = list(t.shape)
        used = sum(consumed(item) for item in items)
        pos = 0
        kept = 1
        advanced: list[tuple[int, ...]] = []
        for item in items:
            if item is Ellipsis:
                for size in shape[pos : pos + max(len(shape) - used, 0)]:
                    kept *= size
                pos += max(len(shape) - used, 0)
                continue
            k = consumed(item)
            if pos + k > len(shape):
                return  # torch reports the bad index
            if isinstance(item, torch.Tensor):
                if item.dtype in (torch.bool, torch.uint8):
                    advanced.append((int(item.count_nonzero()),))
                else:
                    advanced.append(tuple(item.shape))
            elif isinstance(item, slice):
                try:
                    kept *= len(range(*item.indices(shape[pos])))
                except Exception:  # noqa: BLE001 - torch reports a bad slice itself
                    kept *= shape[pos]
            pos += k
        for size in shape[pos:]:
            kept *= size
        try:
            adv = math.prod(torch.broadcast_shapes(*advanced))
        except Exception:  # noqa: BLE001 - indices that do not broadcast: torch reports it
            return
        too_large(kept * adv, self.limits)

    def slice(self, node: ast.Slice) -> slice:
        parts = [None if p is None else self.visit(p) for p in (node.lower, node.upper, node.step)]
        return slice(*parts)

    def displayed(self, elts: list[ast.expr]) -> list:
        """The values of a list/tuple display, each held (and the budget checked) as it comes."""
        held = 0
        try:
            values = []
            for elt in elts:
                values.append(self.visit(elt))
                held += self.hold(values[-1])
            return values
        finally:
            self.live -= held

    def list_display(self, node: ast.List) -> list:
        return self.displayed(node.elts)

    def tuple_display(self, node: ast.Tuple) -> tuple:
        return tuple(self.displayed(node.elts))

