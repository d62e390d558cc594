"""Safe evaluator for the tensor expressions a lab user types.

Anyone holding a share URL can put text into an expression box, so that text is
treated as hostile.  It is parsed with ``ast.parse(text, mode="eval")`` and the
tree is walked against allow-lists; it is never handed to Python's own code
evaluator (the builtins eval / exec / compile are not used anywhere here).

Two passes:

* :func:`check` is static: length, bracket nesting, syntax, node count, tree
  depth, node types, names, attributes, methods, keywords and literal sizes.
* :func:`evaluate` runs :func:`check`, then walks the tree (:mod:`core.safe.evaluator`).  Functions come from
  an explicit table of torch callables; methods and attributes are looked up
  in explicit tables built from constant names, and only on tensor / Size /
  dtype values.  Sizes are checked before allocation where they can be known
  (factories, expand/repeat, matmul, broadcasting, advanced indexing, list
  repetition) and every intermediate result is checked again afterwards.  A
  wall clock is checked between node evaluations.

Every refusal or failure (torch's own errors included) is raised as
:class:`ExprError`, a ``core.errors.LabError`` with a code (``expr.*``) and parameters, so
each page says it in its language; what the user typed and torch's own text (code
``expr.failed``) are its ``Code`` parameters.  ``str(error)`` is the short English text.  Autograd is
left alone: ``x**3 + 5*x`` with ``x.requires_grad`` returns a tensor with a
``grad_fn``.

Deviation from plain Python, on purpose: a chained comparison that involves
tensors combines elementwise, so ``0 < x < 1`` means ``(0 < x) & (x < 1)``."""
from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import cast

from core.errors import Code, exception_text
from core.safe.allowlist import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_KEYWORDS,
    ALLOWED_METHODS,
    CONSTANTS,
    DEFAULT_LIMITS,
    DTYPES,
    FUNCTIONS,
    ExprError,
    Limits,
)
from core.safe.budget import Budget
from core.safe.evaluator import BINOPS, CMPOPS, UNARYOPS, Evaluator
from core.safe.parsing import parse

# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------

# Operators the evaluator applies (BINOPS, UNARYOPS, CMPOPS in core.safe.evaluator) are allowed;
# these are refused by name.
_OP_SYMBOLS = {
    ast.LShift: "<<", ast.RShift: ">>", ast.Is: "is", ast.IsNot: "is not",
    ast.In: "in", ast.NotIn: "not in",
}

# Node types refused outright: the error each one raises.
_REFUSED_NODES: dict[type, Callable[[], ExprError]] = {
    ast.Lambda: lambda: ExprError("expr.lambda"),
    ast.ListComp: lambda: ExprError("expr.comprehension"),
    ast.SetComp: lambda: ExprError("expr.comprehension"),
    ast.DictComp: lambda: ExprError("expr.comprehension"),
    ast.GeneratorExp: lambda: ExprError("expr.generator"),
    ast.JoinedStr: lambda: ExprError("expr.fstring"),
    ast.FormattedValue: lambda: ExprError("expr.fstring"),
    ast.Dict: lambda: ExprError("expr.dict"),
    ast.Set: lambda: ExprError("expr.set"),
    ast.NamedExpr: lambda: ExprError("expr.walrus"),
    ast.Starred: lambda: ExprError("expr.unpacking", what=Code("*")),
    ast.Await: lambda: ExprError("expr.await"),
    ast.Yield: lambda: ExprError("expr.yield"),
    ast.YieldFrom: lambda: ExprError("expr.yield"),
}


def _too_deep(limits: Limits) -> ExprError:
    return ExprError("expr.too_deep", max=limits.max_depth)


# ---------------------------------------------------------------------------
# Static check
# ---------------------------------------------------------------------------

