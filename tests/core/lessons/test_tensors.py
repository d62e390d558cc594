"""Tests for core.lessons.tensors: the Tensors page engine."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import Message
from core.lessons.tensor_examples import EXAMPLES, TUTORIAL_DEVICE_ERROR, run_example
from core.lessons.tensors import (
    OPS,
    apply_op,
    broadcast_explain,
    describe,
    make_tensor,
    parse_shape,
    parse_values,
    to_frame,
)

ENGINE = Path(__file__).resolve().parents[3] / "core"
SOURCE = "\n".join((ENGINE / f).read_text() for f in ("lessons/tensors.py", "lessons/tensor_examples.py"))


def torch_error(fn) -> str:
    with pytest.raises(Exception) as info:
        fn()
    return str(info.value)


# --------------------------------------------------------------------------- module rules
def test_core_module_does_not_import_streamlit_or_use_eval():
    assert not re.search(r"^\s*(import|from)\s+streamlit", SOURCE, re.M)
    assert not re.search(r"\b(eval|exec|compile)\s*\(", SOURCE.replace("evaluate(", ""))
    assert "literal_eval" not in SOURCE


# --------------------------------------------------------------------------- examples
def test_examples_have_title_code_note():
    assert set(EXAMPLES) == {"T1", "T2", "T3", "T4", "T5", "T6", "T7"}
    for ex in EXAMPLES.values():  # titles and notes are catalogue texts, shown in the page's language
        assert isinstance(ex["title"], Message) and ex["code"]
        assert ex["note"] is None or isinstance(ex["note"], Message)
        assert str(ex["title"]) and ex["title"].text("zh")
    assert "3.85" in str(EXAMPLES["T1"]["note"]) and "3.35" in str(EXAMPLES["T1"]["note"])
    assert "permute" in str(EXAMPLES["T5"]["note"])


@pytest.mark.parametrize("example_id", list(EXAMPLES))
def test_step_notes_are_catalogue_texts_in_both_languages(example_id):
    r = run_example(example_id)
    notes = [s["note"] for s in r["steps"] if s["note"] is not None]
    notes += [v for v in r["values"].values() if isinstance(v, Message)]
    for note in notes:
        assert isinstance(note, Message), note
        assert note.text("en") != note.text("zh")


@pytest.mark.parametrize("example_id", list(EXAMPLES))
def test_every_example_runs_and_steps_are_plain(example_id):
    r = run_example(example_id)
    assert r["id"] == example_id and r["title"] == EXAMPLES[example_id]["title"]
    assert r["steps"]
    for step in r["steps"]:
        assert set(step) >= {"code", "value", "error", "note", "shape", "dtype", "text"}
        assert step["value"] is not None or step["error"]
        assert isinstance(step["text"], str)


def test_unknown_example():
    with pytest.raises(ValueError, match="unknown example"):
        run_example("T9")


def test_t1_sum_and_true_mean():
    v = run_example("T1")["values"]
    expected = torch.tensor([[1.1, 2.2, 3.3], [4.4, 5.5, 6.6]])
    assert torch.allclose(v["sum"], expected)
    assert v["sum"].dtype == torch.float32
    assert v["mean"] == pytest.approx(3.85, abs=1e-5)
    assert v["mean"] != pytest.approx(3.35, abs=0.1)


def test_t2_dtypes_and_shared_memory():
    v = run_example("T2")["values"]
    assert v["list_dtype"] == "int64"
    assert v["float_list_dtype"] == "float32"
    assert v["numpy_dtype"] == "float64" and v["from_numpy_dtype"] == "float64"
    assert v["numpy_back_dtype"] == "float64"
    assert v["shared_after_change"] == [100.0, 2.0, 3.0]
    assert v["copy_after_change"] == [1.0, 2.0, 3.0]
    assert v["shares_memory"] is True and v["copy_shares_memory"] is False


def test_t3_shapes_and_ranges():
    v = run_example("T3")["values"]
    assert v["zeros"] == {"shape": (3, 2), "min": 0.0, "max": 0.0}
    assert v["ones"] == {"shape": (3, 2), "min": 1.0, "max": 1.0}
    assert v["rand"]["shape"] == (2, 2) and 0 <= v["rand"]["min"] <= v["rand"]["max"] < 1
    assert v["randn"]["shape"] == (2, 2)
    assert v["rand_100k"]["min"] >= 0 and v["rand_100k"]["max"] < 1
    assert abs(v["randn_100k"]["mean"]) < 0.02 and abs(v["randn_100k"]["std"] - 1) < 0.02
    assert v["randn_100k"]["min"] < -3 < 3 < v["randn_100k"]["max"]  # not confined to [0, 1)


def test_t4_view_fails_after_transpose_reshape_works():
    r = run_example("T4")
    v = r["values"]
    assert v["view_shape"] == (6, 4) and v["view_shares_memory"]
    assert v["y_shape"] == (2, 4, 3) and v["y_contiguous"] is False
    real = torch_error(lambda: torch.arange(24).reshape(2, 3, 4).transpose(1, 2).view(6, 4))
    assert v["view_error"] == real
    assert "view size is not compatible" in v["view_error"] and "reshape" in v["view_error"]
    assert v["reshape_shape"] == (6, 4) and not v["reshape_shares_memory"]
    assert "stride" in str(v["explanation"]) and "步长" in v["explanation"].text("zh")
    assert next(s for s in r["steps"] if s["error"])["code"] == "y.view(6, 4)"


def test_t5_shapes_and_permute_error():
    v = run_example("T5")["values"]
    assert v["unsqueeze_shape"] == (1, 3, 4)
    assert v["squeeze_shape"] == (3, 4)
    assert v["transpose_shape"] == (4, 3)
    assert v["permute_3d_shape"] == (4, 3, 5)
    assert v["permute_2d_error"] == torch_error(lambda: torch.zeros(3, 4).permute(1, 0, 2))
    assert "number of dimensions" in v["permute_2d_error"]


def test_t7_two_devices_and_the_fix():
    r = run_example("T7")
    v = r["values"]
    other = "cuda" if torch.cuda.is_available() else "meta"
    assert v["device"] == other
    x, w = torch.ones(2, 3), torch.ones(2, 3, device=other)
    assert v["add_error"] == torch_error(lambda: x + w)  # PyTorch's own refusal, whatever the device
    model = torch.nn.Linear(3, 2).to(other)
    assert v["model_error"] == torch_error(lambda: model(x))
    assert v["fixed_device"] == str((x.to(other) + w).device) and v["fixed_shape"] == (2, 3)
    assert v["model_out_shape"] == (2, 2) and v["model_out_device"].startswith(other)
    if other == "cuda":
        assert "Expected all tensors to be on the same device" in v["add_error"]
    else:  # the GPU's wording is quoted, as the tutorial prints it
        assert TUTORIAL_DEVICE_ERROR in str(v["note"]) and "meta" in str(v["note"])
    failing = [s["code"] for s in r["steps"] if s["error"]]
    assert failing == ["x + w", f"model = nn.Linear(3, 2).to({other!r}); model(x)"]


def test_t6_values_and_broadcasting():
    v = run_example("T6")["values"]
    x = torch.tensor([0.0, math.pi / 6, math.pi / 2, math.pi])
    assert torch.allclose(v["y"], x * 2 + torch.sin(x))
    assert v["y"][2].item() == pytest.approx(math.pi + 1, abs=1e-5)
    assert v["z_shape"] == (4, 3)
    assert torch.allclose(v["z"], x.reshape(4, 1) * 2 + torch.sin(torch.tensor([0.0, 1.0, 2.0])))
    assert v["broadcast"]["result"] == (4, 3)


# --------------------------------------------------------------------------- make_tensor
def test_make_tensor_from_typed_list():
    t, code = make_tensor("tensor", values_text="[[1, 2], [3, 4]]")
    assert t.dtype == torch.int64 and t.tolist() == [[1, 2], [3, 4]]
    assert code == "t = torch.tensor([[1, 2], [3, 4]])"
    t, code = make_tensor("tensor", values_text="[1, 2.5, pi]", dtype="float64")
    assert t.dtype == torch.float64 and t[2].item() == pytest.approx(math.pi)
    assert "dtype=torch.float64" in code and "pi" not in code


def test_make_tensor_code_reproduces_values():
    # The generated code is plain PyTorch: run it in a scratch namespace to compare.
    for kind, kwargs in [
        ("tensor", dict(values_text="[[1, -2.5], [3, 4]]")),
        ("zeros", dict(shape=(3, 2))),
        ("ones", dict(shape="2, 3", dtype="int32")),
        ("rand", dict(shape=(2, 2), seed=7)),
        ("randn", dict(shape=(3,), seed=11, dtype="float64")),
        ("arange", dict(start=1, end=7, step=2)),
        ("linspace", dict(start=0, end=1, steps=5)),
        ("eye", dict(n=3, m=2)),
    ]:
        t, code = make_tensor(kind, **kwargs)
        scope: dict = {"torch": torch}
        exec(code, scope)
        assert torch.equal(scope["t"], t), (kind, code)


def test_make_tensor_rand_is_seeded_and_in_range():
    a, code = make_tensor("rand", (100,), seed=3)
    b, _ = make_tensor("rand", (100,), seed=3)
    assert torch.equal(a, b) and code.startswith("torch.manual_seed(3)\n")
    assert a.min() >= 0 and a.max() < 1
    c, _ = make_tensor("randn", "4, 5", seed=3)
    assert c.shape == (4, 5) and c.dtype == torch.float32


def test_make_tensor_from_numpy_keeps_float64():
    t, code = make_tensor("from_numpy", values_text="[[1.5, 2], [3, 4]]")
    assert t.dtype == torch.float64
    assert "np.array" in code and "torch.from_numpy(n)" in code
    t, _ = make_tensor("from_numpy", values_text="[1, 2]", dtype="float32")
    assert t.dtype == torch.float32


def test_make_tensor_other_kinds():
    assert make_tensor("zeros", (3, 2))[0].shape == (3, 2)
    assert make_tensor("ones", "2")[0].tolist() == [1.0, 1.0]
    t, code = make_tensor("arange", start=5)
    assert t.tolist() == [0, 1, 2, 3, 4] and t.dtype == torch.int64
    assert code == "t = torch.arange(5)"
    assert make_tensor("arange", start=0, end=1, step=0.25)[0].tolist() == [0, 0.25, 0.5, 0.75]
    assert make_tensor("linspace", start=-1, end=1, steps=3)[0].tolist() == [-1, 0, 1]
    assert torch.equal(make_tensor("eye", (3,))[0], torch.eye(3))
    t, _ = make_tensor("ones", (2,), requires_grad=True)
    assert t.requires_grad


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="zeros", shape=(1001, 1000)), "1,001,000 elements; the limit is 1,000,000"),
        (dict(kind="ones", shape="1000, 1000, 2"), "limit is 1,000,000"),
        (dict(kind="zeros", shape=(-1, 2)), "at least 0"),
        (dict(kind="zeros", shape=(2.5,)), "whole number"),
        (dict(kind="zeros", shape=(1,) * 9), "at most 8 dimensions"),
        (dict(kind="zeros", shape="abc"), "could not read the shape"),
        (dict(kind="tensor", values_text="[[1, 2], [3]]"), "expected sequence of length 2"),
        (dict(kind="tensor", values_text=""), "type the values"),
        (dict(kind="tensor", values_text="__import__('os')"), "not allowed"),
        (dict(kind="tensor", values_text="open('/etc/passwd')"), "not allowed"),
        (dict(kind="tensor", values_text="zeros(3)"), "nested) list of numbers"),
        (dict(kind="tensor", values_text="[1, 2] * 600000"), "too large"),
        (dict(kind="rand", shape=(2,), dtype="int64"), "floating-point dtype"),
        (dict(kind="zeros", shape=(2,), dtype="float128"), "unknown dtype"),
        (dict(kind="arange", start=0, end=1e9), "limit is 1,000,000"),
        (dict(kind="arange", start=0, end=5, step=0), "step must not be zero"),
        (dict(kind="arange", start=0, end=math.inf), "finite"),
        (dict(kind="linspace", start=0, end=1, steps=2_000_000), "at most 1,000,000"),
        (dict(kind="eye", n=2000), "limit is 1,000,000"),
        (dict(kind="eye"), "needs the number of rows"),
        (dict(kind="ones", shape=(2,), dtype="int64", requires_grad=True), "floating-point"),
        (dict(kind="magic"), "unknown kind"),
    ],
)
def test_make_tensor_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_tensor(**kwargs)


def test_parse_helpers():
    assert parse_shape("3, 2") == (3, 2)
    assert parse_shape("(4,)") == (4,)
    assert parse_shape(5) == (5,)
    assert parse_shape("") == ()
    assert parse_shape(torch.Size([2, 3])) == (2, 3)
    assert parse_values("[[1, 2], [3, 4.5]]") == [[1, 2], [3, 4.5]]
    assert parse_values("(1, 2)") == [1, 2]
    with pytest.raises(ValueError):
        parse_shape(True)
    with pytest.raises(ValueError):
        parse_values(123)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- describe / frame
def test_describe():
    x = torch.arange(24.0).reshape(2, 3, 4).transpose(1, 2)
    d = describe(x)
    assert d["shape"] == (2, 4, 3) and d["stride"] == (12, 1, 4)
    assert d["dtype"] == "float32" and d["device"] == "cpu"
    assert d["is_contiguous"] is False and d["numel"] == 24
    assert d["bytes"] == 96 and d["element_size"] == 4
    assert d["requires_grad"] is False and d["grad_fn"] is None
    y = torch.ones(3, dtype=torch.float64, requires_grad=True) * 2
    d = describe(y)
    assert d["bytes"] == 24 and d["requires_grad"] and d["grad_fn"] == "MulBackward0"
    with pytest.raises(ValueError):
        describe([1, 2])  # type: ignore[arg-type]


def test_to_frame_shapes():
    f0 = to_frame(torch.tensor(3.5))
    assert f0.shape == (1, 1) and f0.iloc[0, 0] == 3.5
    f1 = to_frame(torch.arange(4))
    assert f1.shape == (1, 4) and list(f1.iloc[0]) == [0, 1, 2, 3]
    f2 = to_frame(torch.arange(6).reshape(2, 3))
    assert f2.shape == (2, 3) and f2.iloc[1, 2] == 5
    x = torch.arange(24).reshape(2, 3, 4)
    f3 = to_frame(x, (1,))
    assert f3.shape == (3, 4) and f3.iloc[0, 0] == 12
    assert to_frame(x, 1).equals(f3)
    assert to_frame(x).iloc[0, 0] == 0
    f4 = to_frame(torch.arange(120).reshape(2, 3, 4, 5), (1, 2))
    assert f4.shape == (4, 5) and f4.iloc[0, 0] == 100
    assert isinstance(to_frame(torch.ones(2, dtype=torch.bfloat16)), pd.DataFrame)
    big = to_frame(torch.zeros(500, 500))
    assert big.shape == (200, 100)


def test_to_frame_errors():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="needs 1 slice indices"):
        to_frame(x, (0, 0))
    with pytest.raises(ValueError, match="out of range"):
        to_frame(x, (2,))


# --------------------------------------------------------------------------- broadcasting
def test_broadcast_good():
    r = broadcast_explain((4, 1), (3,))
    assert r["ok"] and r["result"] == (4, 3) and r["error"] is None
    assert r["aligned_a"] == (4, 1) and r["aligned_b"] == (1, 3)
    assert r["padded_b"] == 1 and r["padded_a"] == 0
    assert r["expand_a"] == [1] and r["expand_b"] == [0]
    assert [row["result"] for row in r["rows"]] == [4, 3]

    r = broadcast_explain("8, 1, 6, 1", "7, 1, 5")
    assert r["result"] == (8, 7, 6, 5) == tuple(torch.broadcast_shapes((8, 1, 6, 1), (7, 1, 5)))
    assert r["aligned_b"] == (1, 7, 1, 5)

    r = broadcast_explain((), (2, 3))
    assert r["result"] == (2, 3) and r["aligned_a"] == (1, 1)
    r = broadcast_explain((0, 1), (1, 5))  # empty dimensions broadcast too
    assert r["result"] == (0, 5)
    r = broadcast_explain((10**8, 1), (1, 10**8))  # never allocated
    assert r["result"] == (10**8, 10**8)


def test_broadcast_bad_names_the_dimension():
    r = broadcast_explain((2, 3), (4,))
    assert not r["ok"] and r["result"] is None
    assert r["conflicts"] == [1]
    assert r["error"] == torch_error(lambda: torch.zeros(2, 3) + torch.zeros(4))
    assert "non-singleton dimension 1" in r["error"]
    assert str(r["rows"][1]["rule"]).startswith("conflict") and r["rows"][1]["rule"].key == "tensors.rule.conflict"

    r = broadcast_explain((5, 2, 3), (4, 2, 1))
    assert r["conflicts"] == [0] and not r["ok"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=4), st.lists(st.integers(0, 4), max_size=4))
def test_broadcast_agrees_with_torch(a, b):
    r = broadcast_explain(a, b)
    try:
        truth = tuple(torch.broadcast_shapes(tuple(a), tuple(b)))
    except RuntimeError:
        truth = None
    assert r["result"] == truth
    assert r["ok"] == (truth is not None) == (not r["conflicts"])


def test_broadcast_bad_input():
    with pytest.raises(ValueError):
        broadcast_explain("2, x", (1,))
    with pytest.raises(ValueError):
        broadcast_explain((-2,), (1,))


# --------------------------------------------------------------------------- apply_op
def test_apply_op_elementwise():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y, code = apply_op(x, "add", other=2)
    assert y.tolist() == [[3, 4], [5, 6]] and code == "y = x + 2"
    y, code = apply_op(x, "mul", other="[10, 100]")
    assert y.tolist() == [[10, 200], [30, 400]] and code == "y = x * torch.tensor([10, 100])"
    y, code = apply_op(x, "sin")
    assert torch.allclose(y, torch.sin(x)) and code == "y = torch.sin(x)"
    y, _ = apply_op(x, "maximum", other=2.5)
    assert y.tolist() == [[2.5, 2.5], [3, 4]]
    y, _ = apply_op(x, "pow", other=2)
    assert y.tolist() == [[1, 4], [9, 16]]
    with pytest.raises(ValueError, match="must match the size"):
        apply_op(x, "add", other=torch.ones(3))


def test_apply_op_matmul():
    a = torch.arange(6.0).reshape(2, 3)
    y, code = apply_op(a, "matmul", other=torch.ones(3, 4))
    assert y.shape == (2, 4) and code.startswith("y = x @ ")
    msg = torch_error(lambda: a @ torch.ones(2, 3))
    with pytest.raises(ValueError, match=re.escape(msg)):
        apply_op(a, "matmul", other=torch.ones(2, 3))
    with pytest.raises(ValueError, match="limit"):
        apply_op(torch.ones(2000, 1), "matmul", other=torch.ones(1, 2000))


def test_apply_op_reductions():
    x = torch.arange(6.0).reshape(2, 3)
    y, code = apply_op(x, "sum", dim=1, keepdim=True)
    assert y.shape == (2, 1) and code == "y = x.sum(dim=1, keepdim=True)"
    y, code = apply_op(x, "mean")
    assert y.item() == 2.5 and code == "y = x.mean()"
    y, code = apply_op(x, "max", dim=0)
    assert y.tolist() == [3, 4, 5] and code == "y = x.max(dim=0).values"
    y, _ = apply_op(x, "std", dim=(0, 1))
    assert y.item() == pytest.approx(torch.std(x).item())
    with pytest.raises(ValueError, match="mean\\(\\): could not infer output dtype"):
        apply_op(torch.arange(3), "mean")
    with pytest.raises(ValueError, match="Dimension out of range"):
        apply_op(x, "sum", dim=5)
    # dims typed as text, as a page's text box gives them
    assert apply_op(x, "sum", dim="-1, -2")[1] == "y = x.sum(dim=(-1, -2))"
    assert apply_op(x, "sum", dim="1")[0].tolist() == [3.0, 12.0]
    assert apply_op(x, "sum", dim="")[1] == "y = x.sum()"
    with pytest.raises(ValueError, match="whole number"):
        apply_op(x, "sum", dim="1.5")


def test_apply_op_view_vs_reshape():
    x = torch.arange(24).reshape(2, 3, 4)
    y, code = apply_op(x, "view", shape=(6, 4))
    assert y.shape == (6, 4) and code == "y = x.view(6, 4)"
    t, code = apply_op(x, "transpose", dim0=1, dim1=2)
    assert code == "y = x.transpose(1, 2)" and not t.is_contiguous()
    real = torch_error(lambda: t.view(6, 4))
    with pytest.raises(ValueError) as info:
        apply_op(t, "view", shape=(6, 4))
    assert str(info.value) == real
    y, code = apply_op(t, "reshape", shape="(6, -1)")
    assert y.shape == (6, 4) and code == "y = x.reshape(6, -1)"
    assert torch.equal(y, t.contiguous().view(6, 4))
    with pytest.raises(ValueError, match="invalid for input of size 24"):
        apply_op(x, "reshape", shape=(5, 5))


def test_apply_op_shape_ops():
    x = torch.zeros(3, 4)
    assert apply_op(x, "unsqueeze", dim=0)[0].shape == (1, 3, 4)
    assert apply_op(torch.zeros(1, 3, 1), "squeeze")[0].shape == (3,)
    assert apply_op(torch.zeros(1, 3, 1), "squeeze", dim=0)[0].shape == (3, 1)
    assert apply_op(x, "transpose", dim0=0, dim1=1)[0].shape == (4, 3)
    y, code = apply_op(torch.zeros(3, 4, 5), "permute", dims=(1, 0, 2))
    assert y.shape == (4, 3, 5) and code == "y = x.permute(1, 0, 2)"
    real = torch_error(lambda: x.permute(1, 0, 2))
    with pytest.raises(ValueError, match=re.escape(real)):
        apply_op(x, "permute", dims="1, 0, 2")
    assert apply_op(torch.zeros(2, 3, 4), "flatten", start_dim=1)[0].shape == (2, 12)
    assert apply_op(x.t(), "contiguous")[0].is_contiguous()
    assert apply_op(x, "t")[0].shape == (4, 3)


def test_apply_op_refuses_bad_requests():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="unknown operation"):
        apply_op(x, "__class__")
    with pytest.raises(ValueError, match="does not take"):
        apply_op(x, "sin", other=1)
    with pytest.raises(ValueError, match="needs the other operand"):
        apply_op(x, "add")
    with pytest.raises(ValueError, match="needs a shape"):
        apply_op(x, "view")
    with pytest.raises(ValueError):
        apply_op(x, "add", other="__import__('os')")
    with pytest.raises(ValueError, match="exponent"):
        apply_op(x, "pow", other=1000)
    with pytest.raises(ValueError, match="expected a tensor"):
        apply_op([1, 2], "sin")  # type: ignore[arg-type]
    assert set(OPS) >= {"add", "mul", "sin", "exp", "matmul", "sum", "mean", "max", "min", "std",
                        "view", "reshape", "squeeze", "unsqueeze", "transpose", "permute"}
