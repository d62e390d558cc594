"""Browser: what issue 22 found against the real server, each settling fast with a clear message
while a second user keeps getting answers (items 2, 3, 4, 5, 8, 9).

Every case runs against Streamlit's real websocket in headless Chromium; the unit and AppTest
suites (tests/core/**/test_*bounds*, test_eval_budget, test_jsontext, test_parse_threads,
tests/pages/test_bounds_pages.py) hold the details.
"""
from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from core.i18n import CATALOGUE
from core.runs.store import SQLiteRunStore
from core.safe.share import encode_state
from core.training.config import recipe
from tests.core.lessons.test_autograd_bounds import SLOW
from tests.core.ml.test_checkpoint_bounds import aliased
from tests.core.ml.test_compute_bounds import CONV_ATTACK, LSTM_ATTACK
from tests.core.runs.test_eval_budget import wide_checkpoint
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
ERROR = '[data-testid="stAlertContentError"]'
EXCEPTION = '[data-testid="stException"]'
UPLOAD_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'
SETTLE_S = 10.0
# 64 channels of 64 x 64 through a 3 x 3 convolution: 0.15 billion multiply-adds a sample, so the
# forward demo's batch of 400 (60 billion) is over the per-request cap and is refused.
WIDE_CONV = {"name": "M", "input_shape": [64, 64, 64], "layers": [
    {"type": "Conv2d", "args": {"in_channels": 64, "out_channels": 64, "kernel_size": 3, "padding": 1}}]}


@pytest.fixture
def other(chromium):
    """A second user: a separate browser context (its own Streamlit session)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def settle(pg, limit: float = SETTLE_S) -> float:
    """Wait until the page has rendered and stopped running; the seconds it took (must be under ``limit``)."""
    start = time.monotonic()
    wait_idle(pg, timeout=60_000)
    took = time.monotonic() - start
    assert took < limit, f"the page took {took:.1f} s to settle"
    return took


def still_answers(pg, text: str) -> None:
    """The second user's Tensors expression box answers while the first user's request runs."""
    box = pg.get_by_role("textbox", name=EN["tensors.expr"])
    box.fill(text)
    box.press("Enter")
    settle(pg)
    no_errors(pg)
    assert text in pg.locator('[data-testid="stCode"]').first.inner_text()


def test_rename_then_tags_keeps_the_runs_page_working(server, page):
    store = SQLiteRunStore(server.home)
    run_id = store.create_run(recipe("r1").to_dict(), name="first", status="completed", kind="job")
    page.goto(server.url + f"/runs?rn_view=manage&rn_filter={run_id}")
    wait_idle(page)
    page.get_by_role("combobox").last.click()
    page.keyboard.type("first")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    wait_idle(page)
    name = page.get_by_role("textbox", name=EN["runs.new_name"], exact=True)
    name.fill("renamed")
    name.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=EN["runs.rename"]).click()
    wait_idle(page)
    tags = page.get_by_role("textbox", name=EN["runs.new_tags"])
    tags.fill("a, b")
    tags.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=EN["runs.tag"]).click()
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    no_errors(page)
    assert store.get_run(run_id)["tags"] == ["a", "b"] and store.get_run(run_id)["name"] == "renamed"
    chips = page.locator('[data-testid="stMultiSelect"]').inner_text()
    assert "renamed" in chips and "first" not in chips  # the selection kept the run, under its new name
    # The run's status changes in the background (its label too): the page keeps the selection.
    store.update_run(run_id, status="stopped")
    tags.fill("c")
    tags.press("Enter")
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    assert EN["status.stopped"] in page.locator('[data-testid="stMultiSelect"]').inner_text()
    # And so does a language switch, which translates every label.
    page.get_by_text("简体中文").click()
    wait_idle(page)
    page.get_by_role("textbox", name=CATALOGUE["zh"]["runs.new_tags"]).fill("d")
    page.get_by_role("textbox", name=CATALOGUE["zh"]["runs.new_tags"]).press("Enter")
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    assert "renamed" in page.locator('[data-testid="stMultiSelect"]').inner_text()
    shot(page, "runs-rename-then-tags")


def test_a_run_name_with_html_is_text_in_the_compare_legend(server, page):
    evil = '<a href="https://evil.example/">CLICK</a><b>B</b>'
    store = SQLiteRunStore(server.home)
    ids = []
    for name in (evil, "plain twin"):  # two runs: plotly draws a legend for more than one trace
        ids.append(store.create_run(recipe("r1").to_dict(), name=name, status="completed", kind="job"))
        store.log_metrics(ids[-1], [(step, 0, "test_acc", 0.5 + step / 100) for step in range(1, 40)])
    page.goto(server.url + "/runs?rn_view=compare&s=" + encode_state({"runs": ids}))  # a share link selects them
    wait_idle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.locator(".legendtext").first.wait_for(state="attached")
    assert any(t.startswith(evil) for t in chart.locator(".legendtext").all_text_contents())  # shown literally
    assert chart.locator('a[href*="evil.example"]').count() == 0  # and never a link
    assert chart.locator(".legendtext tspan[style*='bold']").count() == 0
    assert page.locator(EXCEPTION).count() == 0
    shot(page, "runs-html-name")


def settle_together(page, other, answer: str, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds until ``page`` (just opened) and ``other`` (just asked for ``answer``) each settled,
    watched side by side: a page is settled when it has rendered and nothing ran for 0.8 s."""
    start = time.monotonic()
    done: dict[str, float] = {}
    quiet: dict[str, float] = {}
    ready = {
        "page": lambda: page.locator('[data-testid="stMain"] h1').count() > 0,
        "other": lambda: answer in " ".join(other.locator('[data-testid="stCode"]').all_inner_texts()),
    }
    pages = {"page": page, "other": other}
    while len(done) < 2 and time.monotonic() - start < timeout:
        for name, pg in pages.items():
            if name in done:
                continue
            if ready[name]() and pg.locator('[data-testid="stStatusWidget"]').count() == 0:
                since = quiet.setdefault(name, time.monotonic())
                if time.monotonic() - since > 0.8:
                    done[name] = since - start
            else:
                quiet.pop(name, None)
        page.wait_for_timeout(100)
    assert len(done) == 2, f"not settled after {timeout:.0f} s: {set(pages) - set(done)}"
    return done["page"], done["other"]


