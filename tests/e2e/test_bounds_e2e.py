"""Browser: what issue 22 found against the real server, each settling fast with a clear message
while a second user keeps getting answers (items 2, 5, 8, 9).

Every case runs against Streamlit's real websocket in headless Chromium; the unit and AppTest
suites (tests/core/**/test_*bounds*, test_eval_budget, test_jsontext, test_parse_threads,
tests/pages/test_bounds_pages.py) hold the details.
"""
from __future__ import annotations

import time

import pytest

from core.i18n import CATALOGUE
from core.runs.store import RunStore
from core.training.config import recipe
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
ERROR = '[data-testid="stAlertContentError"]'
EXCEPTION = '[data-testid="stException"]'
UPLOAD_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'
SETTLE_S = 10.0


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
    store = RunStore(server.home)
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
    store = RunStore(server.home)
    for name in (evil, "plain twin"):  # two runs: plotly draws a legend for more than one trace
        run_id = store.create_run(recipe("r1").to_dict(), name=name, tags=["xss"], status="completed", kind="job")
        store.log_metrics(run_id, [(step, 0, "test_acc", 0.5 + step / 100) for step in range(1, 40)])
    page.goto(server.url + "/runs?rn_view=compare&rn_filter=xss")
    wait_idle(page)
    for typed in ("CLICK", "plain twin"):
        page.get_by_role("combobox").last.click()
        page.keyboard.type(typed)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        wait_idle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.locator(".legendtext").first.wait_for(state="attached")
    assert any(t.startswith(evil) for t in chart.locator(".legendtext").all_text_contents())  # shown literally
    assert chart.locator('a[href*="evil.example"]').count() == 0  # and never a link
    assert chart.locator(".legendtext tspan[style*='bold']").count() == 0
    assert page.locator(EXCEPTION).count() == 0
    shot(page, "runs-html-name")
