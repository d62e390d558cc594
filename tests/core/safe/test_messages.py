"""The evaluator's and the share links' refusals are coded errors: English as before, Chinese on a
Chinese page, with what the user typed (and torch's own text) shown as code."""
from __future__ import annotations

import pickle
import re

import pytest
import torch

from core import i18n
from core.errors import LabError
from core.safe.allowlist import ExprError
from core.safe.expr import evaluate
from core.safe.share import ShareError, decode_state

AREAS = ("expr", "share", "tensors", "autograd", "builder", "stepmode")  # the safe and lessons blocks
SPAN = re.compile(r"(`+)(.*?)\1")
# Three words of Latin letters in a row: an English sentence (identifiers stand alone or in pairs).
ENGLISH_RUN = re.compile(r"[A-Za-z][\w.()'-]*(?: +[A-Za-z][\w.()'-]*){2,}")


def outside_code(markdown: str) -> str:
    """The text a reader sees outside code spans."""
    return SPAN.sub(" ", markdown)


def refusal(text: str, variables: dict | None = None) -> ExprError:
    with pytest.raises(ExprError) as info:
        evaluate(text, variables or {"x": torch.zeros(2, 3)})
    return info.value


def test_a_refused_name_in_both_languages():
    err = refusal("open('/etc/passwd')")
    assert isinstance(err, LabError) and isinstance(err, ValueError)
    assert err.code == "expr.function"
    assert str(err) == "function 'open' is not allowed"  # the English wording is unchanged
    assert err.message("zh", markdown=True) == "不允许使用函数 `open`"
    assert err.message("zh") == "不允许使用函数 open"  # bare in a terminal


def test_dunder_names_are_code_so_markdown_cannot_eat_them():
    err = refusal("x.__class__")
    zh = err.message("zh", markdown=True)
    assert "`__class__`" in zh and not re.search(r"[A-Za-z]", outside_code(zh))
    assert "'`__class__`'" in err.message("en", markdown=True)


def test_torchs_own_message_is_one_code_span_inside_a_translated_sentence():
    err = refusal("x.view(5)")
    with pytest.raises(RuntimeError) as torch_refusal:
        torch.zeros(2, 3).view(5)
    real = str(torch_refusal.value)
    assert err.code == "expr.failed" and str(err) == real
    zh = err.message("zh", markdown=True)
    assert zh.startswith("计算出错：") and zh.endswith(f"`{real}`")


def test_what_a_value_is_is_translated_too():
    err = refusal("len(1)")
    assert str(err) == "len() needs a tensor, size, list or tuple, not an int"
    assert err.message("zh", markdown=True).endswith("而不是`int` 类型的值")
    err = refusal("x.shape.dtype")
    assert str(err) == "attribute 'dtype' is not allowed on a torch.Size"
    assert err.message("zh", markdown=True) == "torch.Size 对象上不允许使用属性 `dtype`"
    err = refusal("zeros(10**6, 10**6)")
    assert str(err) == "tensor of 1,000,000,000,000 elements is too large (max 4,000,000)"
    assert err.message("zh") == "张量有 1,000,000,000,000 个元素，太大了（上限 4,000,000）"


def test_operators_in_a_message_are_code_not_markdown():
    err = refusal("sum(x, **x)")
    assert str(err) == "**kwargs unpacking is not allowed"
    assert "`**kwargs`" in err.message("en", markdown=True)


def test_a_coded_refusal_survives_pickling_with_its_nested_parts():
    err = refusal("len(1)")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ExprError and again.code == err.code
    assert again.message("zh", markdown=True) == err.message("zh", markdown=True)


def test_a_share_link_from_another_version_in_chinese():
    with pytest.raises(ShareError) as info:
        decode_state("2.abc")
    err = info.value
    assert err.code == "share.version" and str(err) == "the link was made by another version of the lab ('2')"
    assert err.message("zh", markdown=True) == "该链接由另一个版本的实验室生成（`'2'`）"


def test_the_chinese_texts_of_these_areas_hold_no_english_sentences():
    """Identifiers (dtype, lo < hi, amax/amin) are fine; a run of English words is not."""
    zh = i18n.CATALOGUE["zh"]
    keys = [k for k in zh if k.startswith(("err.", "term.")) and k.split(".")[1] in AREAS]
    assert len(keys) > 150
    english = {k: m.group(0) for k in keys if (m := ENGLISH_RUN.search(re.sub(r"\{[^}]*\}", "", zh[k])))}
    assert not english, english