def baseline(page, url: str) -> float:
    """Seconds a harmless link takes to settle on this machine now (other tests and jobs share it)."""
    start = time.monotonic()
    page.goto(url, wait_until="commit")
    wait_idle(page)
    return time.monotonic() - start


def attacked(page, other, url: str, answer: str) -> float:
    """Open ``url`` in ``page`` while ``other`` asks for ``answer``: both must settle within
    ``SETTLE_S`` beyond what a harmless link takes now. Returns the attack page's seconds."""
    usual = baseline(page, url.split("?")[0])
    box = other.get_by_role("textbox", name=EN["tensors.expr"])
    page.goto(url, wait_until="commit")
    box.fill(answer)
    box.press("Enter")
    took, answered = settle_together(page, other, answer)
    assert took < SETTLE_S + usual, f"{url[:80]} took {took:.1f} s to settle (a harmless link: {usual:.1f} s)"
    assert answered < SETTLE_S + usual, f"the other user waited {answered:.1f} s"
    assert page.locator(EXCEPTION).count() == 0
    no_errors(other)
    return took


@pytest.mark.parametrize(("link", "needle"), [
    ("/tensors?ten_view=expr&ten_expr=" + quote("ones(4000, 1000).unbind(0)"), "Only the first"),
    ("/tensors?ten_view=expr&ten_expr=" + quote("rand(2000,2000,dtype=float64).tolist()"), "items is too long"),
    ("/tensors?ten_view=expr&ten_expr=" + quote("stack([ones(1)]*4000000)"), "items is too long"),
    ("/autograd?ag_view=gradient&ag_w=0,0&ag_g=" + quote(SLOW), "point by point took longer than"),
    ("/builder?s=" + encode_state({"model": LSTM_ATTACK}), "131,072 steps one after another"),
    ("/builder?s=" + encode_state({"model": CONV_ATTACK}), "billion multiply-adds through this model"),
    ("/builder?bld_tab=forward&bld_batch=400&s=" + encode_state({"model": WIDE_CONV}), "Use a batch of at most 66"),
], ids=["unbind", "tolist", "stack", "contour", "lstm", "conv-macs", "forward-macs"])
def test_attack_links_settle_fast_while_another_user_works(server, page, other, link, needle):
    other.goto(server.url + "/tensors?ten_view=expr")
    wait_idle(other)
    attacked(page, other, server.url + link, "x * 3 + 1")
    assert needle in page.locator("body").inner_text()  # the page, or the sidebar's share-link notice


def upload(page, name: str, data: bytes) -> None:
    page.get_by_text(EN["train.upload_title"]).click()
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": name, "mimeType": "application/octet-stream",
                                                       "buffer": data}])


def test_an_aliased_checkpoint_is_refused_with_what_happened(server, page):
    page.goto(server.url + "/train")
    wait_idle(page)
    upload(page, "aliased.pt", aliased(tensors=100, numel=25_000))
    settle(page)
    errors = "\n".join(page.locator(ERROR).all_inner_texts())
    assert "share bytes" in errors and "archive/data/" in errors
    shot(page, "aliased-checkpoint")


def test_evaluating_a_wide_uploaded_model_settles_fast(server, page, other):
    other.goto(server.url + "/tensors?ten_view=expr")
    wait_idle(other)
    page.goto(server.url + "/train")
    wait_idle(page)
    upload(page, "wide.pt", wide_checkpoint())
    wait_idle(page)
    assert "Wide" in page.locator('[data-testid="stAlertContentSuccess"]').inner_text()
    start = time.monotonic()
    page.get_by_text(EN["train.evaluate"], exact=True).click()
    still_answers(other, "x * 4 + 1")
    wait_idle(page)
    took = time.monotonic() - start
    assert took < SETTLE_S, f"the evaluation held the page {took:.1f} s"
    assert page.locator(EXCEPTION).count() == 0
    shown = page.locator('[data-testid="stMain"]').inner_text()
    # Within the budget it finishes; or it is refused before running (one sample's activations over
    # PYTORCH_LAB_BUDGET_MB with the weights' average and TTA), or stops at PYTORCH_LAB_BUDGET_S, and says
    # so; never 15.7 GB.
    assert (EN["train.test_acc"] in shown or "took longer than 5 s" in shown
            or "it was refused before running" in shown), shown[-500:]
    shot(page, "wide-evaluation")
