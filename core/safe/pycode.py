"""The PyTorch code equivalent of an expression the safe evaluator accepts (for the pages' code panels)."""
from __future__ import annotations

import ast
from collections.abc import Sequence

from core.safe.allowlist import ALLOWED_FUNCTIONS, DTYPES, Limits
from core.safe.expr import check

_F_FUNCTIONS = {"softmax", "log_softmax", "leaky_relu", "gelu", "silu", "elu", "softplus"}
_MATH_CONSTANTS = {"pi", "e", "inf", "nan"}


def to_torch_code(expr_text: str, names: Sequence[str] = ()) -> tuple[str, set[str]]:
    """Rewrite a checked lab expression as PyTorch source: ``sin(x)`` -> ``torch.sin(x)``.

    Returns ``(source, imports)`` where imports is a subset of {"math", "torch", "F"}.
    The text is only parsed and re-printed (ast.unparse), never executed.
    """
    tree = check(expr_text, names, Limits())  # static checks only: size limits do not apply
    imports: set[str] = set()

    class Rewrite(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            self.generic_visit(node)
            func = node.func
            if isinstance(func, ast.Name) and func.id in ALLOWED_FUNCTIONS and func.id != "len":
                module = "F" if func.id in _F_FUNCTIONS else "torch"
                imports.add(module)
                node.func = ast.Attribute(value=ast.Name(id=module, ctx=ast.Load()), attr=func.id, ctx=ast.Load())
                has_dim = len(node.args) >= 2 or any(kw.arg == "dim" for kw in node.keywords)
                if func.id in ("softmax", "log_softmax") and not has_dim:
                    node.keywords.append(ast.keyword(arg="dim", value=ast.Constant(-1)))
            return node

        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in names:
                return node
            if node.id in _MATH_CONSTANTS:
                imports.add("math")
                return ast.Attribute(value=ast.Name(id="math", ctx=ast.Load()), attr=node.id, ctx=ast.Load())
            if node.id in DTYPES:
                imports.add("torch")
                return ast.Attribute(value=ast.Name(id="torch", ctx=ast.Load()), attr=node.id, ctx=ast.Load())
            return node

    body = Rewrite().visit(tree).body
    return ast.unparse(body), imports


def imports_line(extra: set[str]) -> str:
    lines = []
    if "math" in extra:
        lines.append("import math")
    lines.append("import torch")
    if "F" in extra:
        lines.append("import torch.nn.functional as F")
    return "\n".join(lines)
