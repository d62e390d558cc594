"""Browser: a run's training internals and the training doctor on the Runs page; "try the fix" queues the
one-change run and opens the Train page on the pair; then in Chinese.

The diagnosed run is tiny (the tutorials' MLP on 256 digits, 2 epochs, SGD at lr 5: it diverges within
a few steps), trained in the test process into the server's lab home.
"""
from __future__ import annotations

import contextlib
import io
import re
import time
from types import SimpleNamespace

import pytest

from bench.browser import LabServer
from core.i18n import CATALOGUE
from core.runs.store import open_store
from core.runs.worker import execute
from core.safe.share import encode_state
from core.training.config import TrainConfig
from core.training.trainer import Trainer
from tests.e2e.conftest import shot, wait_idle
from tests.pages.conftest import shown

pytestmark = pytest.mark.e2e
EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
TINY = dict(preset="neural_network", limit_train=256, limit_test=64, val_size=64, augment=False, precision="fp32",
            ema=0.0, tta=False, internals_every=2, batch_size=32, epochs=2, optimizer="sgd", lr=5.0,
            scheduler="none", weight_decay=0.0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium):
    srv = LabServer(tmp_path_factory.mktemp("doctorhome"))
    yield srv
    srv.stop()


def trained(home, name: str, **changes) -> str:
    store = open_store(home=home, url="")
    config = TrainConfig(**{**TINY, **changes})
    run_id = store.create_run(config.to_dict(), name=name, status="running")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        execute(Trainer(config), store, run_id, SimpleNamespace(quiet=True))
    store.close()
    return run_id


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_doctor_diagnoses_and_the_fix_runs_next_to_it(lab, page):
    run_id = trained(lab.home, "too fast")
    healthy = trained(lab.home, "steady", optimizer="adam", lr=1e-3)
    page.goto(lab.url + "/runs?rn_view=open&s=" + encode_state({"runs": [run_id]}))
    wait_idle(page)
    text = main_text(page)
    assert EN["doctor.lr_too_high.title"] in text and "lr 5 → 0.5" in text
    shot(page, "doctor_runs_diagnoses")
    page.locator(".st-key-rn_dx_try_0 button").first.click()
    page.wait_for_url(re.compile(r"/train"))
    wait_idle(page)
    store = open_store(home=lab.home, url="")
    deadline = time.time() + 30
    children = []
    while time.time() < deadline and not children:
        children = [r for r in store.runs() if r.get("parent") == run_id]
        time.sleep(0.3)
    assert len(children) == 1 and children[0]["config"]["lr"] == 0.5
    store.close()
    assert f"{run_id},{children[0]['id']}" in page.url.replace("%2C", ",")
    shot(page, "doctor_train_pair")
    # A healthy run's internals: the per-layer chart and a layer's band; then the page in Chinese.
    page.goto(lab.url + "/runs?rn_view=open&s=" + encode_state({"runs": [healthy]}))
    wait_idle(page)
    page.get_by_text(EN["internals.title"]).click()
    wait_idle(page)
    assert shown(EN["internals.help.update_ratio"]) in main_text(page)
    assert page.locator(".st-key-rn_in_layers .js-plotly-plot").count() == 1
    assert page.locator(".st-key-rn_in_band .js-plotly-plot").count() == 1
    shot(page, "doctor_internals")
    page.goto(lab.url + "/runs?rn_view=open&lang=简体中文&s=" + encode_state({"runs": [run_id]}))
    wait_idle(page)
    assert ZH["doctor.lr_too_high.title"] in main_text(page)
    shot(page, "doctor_runs_zh")