def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def _statement_error(text: str) -> ExprError | None:
    """If the text parses as statements, say why that is not allowed."""
    try:
        module = cast(ast.Module, parse(text, mode="exec"))
    except BaseException:  # noqa: BLE001 - includes RecursionError / MemoryError / SystemError
        return None
    if not module.body:
        return None
    first = module.body[0]
    if len(module.body) == 1 and isinstance(first, (ast.Import, ast.ImportFrom)):
        return ExprError("expr.import")
    if len(module.body) == 1 and isinstance(first, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return ExprError("expr.assignment_statement")
    return ExprError("expr.statements")


def _parse(text: object, limits: Limits) -> ast.Expression:
    if not isinstance(text, str):
        raise ExprError("expr.not_text")
    if len(text) > limits.max_chars:
        raise ExprError("expr.too_long", n=len(text), max=limits.max_chars)
    source = text.strip()
    if not source:
        raise ExprError("expr.empty")
    if _bracket_depth(source) > limits.max_depth:
        raise _too_deep(limits)
    try:
        tree = parse(source, mode="eval")
    except SyntaxError as exc:
        statement = _statement_error(source)
        if statement:
            raise statement from None
        if exc.offset:
            raise ExprError("expr.syntax_at", column=exc.offset, msg=Code(exc.msg)) from None
        raise ExprError("expr.syntax", msg=Code(exc.msg)) from None
    except (RecursionError, MemoryError):
        raise _too_deep(limits) from None
    except (ValueError, TypeError) as exc:  # e.g. null bytes
        raise ExprError("expr.invalid", reason=Code(exception_text(exc))) from None
    except SystemError as exc:  # Python's parser failed in itself (see core.safe.parsing), not the text
        raise ExprError("expr.parser_failed", reason=Code(exception_text(exc))) from None
    return cast(ast.Expression, tree)


class _Checker:
    def __init__(self, names: frozenset[str], limits: Limits) -> None:
        self.names = names
        self.limits = limits

    def run(self, tree: ast.Expression) -> None:
        # Iterative walk: no recursion however deep the tree is.
        stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
        count = 0
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > self.limits.max_nodes:
                raise ExprError("expr.too_many_parts", max=self.limits.max_nodes)
            if depth > self.limits.max_depth:
                raise _too_deep(self.limits)
            children = self.node(node)
            stack.extend((child, depth + 1) for child in reversed(children))

    # -- one node; returns the child expressions still to check -----------
    def node(self, node: ast.AST) -> list[ast.AST]:
        kind = type(node)
        if kind in _REFUSED_NODES:
            raise _REFUSED_NODES[kind]()
        ctx = getattr(node, "ctx", None)
        if ctx is not None and not isinstance(ctx, ast.Load):
            raise ExprError("expr.assignment")
        if isinstance(node, ast.Constant):
            self.constant(node.value)
            return []
        if isinstance(node, ast.Name):
            self.name_value(node.id)
            return []
        if isinstance(node, ast.BinOp):
            self.operator(node.op, BINOPS)
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            self.operator(node.op, UNARYOPS)
            return [node.operand]
        if isinstance(node, ast.BoolOp):
            return list(node.values)
        if isinstance(node, ast.Compare):
            for op in node.ops:
                self.operator(op, CMPOPS)
            return [node.left, *node.comparators]
        if isinstance(node, ast.IfExp):
            return [node.test, node.body, node.orelse]
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name):  # report `torch` in torch.load before `load`
                self.name_value(node.value.id)
            self.attribute_value(node.attr)
            return [node.value]
        if isinstance(node, ast.Subscript):
            return [node.value, node.slice]
        if isinstance(node, ast.Slice):
            return [part for part in (node.lower, node.upper, node.step) if part is not None]
        if isinstance(node, (ast.List, ast.Tuple)):
            return list(node.elts)
        raise ExprError("expr.node", kind=Code(kind.__name__))

    def constant(self, value: object) -> None:
        if value is None or value is Ellipsis or isinstance(value, (bool, float)):
            return
        if isinstance(value, int):
            if abs(value) > self.limits.max_int:
                raise ExprError("expr.integer", value=value, max=self.limits.max_int)
            return
        if isinstance(value, complex):
            raise ExprError("expr.complex")
        if isinstance(value, (str, bytes)):
            raise ExprError("expr.string")
        raise ExprError("expr.constant", kind=Code(type(value).__name__))

    @staticmethod
    def operator(op: ast.AST, allowed: Mapping[type, object]) -> None:
        if type(op) not in allowed:
            symbol = _OP_SYMBOLS.get(type(op), type(op).__name__)
            raise ExprError("expr.operator", symbol=Code(symbol))

    def name_value(self, name: str) -> None:
        if name.startswith("_"):
            raise ExprError("expr.name_underscore", name=Code(name))
        if name in self.names or name in CONSTANTS or name in DTYPES:
            return
        if name in FUNCTIONS:
            raise ExprError("expr.call_function", name=Code(name), call=Code(f"{name}(x)"))
        raise ExprError("expr.name", name=Code(name))

    @staticmethod
    def attribute_value(attr: str) -> None:
        if attr.startswith("_"):
            raise ExprError("expr.attribute_underscore", name=Code(attr))
        if attr in ALLOWED_ATTRIBUTES:
            return
        if attr in ALLOWED_METHODS:
            raise ExprError("expr.call_method", name=Code(attr), call=Code(f"x.{attr}()"))
        raise ExprError("expr.attribute", name=Code(attr))

    def call(self, node: ast.Call) -> list[ast.AST]:
        func = node.func
        children: list[ast.AST] = []
        if isinstance(func, ast.Name):
            name = func.id
            if name.startswith("_"):
                raise ExprError("expr.name_underscore", name=Code(name))
            if name not in FUNCTIONS:
                if name in self.names or name in CONSTANTS or name in DTYPES:
                    raise ExprError("expr.not_callable", name=Code(name))
                raise ExprError("expr.function", name=Code(name))
        elif isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name):
                self.name_value(func.value.id)
            attr = func.attr
            if attr.startswith("_"):
                raise ExprError("expr.attribute_underscore", name=Code(attr))
            if attr not in ALLOWED_METHODS:
                if attr in ALLOWED_ATTRIBUTES:
                    raise ExprError("expr.not_method", name=Code(attr), code=Code(f"x.{attr}"))
                raise ExprError("expr.method", name=Code(attr))
            children.append(func.value)
        else:
            raise ExprError("expr.callee")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExprError("expr.unpacking", what=Code("*args"))
            children.append(arg)
        seen: set[str] = set()
        for kw in node.keywords:
            if kw.arg is None:
                raise ExprError("expr.unpacking", what=Code("**kwargs"))
            if kw.arg.startswith("_") or kw.arg not in ALLOWED_KEYWORDS:
                raise ExprError("expr.keyword", name=Code(kw.arg))
            if kw.arg in seen:
                raise ExprError("expr.keyword_repeated", name=Code(kw.arg))
            seen.add(kw.arg)
            children.append(kw.value)
        return children


