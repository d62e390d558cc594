"""AppTest: the page paths of issue 22's items 2, 3, 4, 5, 6 and 10 settle fast with a clear message."""
from __future__ import annotations

import time

import pytest
import torch

from core.i18n import CATALOGUE
from core.ml.checkpoint import BEST, save_checkpoint
from core.ml.modules import build_model
from core.runs.store import SQLiteRunStore
from core.safe.share import encode_state
from core.training.config import TrainConfig
from tests.core.ml.test_compute_bounds import CONV_ATTACK, LSTM_ATTACK
from tests.core.runs.test_eval_budget import WIDE
from tests.pages.conftest import shown

EN = CATALOGUE["en"]
pytestmark = pytest.mark.slow


def tensors_expr(app, text: str):
    start = time.monotonic()
    at = app("pages/tensors.py", ten_view="expr", ten_expr=text)
    return at, time.monotonic() - start


def test_a_huge_tuple_result_is_cut_before_it_is_written(app):
    at, took = tensors_expr(app, "ones(4000, 1000).unbind(0)")
    assert not at.exception and not at.error
    texts = [c.value for c in at.code if c.value.startswith("(tensor(")]
    assert texts and len(texts[0]) <= 64 * 1024 + 2 and texts[0].endswith(" …"), [c.value[:80] for c in at.code]
    assert any(EN["tensors.result_cut"].split("{")[0] in c.value for c in at.caption)
    assert took < 20  # AppTest's own start-up included; the page was 97 s before


@pytest.mark.parametrize(("text", "needle"), [
    ("rand(2000, 2000, dtype=float64).tolist()", "items is too long"),
    ("stack([ones(1)] * 4000000)", "items is too long"),
    ("rand(2000, 2000) @ rand(2000, 2000)", "multiply-adds"),
])
def test_big_results_and_operations_are_refused_on_the_page(app, text, needle):
    at, _ = tensors_expr(app, text)
    assert not at.exception
    assert any(needle in shown(e.value) for e in at.error), [e.value for e in at.error]


def test_evaluating_a_too_wide_run_is_refused_on_the_runs_page(app, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_BUDGET_MB", "16")
    store = SQLiteRunStore(tmp_path)
    config = TrainConfig(model_spec=WIDE, device="cpu")
    run_id = store.create_run(config.to_dict(), name="wide", status="completed", kind="job")
    save_checkpoint({"epoch": 1, "model_state_dict": build_model(WIDE).state_dict(), "optimizer_state_dict": {},
                     "loss": torch.tensor(0.1), "config": config.to_dict()}, store.run_dir(run_id, create=True) / BEST)
    at = app("pages/runs.py")
    at.multiselect(key="rn_sel").set_value([run_id]).run()
    at.button_group(key="rn_view").set_value("open").run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert any("one sample puts" in e and "PYTORCH_LAB_BUDGET_MB" in e for e in errors), errors


@pytest.mark.parametrize(("spec", "needle"), [
    (CONV_ATTACK, "billion multiply-adds through this model"),
    (LSTM_ATTACK, "131,072 steps one after another"),
    ({**LSTM_ATTACK, "layers": [{"type": "LSTM", "args": {"input_size": 8, "hidden_size": 8}}]}, None),
], ids=["conv-macs", "lstm", "lstm-one-layer"])
def test_builder_share_links_settle_with_the_model_or_why_not(app, spec, needle):
    from streamlit.testing.v1 import AppTest

    from tests.pages.conftest import APP

    app()  # the lab home and settings of the fixture
    start = time.monotonic()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["s"] = encode_state({"model": spec})
    at.switch_page("pages/builder.py")
    at.run()  # the link's first page view, where its notice is shown
    assert time.monotonic() - start < 30  # AppTest's own start-up included; the LSTM link was > 600 s
    assert not at.exception
    notices = " ".join(shown(w.value) for w in [*at.sidebar.warning, *at.warning, *at.error])
    if needle:
        assert needle in notices, notices
        assert at.session_state["current_spec"].input_shape != tuple(spec["input_shape"])
    else:
        assert at.session_state["current_spec"].input_shape == (4096, 8), notices
        assert any("LSTM(8, 8, batch_first=True" in c.value for c in at.code)


def test_step_mode_refuses_a_batch_over_the_memory_budget(app, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_BUDGET_MB", "1")  # the CNN's batch of 128 needs ~31 MB
    at = app("pages/train.py")
    at.radio(key="tr_source").set_value("preset").run()
    at.selectbox(key="tr_preset").set_value("cnn").run()
    at.button_group(key="tr_view").set_value("step").run()
    at.button(key="tr_step_one").click().run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert any("a training step on a batch of 128" in e and "PYTORCH_LAB_BUDGET_MB" in e for e in errors), errors
    assert at.session_state["tr_step_trainer"].global_step == 0


def test_start_clicks_past_the_queue_cap_are_refused_with_why(app, monkeypatch):
    from core.runs.jobs import JobManager

    monkeypatch.setattr(JobManager, "_launch", lambda self, run_id: None)  # the runs stay queued
    monkeypatch.setenv("PYTORCH_LAB_MAX_QUEUED", "2")
    at = app("pages/train.py")
    at.button(key="tr_ex_R1").click().run()
    for _ in range(2):
        at.button(key="tr_start").click().run()
        assert not at.error, [e.value for e in at.error]
    at.button(key="tr_start").click().run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert any("this session has 2 run(s) queued or running" in e and "PYTORCH_LAB_MAX_QUEUED" in e
               for e in errors), errors
    from pages.ui.state import lab_store

    assert len(lab_store().runs()) == 2
