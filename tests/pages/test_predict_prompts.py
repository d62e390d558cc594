"""AppTest: predict, then reveal, on every teaching page: a prediction before the result, the real result
next to it with the gap and the explanation, bad input refused, predictions kept for a named learner."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.i18n import CATALOGUE
from core.ml.zoo import preset_spec
from core.runs import progress
from core.runs.store import SQLiteRunStore
from tests.pages.conftest import shown

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
ROOT_DIGITS = "assets/mnist_digits_8k.npz"


def opened(at, key: str):
    """Open the page's prompt (the prompt is built only while its expander is open)."""
    assert f"{key}__in" not in [w.key for w in at.text_input] + [w.key for w in at.radio]  # closed: nothing built
    at.session_state[f"{key}__open"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def predict(at, key: str, value, widget: str = "text_input"):
    getattr(at, widget)(key=f"{key}__in").set_value(value)
    at.button(key=f"{key}__go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    return " ".join(shown(m.value) for m in at.markdown)


def verdict(at) -> str:
    found = [shown(s.value) for s in at.success] + [shown(w.value) for w in at.warning]
    if EN["pp.right"] in found:
        return "right"
    return "off" if EN["pp.off"] in found else "none"


def _again(at, key: str):
    at.button(key=f"{key}__again").click().run()
    assert verdict(at) == "none"
    return at


def test_tensors_broadcast(app):
    at = app("pages/tensors.py")
    assert EN["pp.expander"] in [e.label for e in at.expander]
    opened(at, "ten_pp")
    assert verdict(at) == "none" and "(3, 1)" in texts(at)  # asked, not yet revealed
    predict(at, "ten_pp", "3, 1")
    assert verdict(at) == "off"
    truth = tuple((torch.zeros(3, 1) + torch.zeros(1, 4)).shape)
    assert f"{truth}" in texts(at) and "dim 1: 1 → 4" in texts(at)  # the real shape and the gap
    _again(at, "ten_pp")
    predict(at, "ten_pp", ", ".join(map(str, truth)))
    assert verdict(at) == "right"
    _again(at, "ten_pp")
    predict(at, "ten_pp", "three by four")
    assert any("is not a shape" in shown(e.value) for e in at.error)


def test_autograd_gradient_sign(app):
    at = opened(app("pages/autograd.py"), "ag_pp")
    x = torch.tensor(1.0, requires_grad=True)
    (x**3 - 6 * x).backward()
    predict(at, "ag_pp", str(-x.grad.item()))  # the right size, the wrong sign
    assert verdict(at) == "off" and f"+{2 * x.grad.item():g}".replace("+-", "-") in texts(at)
    _again(at, "ag_pp")
    predict(at, "ag_pp", str(x.grad.item()))
    assert verdict(at) == "right"


def test_builder_parameter_count_follows_the_current_model(app):
    at = app("pages/builder.py")
    at.session_state["current_spec"] = preset_spec("neural_net")
    opened(at, "bld_pp")
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 1))
    before = sum(p.numel() for p in model.parameters())
    question = texts(at)
    assert "NeuralNet" in question and f"{before:,}" in question
    after = before + sum(p.numel() for p in nn.Linear(1, 10).parameters())
    predict(at, "bld_pp", str(before + 10))
    assert verdict(at) == "off"
    _again(at, "bld_pp")
    predict(at, "bld_pp", f"{after}")
    assert verdict(at) == "right"


def test_data_normalize_range(app):
    at = opened(app("pages/data.py"), "data_pp")
    predict(at, "data_pp", "-1, 1")
    assert verdict(at) == "off"
    with np.load(ROOT_DIGITS) as npz:
        pixels = torch.from_numpy(npz["images"]).float() / 255
    lo, hi = ((pixels.min() - 0.1307) / 0.3081).item(), ((pixels.max() - 0.1307) / 0.3081).item()
    _again(at, "data_pp")
    predict(at, "data_pp", f"{lo:.3f}, {hi:.3f}")
    assert verdict(at) == "right"
    _again(at, "data_pp")
    predict(at, "data_pp", "2.8")  # one number where two are asked
    assert any("2 number(s)" in shown(e.value) for e in at.error)


def test_train_lr_curve_with_the_real_curves(app):
    at = opened(app("pages/train.py"), "tr_pp")
    predict(at, "tr_pp", "fast", "radio")
    assert verdict(at) == "off"
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the three real curves are drawn
    torch.manual_seed(0)
    model, x = nn.Linear(1, 1), torch.tensor([[1.0], [2.0], [3.0]])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = ((model(x) - 2 * x) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        opt.step()
    assert losses[-1] > losses[0]  # lr = 1.0 really diverges here
    _again(at, "tr_pp")
    predict(at, "tr_pp", "diverges", "radio")
    assert verdict(at) == "right"


def test_predictions_are_kept_for_a_named_learner(app, tmp_path):
    anonymous = opened(app("pages/tensors.py"), "ten_pp")
    assert EN["pp.anonymous"] in [shown(c.value) for c in anonymous.caption]
    at = opened(app("pages/tensors.py", learner="Ann"), "ten_pp")
    predict(at, "ten_pp", "3, 1")
    assert at.query_params["learner"] in ("Ann", ["Ann"])
    rows = progress.attempts(SQLiteRunStore(tmp_path), "Ann").to_dict("records")
    assert [(r["lesson"], r["item"], r["kind"], r["answer"], r["correct"]) for r in rows] == [
        (progress.LAB, "tensors_broadcast", "prediction", "3, 1", False)]


@pytest.mark.parametrize("page", ["tensors", "autograd", "builder", "data", "train"])
def test_prompts_in_chinese(app, page):
    at = app(f"pages/{page}.py", lang="简体中文")
    assert ZH["pp.expander"] in [e.label for e in at.expander] and not at.exception
    if page in ("data", "train"):
        return  # AppTest replays their widgets' labels in English outside the script (not the page's doing)
    opened(at, {"tensors": "ten", "autograd": "ag", "builder": "bld"}[page] + "_pp")
    assert ZH["pp.title"] in " ".join(m.value for m in at.markdown) and ZH["pp.commit"] in [b.label for b in at.button]
