"""Browser: start a run, watch it advance, leave and come back, stop, resume, compare on Runs."""
import re
import time

import pytest

from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]


def progress_text(page) -> str:
    return page.locator('[data-testid="stProgress"], .lab-live-text').first.inner_text()


def step_of(page) -> int:
    match = re.search(r"step (\d+) of", progress_text(page))
    return int(match.group(1)) if match else 0


def stop_the_run(page, timeout: float = 120) -> None:
    """Click Stop until the run reports "stopped".

    The Stop button lives in a fragment that redraws every second; a click that lands while
    the fragment is being replaced can be lost, so click again while the run is still going.
    """
    button = page.locator(".st-key-tr_stop button")
    deadline = time.time() + timeout
    last_click = 0.0
    while time.time() < deadline:
        text = progress_text(page)
        if "stopped" in text:
            return
        assert "completed" not in text, "the run completed before the stop took effect"
        if time.time() - last_click > 5 and button.count() and button.first.is_enabled():
            button.first.click()
            last_click = time.time()
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the stop")


def wait_until(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_start_watch_leave_stop_resume_compare(server, page):
    page.goto(server.url + "/train")
    wait_idle(page)
    page.locator('[data-testid="stRadio"]').get_by_text(EN["train.model.preset"], exact=True).click()
    wait_idle(page)
    epochs = page.get_by_label(EN["train.epochs"])
    epochs.fill("6")  # long enough to still be running after leaving and coming back
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=EN["train.start"], exact=True).click()
    page.wait_for_selector('[data-testid="stProgress"], .lab-live-text', timeout=60_000)
    assert "run=" in page.url
    wait_until(lambda: step_of(page) > 3, what="the run to advance")
    first = step_of(page)
    wait_until(lambda: step_of(page) > first, what="live progress")
    # The live view is the component that polls the shared feed: four plotly charts, redrawn as the
    # feed's version moves on.
    # (plotly.js draws several .main-svg layers per chart: count the charts that have any)
    page.wait_for_function("[...document.querySelectorAll('.lab-live-chart')]"
                           ".filter((c) => c.querySelector('.main-svg')).length == 4", timeout=30_000)
    version = page.locator(".lab-live").get_attribute("data-version")
    wait_until(lambda: page.locator(".lab-live").get_attribute("data-version") != version, what="a new view")
    shot(page, "train-live")
    run_url = page.url
    # Leave and come back: the run is still going.
    page.locator('[data-testid="stSidebarNav"]').get_by_text(EN["page.data"], exact=True).click()
    wait_idle(page)
    page.goto(run_url)
    page.wait_for_selector('[data-testid="stProgress"], .lab-live-text')
    wait_until(lambda: "running" in progress_text(page), what="the run still going")
    stop_the_run(page)
    stopped_at = step_of(page)
    page.get_by_role("button", name=EN["train.resume"], exact=True).click()
    wait_until(lambda: "completed" in progress_text(page), timeout=300, what="completion after resume")
    assert step_of(page) > stopped_at
    page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)  # the evaluation
    no_errors(page)
    shot(page, "train-done")
    # Compare on the Runs page
    run_id = re.search(r"run=([\w-]+)", run_url).group(1)
    page.goto(server.url + "/runs")
    wait_idle(page)
    assert page.get_by_text(run_id).count() >= 1 or run_id in page.locator('[data-testid="stDataFrame"]').inner_text()
    no_errors(page)
    shot(page, "runs")