def check(text: str, names: Iterable[str] = (), limits: Limits = DEFAULT_LIMITS) -> ast.Expression:
    """Validate *text* statically and return its parsed tree; raise ExprError if refused.

    *names* are the variable names the expression may use.
    """
    tree = _parse(text, limits)
    _Checker(frozenset(str(n) for n in names), limits).run(tree)
    return tree


# ---------------------------------------------------------------------------
# Evaluation (the tree walker is core.safe.evaluator.Evaluator)
# ---------------------------------------------------------------------------

def with_budget(limits: Limits, budget: Budget | None = None) -> Limits:
    """``limits`` within the request budget: the clock is at most ``PYTORCH_LAB_BUDGET_S`` and
    ``max_bytes`` left open (None) becomes ``PYTORCH_LAB_BUDGET_MB``."""
    budget = Budget.current() if budget is None else budget
    return dataclasses.replace(
        limits, max_seconds=min(limits.max_seconds, budget.seconds),
        max_bytes=budget.memory_bytes if limits.max_bytes is None else limits.max_bytes)


def evaluate(
    text: str,
    variables: Mapping[str, object] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> object:
    """Check and evaluate *text* with the page's named *variables* (tensors, numbers).

    Raises ExprError for anything refused and for any failure during evaluation,
    carrying torch's own message when torch refused an operation.
    """
    variables = dict(variables or {})
    tree = check(text, variables.keys(), limits)
    evaluator = Evaluator(variables, with_budget(limits))
    try:
        return evaluator.visit(tree.body)
    except ExprError:
        raise
    except RecursionError:
        raise _too_deep(limits) from None
    except MemoryError:
        raise ExprError("expr.memory") from None
    except Exception as exc:  # torch / Python errors become user-facing messages: torch's own text
        raise ExprError("expr.failed", error=Code(exception_text(exc))) from exc
