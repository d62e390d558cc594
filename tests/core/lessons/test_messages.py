"""The Tensors and Autograd engines' refusals are coded errors: English as before, Chinese on a
Chinese page; shapes, names and torch's own text are shown as code."""
from __future__ import annotations

import pytest
import torch

from core import i18n
from core.errors import LabError
from core.lessons.autograd import derivatives
from core.lessons.builder import parse_input_shape
from core.lessons.tensors import apply_op, make_tensor, parse_values
from tests.core.safe.test_messages import outside_code

ZH = i18n.CATALOGUE["zh"]


def refusal(fn) -> LabError:
    with pytest.raises(LabError) as info:
        fn()
    return info.value


def test_a_view_torch_refuses_keeps_torchs_text_inside_a_translated_sentence():
    t = torch.arange(24).reshape(2, 3, 4).transpose(1, 2)
    with pytest.raises(RuntimeError) as torch_refusal:
        t.view(6, 4)
    err = refusal(lambda: apply_op(t, "view", shape=(6, 4)))
    assert err.code == "tensors.torch" and str(err) == str(torch_refusal.value)
    assert err.message("zh", markdown=True) == f"原始报错：`{torch_refusal.value}`"


def test_a_shape_over_the_limit_names_the_shape_as_code():
    err = refusal(lambda: make_tensor("zeros", (1001, 1000)))
    assert str(err) == "a tensor of shape (1001, 1000) has 1,001,000 elements; the limit is 1,000,000"
    assert err.message("zh", markdown=True) == "形状为 `(1001, 1000)` 的张量有 1,001,000 个元素；上限是 1,000,000"


def test_a_refused_value_nests_the_evaluators_refusal_in_the_same_language():
    err = refusal(lambda: parse_values("__import__('os')"))
    assert str(err).startswith("could not read the values: name '__import__' is not allowed")
    zh = err.message("zh", markdown=True)
    assert zh.startswith("无法读取这些值：不允许使用名称 `__import__`")
    assert "name" not in outside_code(zh)


def test_a_function_that_is_not_elementwise_in_chinese():
    err = refusal(lambda: derivatives("x - x.mean()", 0.0, -1.0, 1.0))
    assert err.code == "autograd.not_elementwise"
    assert str(err).startswith("f must work elementwise: each output may depend only on its own x")
    assert err.message("zh") == ZH["err.autograd.not_elementwise"]


def test_a_parameter_name_is_code_and_a_phrase_is_translated():
    err = refusal(lambda: apply_op(torch.zeros(2), "sum", dim="1.5"))
    assert str(err) == "dim must be a whole number, not 1.5"
    assert err.message("zh", markdown=True) == "`dim`必须是整数，而不是 `1.5`"
    err = refusal(lambda: make_tensor("zeros", "3, 2.5"))
    assert str(err) == "every size in a shape must be a whole number, not 2.5"
    assert err.message("zh", markdown=True) == "形状中的每个尺寸必须是整数，而不是 `2.5`"


def test_the_builders_input_shape():
    assert parse_input_shape("1, 28x28") == (1, 28, 28)
    err = refusal(lambda: parse_input_shape("__import__('os')"))
    assert "is not an input shape" in str(err)
    assert err.message("zh", markdown=True).startswith("`__import__('os')` 不是有效的输入形状")
