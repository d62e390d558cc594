"""Browser, issue 17 item 5: in a classroom (PYTORCH_LAB_LEARNER_JOBS set) the Train page asks for the
learner's name, keeps it in a cookie (the browser is known again without the URL's ?learner=), counts
the runs for that name, and shows a waiting run's place in the queue."""
from __future__ import annotations

import pytest

from bench.browser import LabServer
from core.i18n import CATALOGUE
from core.runs.store import SQLiteRunStore
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]


@pytest.fixture(scope="module")
def classroom(tmp_path_factory, chromium):
    home = tmp_path_factory.mktemp("classroom")
    with LabServer(home, {"PYTORCH_LAB_LEARNER_JOBS": "1", "PYTORCH_LAB_JOB_CAP": "1"}) as server:
        yield server


def test_the_name_is_kept_in_a_cookie_and_runs_are_counted_for_it(classroom, chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    store = SQLiteRunStore(classroom.home)
    try:
        page.goto(classroom.url + "/train")
        wait_idle(page)
        page.locator(".st-key-tr_start button").click()  # no name yet: refused, and said why
        wait_idle(page)
        assert "give your name above first" in page.locator('[data-testid="stAlertContentError"]').inner_text()
        field = page.locator(".st-key-tr_learner input")
        field.fill("Ada Lovelace")
        field.press("Enter")
        wait_idle(page)
        assert "are Ada Lovelace's" in page.locator('[data-testid="stMain"]').inner_text()
        assert any(c["name"] == "lab_learner" and "Ada" in c["value"] for c in context.cookies())
        # Two runs: the first trains, the second waits for it (one job per learner, one slot).
        page.locator(".st-key-tr_ex_R3 button").first.click()
        wait_idle(page)
        for _ in range(2):
            page.locator(".st-key-tr_start button").click()
            wait_idle(page)
        runs = store.runs()
        assert len(runs) == 2 and {r["learner"] for r in runs} == {"Ada Lovelace"}
        page.get_by_text("Waiting in the job queue: 1 of 1").wait_for()
        shot(page, "classroom-queue")
        no_errors(page)
        # A new tab of the same browser, without ?learner=: the cookie names the learner.
        other = context.new_page()
        other.goto(classroom.url + "/train")
        wait_idle(other)
        assert "are Ada Lovelace's" in other.locator('[data-testid="stMain"]').inner_text()
        assert other.locator(".st-key-tr_learner").count() == 0
        page.locator(".st-key-tr_stop button").click()  # the waiting run is taken off the queue
        for run in store.runs(status="running"):
            store.request_stop(run["id"])  # and the training one stops at its next heartbeat
        for _ in range(240):
            if not store.runs(status=("queued", "running")):
                break
            page.wait_for_timeout(250)
        assert not store.runs(status=("queued", "running"))
    finally:
        context.close()
        store.close()
