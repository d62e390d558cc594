"""core.errors: codes and parameters rendered in each language; every code used in core has its text."""
from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest

from core import i18n
from core.errors import Code, LabError, code_span, exception_text, first_line, render

ROOT = Path(__file__).resolve().parents[2]


def error_codes_in_core() -> dict[str, str]:
    """Every ``SomethingError("a.code", ...)`` call in core/: code -> where."""
    found = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            value = node.args[0].value
            if name.endswith("Error") and isinstance(value, str) and re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", value):
                found.setdefault(value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_error_code_has_text_in_both_languages():
    codes = error_codes_in_core()
    missing = {c: where for c, where in codes.items() if f"err.{c}" not in i18n.CATALOGUE["en"]}
    assert not missing, f"error codes without a catalogue entry err.<code>: {missing}"


def test_a_lab_error_renders_per_language_with_code_shown_as_code():
    if "err.test.example" not in i18n.CATALOGUE["en"]:
        pytest.skip("the catalogue has no test entry")
    err = LabError("test.example", expr=Code("x * 2"), n=1234)
    assert str(err) == i18n.t("err.test.example", "en", expr="x * 2", n=1234)
    zh = err.message("zh", markdown=True)
    assert "`x * 2`" in zh and zh != err.message("en", markdown=True)
    again = pickle.loads(pickle.dumps(err))
    assert again.code == err.code and str(again) == str(err)


def test_code_span_keeps_backticks_and_markdown_literal():
    assert code_span("a*b") == "`a*b`"
    assert code_span("x`y") == "``x`y``"
    assert code_span("`") == "`` ` ``"
    assert code_span("__class__") == "`__class__`"


def test_markdown_is_escaped_for_plain_parameters():
    if "err.test.example" not in i18n.CATALOGUE["en"]:
        pytest.skip("the catalogue has no test entry")
    text = render("test.example", {"expr": "__class__ *bold*", "n": 1}, "en", markdown=True)
    assert "\\_\\_class\\_\\_" in text and "\\*bold\\*" in text


def test_exception_text_and_first_line():
    assert exception_text(RuntimeError("\x1b[31mred\x1b[0m")) == "red"
    assert exception_text(RuntimeError()) == "RuntimeError"
    assert first_line("Traceback (most recent call last):\n  File \"x\"\nValueError: bad at") == "ValueError: bad"
    assert first_line(KeyError()) == "KeyError"
