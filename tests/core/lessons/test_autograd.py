"""Tests for core.lessons.autograd: the Autograd page engine."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch

from core.errors import Message
from core.lessons.autograd import (
    ACTIVATION_STYLES,
    EXAMPLES,
    a3_note,
    activation_figure,
    activations,
    contour_data,
    contour_figure,
    demo_accumulation,
    demo_anomaly,
    demo_no_grad,
    derivative_figure,
    derivatives,
    gradient,
    run_example,
)
from core.lessons.graph import dot_escape, graph_from_tensor, graph_to_dot, trace_expression
from core.safe.allowlist import ExprError
from core.safe.pycode import to_torch_code

ENGINE = Path(__file__).resolve().parents[3] / "core"
ENGINE_FILES = ("lessons/autograd.py", "lessons/derivative.py", "lessons/graph.py", "safe/pycode.py")
SOURCE = "\n".join((ENGINE / f).read_text() for f in ENGINE_FILES)


def test_core_module_does_not_import_streamlit_or_use_eval():
    assert not re.search(r"^\s*(import|from)\s+streamlit", SOURCE, re.M)
    assert not re.search(r"(?<![\w.])(eval|exec|compile)\s*\(", SOURCE)


# --------------------------------------------------------------------------- examples
def test_examples_table():
    assert set(EXAMPLES) == {f"A{i}" for i in range(1, 8)}
    for ex in EXAMPLES.values():  # titles and notes are catalogue texts, shown in the page's language
        assert {"title", "expr", "code", "note"} <= set(ex)
        assert isinstance(ex["title"], Message) and ex["title"].text("zh") != str(ex["title"])
    note = run_example("A3")["note"]  # only 6.28 is wrong: 2·w0 without the cos(w0) ≈ -1 term
    w = torch.tensor([3.14, 1.0], requires_grad=True)
    (2 * w[0] * w[1] + w[1] * torch.cos(w[0])).backward()
    g0, g1 = w.grad.tolist()
    assert note.params["g0"] == pytest.approx(g0) and note.params["g1"] == pytest.approx(g1)
    assert note.params["cos"] == pytest.approx(math.cos(3.14)) and note.params["two_w0"] == pytest.approx(6.28)
    text = str(note)
    assert "[2.0, 6.28]" in text and f"{g0:.4f}" in text and f"{g1:.4f}" in text and "Only 6.28 is wrong" in text
    assert "2.0 is right" in text and f"{math.cos(3.14):.4f}" in text
    assert a3_note(gradient("w0 * w1", [3.14, 1.0])) is None
    assert a3_note(gradient(EXAMPLES["A3"]["expr"], [1, 1])) is None
    with pytest.raises(ValueError, match="unknown example"):
        run_example("A0")


def test_a1_cubic():
    r = run_example("A1")["result"]
    assert r["value"] == 18.0 and r["d1"] == 17.0 and r["d2"] == pytest.approx(12.0)


def test_a2_quadratic():
    r = run_example("A2")["result"]
    assert r["value"] == 10.0 and r["d1"] == 6.0 and r["d2"] == pytest.approx(2.0)


def test_a3_true_gradient():
    r = run_example("A3")["result"]
    assert [round(g, 4) for g in r["grad"]] == [1.9984, 5.2800]
    assert r["grad"][1] != pytest.approx(6.28, abs=0.1)
    assert r["names"] == ["w0", "w1"]
    # w[0], w[1] spelling gives the same
    r2 = gradient("2*w[0]*w[1] + w[1]*cos(w[0])", [3.14, 1])
    assert r2["grad"] == pytest.approx(r["grad"])


def test_a4_accumulation_doubles_then_zero():
    r = run_example("A4")["result"]
    assert r["first"] == 6.0 and r["second"] == 12.0
    assert r["after_zero"] == 0.0 and r["after_zero_backward"] == 6.0
    assert [s["grad"] for s in r["steps"]] == [6.0, 12.0, 0.0, 6.0]
    assert demo_accumulation("x**3", 1.0)["second"] == 6.0


def test_a5_no_grad_and_detach():
    r = run_example("A5")["result"]
    by = r["by_name"]
    assert by["y"]["requires_grad"] is True and by["y"]["grad_fn"] == "MulBackward0"
    assert by["z"]["requires_grad"] is False and by["z"]["grad_fn"] is None
    assert by["d"]["requires_grad"] is False and by["d"]["grad_fn"] is None
    assert by["w"]["requires_grad"] is False
    assert r["detach_shares_memory"] is True
    assert demo_no_grad()["rows"][0]["is_leaf"] is True


def test_a6_anomaly_names_op_and_nan():
    r = run_example("A6")["result"]
    assert r["value"] == 0.0
    assert math.isnan(r["grad_plain"])
    assert r["op"] == "SqrtBackward0" and r["forward_op"] == "Sqrt"
    assert "SqrtBackward0" in r["error"] and "nan" in r["error"].lower() and r["nan"]
    assert r["warning"].startswith("Error detected in SqrtBackward0")
    assert not torch.is_anomaly_enabled()


def test_anomaly_without_nan():
    r = demo_anomaly("x**2", 1.0)
    assert r["error"] is None and r["op"] is None and r["grad_plain"] == 2.0


def test_anomaly_other_expression():
    r = demo_anomaly("log(x) * 0", 0.0)  # d log/dx at 0 is inf, times 0 is NaN
    assert r["op"] in ("LogBackward0", "MulBackward0") and r["nan"]


def test_a7_activation_derivatives():
    r = activations(-1, 1, 3)
    assert r["x"] == [-1.0, 0.0, 1.0]
    f = r["functions"]
    assert f["Sigmoid"]["dy"][1] == pytest.approx(0.25)
    assert f["ReLU"]["dy"] == [0.0, 0.0, 1.0]  # relu'(-1) = 0, relu'(0) = 0 in PyTorch, relu'(1) = 1
    assert f["Tanh"]["dy"][1] == pytest.approx(1.0)
    assert f["LeakyReLU"]["dy"][0] == pytest.approx(0.01) and f["LeakyReLU"]["dy"][2] == 1.0
    assert f["ReLU"]["y"] == [0.0, 0.0, 1.0]
    full = run_example("A7")["result"]
    assert len(full["x"]) == 201 and full["names"] == ["ReLU", "Sigmoid", "Tanh", "LeakyReLU"]
    fig = activation_figure(full)
    assert isinstance(fig, go.Figure) and len(fig.data) == 8


# --------------------------------------------------------------------------- derivatives
def test_second_derivative():
    r = derivatives("x**3", 2, -3, 3)
    assert r["value"] == 8.0 and r["d1"] == 12.0 and r["d2"] == 12.0
    r = derivatives("sin(x)", 0.5, -3, 3, points=101, dtype="float64")
    assert r["d1"] == pytest.approx(math.cos(0.5)) and r["d2"] == pytest.approx(-math.sin(0.5))


def test_curves_match_analytic():
    r = derivatives("x**3 + 5*x", 2, -2, 2, points=5)
    assert r["x"] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert r["f"] == [-18.0, -6.0, 0.0, 6.0, 18.0]
    assert r["df"] == [17.0, 8.0, 5.0, 8.0, 17.0]
    assert r["d2f"] == [-12.0, -6.0, 0.0, 6.0, 12.0]


def test_derivatives_constant_and_linear():
    r = derivatives("3", 1, 0, 2, points=3)
    assert r["value"] == 3.0 and r["d1"] == 0.0 and r["df"] == [0.0, 0.0, 0.0]
    r = derivatives("5*x", 1, 0, 2, points=3)
    assert r["d1"] == 5.0 and r["d2"] == 0.0 and r["d2f"] == [0.0, 0.0, 0.0]


def test_derivatives_non_finite_become_gaps():
    r = derivatives("1/x", 1, -1, 1, points=3)
    assert r["f"][1] is None and r["f"][0] == -1.0


def test_derivatives_refuse_non_elementwise():
    with pytest.raises(ValueError, match=r"same|elementwise"):
        derivatives("x.sum()", 1, 0, 2)
    for text in ("x - x.mean()", "cumsum(x, 0)", "x.flip(0)", "rand_like(x)"):
        with pytest.raises(ValueError, match="elementwise"):
            derivatives(text, 1, 0, 2)


@pytest.mark.parametrize(
    "args, message",
    [
        (("x**2", 1, 2, 1), "lo < hi"),
        (("x**2", 1, 0, 0), "lo < hi"),
        (("x**2", math.nan, 0, 1), "finite"),
        (("x**2", 1, -math.inf, 1), "finite"),
        (("x**2", "a", 0, 1), "number"),
        (("x**2", 1, 0, 1, 1), "between 2 and 2,000"),
        (("x**2", 1, 0, 1, 5000), "between 2 and 2,000"),
        (("x**2", 1, 0, 1, True), "whole number"),
        (("y**2", 1, 0, 1), "not allowed"),
        (("__import__('os').system('id')", 1, 0, 1), "not allowed"),
        (("x.__class__", 1, 0, 1), "not allowed"),
        (("[x, x]", 1, 0, 1), "tensor or a number"),
        (("x**1000", 1, 0, 1), "exponent"),
    ],
)
def test_derivatives_validation(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        derivatives(*args)


def test_expr_errors_are_value_errors():
    with pytest.raises(ExprError):
        derivatives("import os", 1, 0, 1)


def test_derivative_figure():
    r = derivatives("x**2", 1, -2, 2)
    fig = derivative_figure(r, {"f": "f", "tangent": "Tangente"})
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert "f" in names and "Tangente" in names


def test_code_is_real_pytorch():
    source, imports = to_torch_code("sin(x) + softmax(x) * pi + x.to(float64)", ["x"])
    assert source == "torch.sin(x) + F.softmax(x, dim=-1) * math.pi + x.to(torch.float64)"
    assert imports == {"torch", "F", "math"}
    code = derivatives("x**3 + 5*x", 2, 0, 3)["code"]
    assert "torch.autograd.grad(y, x, create_graph=True)" in code and "x ** 3 + 5 * x" in code


# --------------------------------------------------------------------------- gradient / contour
def test_gradient_vector_forms():
    r = gradient("w @ w", [1, 2, 3])
    assert r["value"] == 14.0 and r["grad"] == [2.0, 4.0, 6.0]
    r = gradient("w0 * w1 * w2", "[1, 2, 3]")
    assert r["grad"] == [6.0, 3.0, 2.0]
    r = gradient("w.sum() + w7", list(range(8)))
    assert r["grad"] == [1.0] * 7 + [2.0]
    r = gradient("5", [1, 2])
    assert r["grad"] == [0.0, 0.0]


@pytest.mark.parametrize(
    "expr, w, message",
    [
        ("w0", list(range(9)), "between 1 and 8"),
        ("w0", [], "between 1 and 8"),
        ("w0", [math.inf], "finite"),
        ("w * 2", [1, 2], "one number"),
        ("w2", [1, 2], "not allowed"),
        ("w0", "nonsense", "could not read"),
    ],
)
def test_gradient_validation(expr, w, message):
    with pytest.raises(ValueError, match=message):
        gradient(expr, w)


def test_contour_vectorized_and_fallback():
    d = contour_data("w0**2 + 3*w1**2", [1, 1], 2, points=21, arrows=5)
    assert d["vectorized"] and len(d["z"]) == 21 and len(d["z"][0]) == 21
    assert d["grad"] == [2.0, 6.0] and d["value"] == 4.0
    i = d["arrows"]["w0"].index(1.0)  # the arrow at (1, -1)
    assert d["arrows"]["g0"][i] == pytest.approx(2 * d["arrows"]["w0"][i])
    assert d["arrows"]["g1"][i] == pytest.approx(6 * d["arrows"]["w1"][i])
    assert d["z"][10][10] == pytest.approx(4.0)

    fb = contour_data("w @ w", [0, 0], 1, points=41, arrows=5)  # not elementwise on the grid
    assert not fb["vectorized"] and len(fb["z"]) == 21
    assert fb["z"][0][0] == pytest.approx(2.0)

    fig = contour_figure("w0**2 + 3*w1**2", [1, 1], 2, points=21, arrows=5, labels={"g": "loss"})
    assert isinstance(fig, go.Figure) and isinstance(fig.data[0], go.Contour)


def test_contour_validation():
    with pytest.raises(ValueError, match="exactly 2"):
        contour_data("w0", [1, 2, 3], 1)
    with pytest.raises(ValueError, match="span"):
        contour_data("w0", [1, 2], 0)
    with pytest.raises(ValueError, match="points"):
        contour_data("w0", [1, 2], 1, points=1000)


# --------------------------------------------------------------------------- graphs
def test_graph_of_simple_expression():
    x = torch.tensor(2.0, requires_grad=True)
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x * w).sum()
    g = graph_from_tensor(y, {"x": x, "w": w})
    kinds = [n["kind"] for n in g["nodes"]]
    assert kinds.count("output") == 1 and kinds.count("leaf") == 2
    ops = {n["grad_fn"]: n["label"] for n in g["nodes"] if n["kind"] == "op"}
    assert ops == {"SumBackward0": "Sum", "MulBackward0": "Mul"}
    leaves = {n["name"]: n for n in g["nodes"] if n["kind"] == "leaf"}
    assert leaves["w"]["shape"] == (2,) and leaves["x"]["shape"] == ()
    assert leaves["x"]["grad"] is None
    ids = {n["id"]: n for n in g["nodes"]}
    # edges point forward: leaf -> op -> output
    assert {(ids[e["source"]]["kind"], ids[e["target"]]["kind"]) for e in g["edges"]} == {
        ("leaf", "op"), ("op", "op"), ("op", "output")}
    y.backward()
    g = graph_from_tensor(y, {x: "x", w: "w"})  # tensor -> name works too
    leaves = {n["name"]: n for n in g["nodes"] if n["kind"] == "leaf"}
    assert leaves["x"]["grad"] == 3.0 and leaves["w"]["grad"] == [2.0, 2.0]


def test_graph_grad_norm_for_big_leaves_and_given_grads():
    a = torch.ones(100, requires_grad=True)
    y = (a * 3).sum()
    y.backward()
    leaf = next(n for n in graph_from_tensor(y, {"a": a})["nodes"] if n["kind"] == "leaf")
    assert leaf["grad"] is None and leaf["grad_norm"] == pytest.approx(30.0)
    leaf = next(n for n in graph_from_tensor(y, {"a": a}, grads={"a": torch.full((100,), 2.0)})["nodes"]
            if n["kind"] == "leaf")
    assert leaf["grad_norm"] == pytest.approx(20.0)


def test_graph_saved_tensors_and_freed():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    g = graph_from_tensor(y, {"x": x}, show_saved=True)
    saved = [n for n in g["nodes"] if n["kind"] == "saved"]
    assert {n["label"] for n in saved} == {"self", "other"}
    assert all(n["shape"] == (2,) and n["name"] == "x" for n in saved)
    assert any(e["kind"] == "saved" for e in g["edges"])
    y.backward()  # frees the saved tensors
    g = graph_from_tensor(y, {"x": x}, show_saved=True)
    mul = next(n for n in g["nodes"] if n["grad_fn"] == "MulBackward0")
    assert mul["saved_freed"] is True
    assert not [n for n in g["nodes"] if n["kind"] == "saved"]
    assert "saved tensors freed" in graph_to_dot(g)


def test_graph_of_leaf_and_no_grad():
    x = torch.ones(2, requires_grad=True)
    g = graph_from_tensor(x, {"x": x})
    assert len(g["nodes"]) == 1 and g["nodes"][0]["kind"] == "leaf" and g["nodes"][0]["is_output"]
    g = graph_from_tensor(torch.ones(2))
    assert "requires_grad=False" in g["nodes"][0]["detail"]


def test_deep_chain_is_walked_without_recursion():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y = y.sum()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(500)  # any recursion per node would fail here
    try:
        g = graph_from_tensor(y, {"x": x}, show_saved=True)
        dot = graph_to_dot(g)
    finally:
        sys.setrecursionlimit(old)
    assert len(g["nodes"]) == 5000 + 3 and not g["truncated"]
    assert len(g["edges"]) == 5000 + 2
    assert dot.count("[label=") == 301  # 300 nodes + the "more" node
    assert "4,703 more nodes" in dot
    assert '"x\\nshape (2,)' in dot  # the leaf is always drawn


def test_ten_thousand_nodes_and_cap():
    x = torch.ones(3, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    g = graph_from_tensor(y, {"x": x})
    assert len(g["nodes"]) == 10_002
    small = graph_from_tensor(y, {"x": x}, max_nodes=50)
    assert len(small["nodes"]) == 50 and small["truncated"]
    assert "… more nodes" in graph_to_dot(small)


def _dot_strings(dot: str) -> list[str]:
    """The double-quoted strings of DOT text, unescaped; fails on an unterminated string."""
    out, i = [], 0
    while i < len(dot):
        if dot[i] != '"':
            i += 1
            continue
        i += 1
        buf = []
        while True:
            assert i < len(dot), "unterminated string"
            ch = dot[i]
            assert ch != "\n", "raw newline inside a DOT string"
            if ch == "\\":
                nxt = dot[i + 1]
                buf.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            if ch == '"':
                i += 1
                break
            buf.append(ch)
            i += 1
        out.append("".join(buf))
    return out


def test_dot_escapes_hostile_names():
    hostile = 'a"b\\c\n{d}|<e> <script>alert(1)</script>'
    assert dot_escape(hostile) == 'a\\"b\\\\c\\n{d}|<e> <script>alert(1)</script>'
    x = torch.ones(2, requires_grad=True)
    y = (x * 2).sum()
    names = {hostile: x, 'out"]; evil [label="x': y}
    dot = graph_to_dot(graph_from_tensor(y, names))
    strings = _dot_strings(dot)
    assert any(s.startswith(hostile[:40]) or hostile[:39] in s for s in strings)
    assert any(s.startswith('out"]; evil [label="x') for s in strings)
    # outside strings only our own syntax remains
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', dot)
    assert "evil" not in outside and "script" not in outside
    assert outside.count("{") == 1 and outside.count("}") == 1
    assert dot_escape("\x00\x1b[31m") == "\ufffd\ufffd[31m"


def test_dot_long_names_are_shortened():
    x = torch.ones(1, requires_grad=True)
    g = graph_from_tensor(x * 2, {"n" * 500: x})
    leaf = next(n for n in g["nodes"] if n["kind"] == "leaf")
    assert len(leaf["label"]) == 40 and leaf["label"].endswith("…")


# --------------------------------------------------------------------------- trace_expression
def test_trace_expression():
    r = trace_expression("(a * b + sin(a)).sum()", {"a": ([1.0, 2.0], True), "b": ("[3, 4]", False)},
                         show_saved=True)
    assert torch.allclose(r["grads"]["a"], torch.tensor([3.0, 4.0]) + torch.cos(torch.tensor([1.0, 2.0])))
    assert r["grads"]["b"] is None
    assert r["backward"] == "y.backward()"
    assert r["dot"].startswith("digraph autograd {")
    assert r["result_info"]["shape"] == ()
    assert "torch.sin(a)" in r["code"] and "a.grad" in r["code"]
    assert any(n["kind"] == "saved" for n in r["graph"]["nodes"])


def test_trace_expression_non_scalar_and_no_grad():
    r = trace_expression("x * 2", {"x": ([1.0, 2.0, 3.0], True)})
    assert r["backward"].startswith("y.sum().backward()")
    assert r["grads"]["x"].tolist() == [2.0, 2.0, 2.0]
    r = trace_expression("x * 2", {"x": ([1.0], False)})
    assert r["backward"] is None and r["grads"]["x"] is None
    assert len(r["graph"]["nodes"]) == 1


@pytest.mark.parametrize(
    "expr, variables, message",
    [
        ("x", {}, "between 1 and 8"),
        ("x", {f"v{i}": (1.0, True) for i in range(9)}, "between 1 and 8"),
        ("x", {"_x": (1.0, True)}, "must be a letter"),
        ("sin", {"sin": (1.0, True)}, "already a function"),
        ("x", {"x": ("[[1, 2], [3]]", True)}, "variable 'x'"),
        ("x.max(dim=0)", {"x": ([1.0, 2.0], True)}, "must give a tensor"),
        ("x + y", {"x": (1.0, True)}, "not allowed"),
    ],
)
def test_trace_expression_validation(expr, variables, message):
    with pytest.raises(ValueError, match=message):
        trace_expression(expr, variables)


def test_a7_no_curve_hides_another():
    """ReLU and LeakyReLU (slope 0.01) nearly coincide: they differ in dash and width, so the one
    drawn first still shows; each function keeps its colour and style in both panels."""
    fig = activation_figure(run_example("A7")["result"])
    lines = {}
    for trace in fig.data:
        lines.setdefault(trace.name, []).append((trace.line.color, trace.line.dash, trace.line.width))
    assert set(lines) == {"ReLU", "Sigmoid", "Tanh", "LeakyReLU"}
    for name, styles in lines.items():
        assert len(styles) == 2 and styles[0] == styles[1], name  # the same look in both panels
    relu, leaky = lines["ReLU"][0], lines["LeakyReLU"][0]
    assert relu[1] != leaky[1] and relu[2] > leaky[2]  # another dash, and the wide one under the thin one
    order = [t.name for t in fig.data]
    assert order.index("ReLU") < order.index("LeakyReLU")
    assert len({s[0][0] for s in lines.values()}) == 4 and set(lines) <= set(ACTIVATION_STYLES)
