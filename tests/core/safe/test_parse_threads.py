"""ast.parse is not thread-safe on CPython 3.11 (issue 22, item 7): under concurrent sessions the
expression engine raised ``SystemError: AST constructor recursion depth mismatch``."""
from __future__ import annotations

import collections
import gc
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from core.safe.allowlist import ExprError, Limits
from core.safe.expr import evaluate

# A long expression of cheap steps: most of each evaluation is spent in the parser.
EXPR = "sin(x).sum() + " + " + ".join(f"(y * {i} - {i})" for i in range(120))
# Room for it, and for a busy machine's clock: this test is about the parser.
ROOMY = Limits(max_seconds=120, max_chars=5000, max_nodes=2000, max_depth=300)


EXPECTED = float(torch.sin(torch.arange(12.0)).sum()) + sum(0.5 * i - i for i in range(120))


class _Finalized:
    """Garbage with a Python finalizer: the collector runs it in the middle of whatever allocates,
    ast's C code included, and the interpreter may switch threads there (as in a busy server)."""

    def __del__(self) -> None:
        total = 0
        for i in range(50):
            total += i


def _one(x: torch.Tensor) -> str:
    for _ in range(20):
        a, b = _Finalized(), _Finalized()
        a.other, b.other = b, a  # a cycle: only the collector frees it
    try:
        value = evaluate(EXPR, {"x": x, "y": 0.5}, ROOMY)
    except SystemError as exc:
        return f"SystemError: {exc}"
    return "ok" if abs(float(value) - EXPECTED) < 1e-3 else f"wrong: {value}"


def test_1600_concurrent_evaluations_never_raise_systemerror():
    x = torch.arange(12.0).reshape(3, 4)
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    gc.set_threshold(50)  # and collect (running the finalizers) often, also inside ast's C code
    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = collections.Counter(pool.map(lambda _: _one(x), range(1600)))
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
    assert outcomes == {"ok": 1600}, outcomes


def test_a_parser_failure_is_a_clear_error(monkeypatch):
    def broken(source, mode="exec"):
        raise SystemError("AST constructor recursion depth mismatch (before=30, after=25)")

    monkeypatch.setattr("core.safe.expr.parse", broken)
    with pytest.raises(ExprError) as info:
        evaluate("x + 1", {"x": torch.ones(2)})
    assert info.value.code == "expr.parser_failed" and "try again" in str(info.value)
