"""Browser: clone → tweak → enqueue, a pinned baseline, compare at a step, a 2×2 sweep × 2 seeds queued from
the Train page and completed, its parallel coordinates, and a seed-group verdict; then in Chinese.

The runs are tiny (the tutorials' CNN on 256 digits, 1 epoch), the server's job cap 2: the whole
sweep ends within a minute or two on a shared 2-core machine.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from bench.browser import LabServer
from core.i18n import CATALOGUE
from core.runs.jobs import JobManager
from core.runs.store import FINISHED, SQLiteRunStore
from core.safe.share import encode_state
from core.settings import ROOT
from core.training.config import TrainConfig
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
TINY = TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0, augment=False,
                   batch_size=64, epochs=1, limit_train=256, limit_test=128)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium):
    srv = LabServer(tmp_path_factory.mktemp("comparehome"), env={"PYTORCH_LAB_JOB_CAP": "2"})
    yield srv
    srv.stop()


def wait_until(predicate, timeout: float = 300, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def choose(page, key: str, option: str) -> None:
    """Pick an option of the selectbox with widget key ``key``: typed, so a long (virtualized) list shows it."""
    page.locator(f".st-key-{key}").first.click()
    page.locator(f".st-key-{key} input").first.fill(option)
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def fill(page, key: str, text: str) -> None:
    box = page.locator(f".st-key-{key} input").first
    box.fill(text)
    box.press("Enter")
    wait_idle(page)


def test_clone_baseline_step_sweep_and_groups(lab, page):
    store = SQLiteRunStore(lab.home)
    jobs = JobManager(lab.home, cap=2)
    base = jobs.start(TINY, name="tiny base")
    assert jobs.wait(base, timeout=300) == "completed"

    # Clone → tweak → enqueue: the Train form opens with the run's config, the change stands out.
    page.goto(lab.url + "/runs?rn_view=open&s=" + encode_state({"runs": [base]}))
    wait_idle(page)
    page.locator(".st-key-rn_clone button").first.click()
    page.wait_for_url(re.compile(r"/train"))
    wait_idle(page)
    assert "Cloning tiny base." in main_text(page)
    fill(page, "tr_lr", "0.003")
    assert "lr 0.001 → 0.003" in main_text(page)
    assert page.locator(".st-key-tr_lr").first.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    shot(page, "compare-clone")
    page.get_by_role("button", name=EN["train.start"], exact=True).click()
    wait_until(lambda: len(store.runs()) == 2, 60, "the clone to be queued")
    child = next(r for r in store.runs() if r["id"] != base)
    assert child["parent"] == base and child["config"]["lr"] == 0.003 and child["config"]["limit_train"] == 256
    wait_until(lambda: store.run(child["id"])["status"] in FINISHED, 300, "the clone to finish")
    assert store.run(child["id"])["status"] == "completed"

    # One click from the watched clone: compared with its parent, pinned as the baseline.
    page.get_by_role("button", name=EN["runs.actions.vs_parent"]).click()
    page.wait_for_url(re.compile(r"/runs"))
    wait_idle(page)
    legend = page.locator('[data-testid="stPlotlyChart"]').first.inner_text()
    assert f"tiny base (completed) · {EN['runs.compare.baseline_tag']}" in legend
    page.locator(".st-key-rn_best_last").scroll_into_view_if_needed()  # the table draws on a canvas: its note
    assert EN["runs.compare.delta_note"].split("{metric}")[0] in main_text(page)

    # Compare at a step: the last step both runs reached.
    page.locator(".st-key-rn_at_on label").first.click()
    wait_idle(page)
    # The slider opens at the last step both runs reached.
    expect(page.locator(".st-key-rn_at_step")).to_contain_text("4")
    assert "At step 4" in main_text(page)
    no_errors(page)
    shot(page, "compare-baseline-step")

    # A 2×2 sweep × 2 seeds of the clone's tiny config, queued through the job cap. (The Train page's
    # sweep panel queues from the form, which holds no data limits: test_compare_page covers it; here
    # the same sweep comes from a terminal so that its eight runs stay tiny.)
    out = subprocess.run(
        [sys.executable, "-m", "core.sweep", "--home", str(lab.home), "--preset", "cnn", "--optimizer", "adam",
         "--scheduler", "none", "--weight-decay", "0", "--no-augment", "--epochs", "1", "--limit-train", "256",
         "--limit-test", "128", "--grid", "lr=0.001,0.003", "--grid", "batch_size=64,128", "--seeds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "8 run(s) queued" in out.stdout
    sweep_runs = [r for r in store.runs() if r["sweep"]]
    assert len(sweep_runs) == 8 and all(r["config"]["limit_train"] == 256 for r in sweep_runs)
    page.goto(f"{lab.url}/runs?rn_view=sweep")
    page.wait_for_url(re.compile(r"/runs"))
    wait_idle(page)
    wait_until(lambda: "8 of 8 runs ended" in main_text(page), 900, "the sweep to end")
    wait_idle(page)
    assert all(r["status"] == "completed" for r in store.runs() if r["sweep"])
    page.locator(".st-key-rn_sweep_parcoords .parcoords").first.wait_for()
    assert "Best setting:" in main_text(page)
    no_errors(page)
    shot(page, "compare-sweep")

    # The sweep as seed groups: bands and a verdict on the final test accuracy.
    page.get_by_role("button", name=EN["runs.sweep.as_groups"]).click()
    wait_idle(page)
    text = main_text(page)
    headlines = [EN[f"runs.verdict.{k}"].split("**")[1] for k in ("real", "noise", "constant", "identical")]
    assert any(h in text for h in headlines) and "Welch" in text
    assert page.locator(".st-key-rn_group_chart").count() == 1
    no_errors(page)
    shot(page, "compare-groups")


def test_views_in_chinese(lab, page):
    """The sweep and its groups in Chinese (after the test above, the store holds them)."""
    runs = SQLiteRunStore(lab.home).runs()
    if not any(r["sweep"] for r in runs):
        pytest.skip("needs the sweep of the test above")
    page.goto(lab.url + "/runs?rn_view=sweep&lang=简体中文")
    wait_idle(page)
    text = main_text(page)
    assert ZH["runs.sweep.best"].split("{setting}")[0].replace("**", "").strip() in text
    page.locator(".st-key-rn_sweep_parcoords .parcoords").first.wait_for()
    page.get_by_role("button", name=ZH["runs.sweep.as_groups"]).click()
    wait_idle(page)
    assert "Welch" in main_text(page) and ZH["runs.groups.summary"] in main_text(page)
    no_errors(page)
    shot(page, "compare-groups-zh")
