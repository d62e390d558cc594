"""AppTest: the page paths of issue 22's items 2 and 5 settle fast with a clear message."""
from __future__ import annotations

import time

import pytest
import torch

from core.i18n import CATALOGUE
from core.ml.checkpoint import BEST, save_checkpoint
from core.ml.modules import build_model
from core.runs.store import SQLiteRunStore
from core.training.config import TrainConfig
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
