"""Browser: SIGKILL the Streamlit server while a run trains; a restarted server on the same lab
home still has the run, shows it on the Train and Runs pages, and the run completes."""
import os
import re
import signal
import time

import pytest

from bench.browser import LabServer
from core.i18n import CATALOGUE
from core.ml.checkpoint import load_checkpoint
from core.runs.executors.local import cmdline as _cmdline
from core.runs.store import SQLiteRunStore, pid_alive
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
EPOCHS = 2
SLOW = 180_000  # ms: a fresh server's first script run imports torch; the CI machine may be busy


def progress_text(page) -> str:
    return page.locator('[data-testid="stProgress"], .lab-live-text').first.inner_text()


def wait_until(predicate, timeout: float = 120, what: str = ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def home(tmp_path):
    yield tmp_path
    # End the run's worker if the test failed before it finished (it leads its own session).
    store = SQLiteRunStore(tmp_path)
    for run in store.runs():
        if run["pid"] and pid_alive(run["pid"]) and run["id"] in _cmdline(run["pid"]):
            os.killpg(run["pid"], signal.SIGKILL)
    store.close()


def test_run_survives_a_killed_server(home, page):
    page.set_default_timeout(SLOW)
    first = LabServer(home)
    try:
        page.goto(first.url + "/train")
        wait_idle(page, SLOW)
        page.locator('[data-testid="stRadio"]').get_by_text(EN["train.model.preset"], exact=True).click()
        wait_idle(page, SLOW)
        epochs = page.get_by_label(EN["train.epochs"])
        epochs.fill(str(EPOCHS))
        epochs.press("Enter")
        wait_idle(page, SLOW)
        page.get_by_role("button", name=EN["train.start"], exact=True).click()
        page.wait_for_selector('[data-testid="stProgress"], .lab-live-text')
        run_id = wait_until(lambda: (m := re.search(r"run=([\w-]+)", page.url)) and m.group(1), what="the run id")
        store = SQLiteRunStore(home)
        run = wait_until(lambda: (r := store.run(run_id))["status"] == "running" and r["step"] > 0 and r,
                         what="the worker to train")
        pid = run["pid"]
        assert run_id in _cmdline(pid)
        first.proc.send_signal(signal.SIGKILL)  # the `streamlit run` process, nothing else
        first.proc.wait(30)
    finally:
        first.stop()
    # The server is gone; its worker is not (it runs in its own session) unless it already finished.
    assert pid_alive(pid) or store.run(run_id)["status"] == "completed"
    assert store.run(run_id)["status"] in ("running", "completed")
    assert store.integrity_check() == "ok"

    second = LabServer(home)
    try:
        page.goto(f"{second.url}/train?run={run_id}")
        page.wait_for_selector('[data-testid="stProgress"], .lab-live-text')
        assert run_id in progress_text(page)
        assert any(s in progress_text(page) for s in (EN["status.running"], EN["status.completed"]))
        wait_until(lambda: EN["status.completed"] in progress_text(page), timeout=300, what="the run to complete")
        page.wait_for_selector('[data-testid="stMetric"]')  # the evaluation of the finished run
        no_errors(page)
        shot(page, "faults-train-after-restart")
        page.goto(second.url + "/runs")
        wait_idle(page, SLOW)
        # The grid is a canvas; its accessible table (one <tr> per run) holds the cell texts.
        row = page.locator('[data-testid="stDataFrame"] tbody tr',
                           has=page.locator(f'td[aria-colindex="1"]:text-is("{run_id}")'))
        row.first.wait_for(state="attached")
        headers = page.locator('[data-testid="stDataFrame"] thead th').all_text_contents()
        status_cell = row.locator(f'td[aria-colindex="{headers.index("status") + 1}"]')
        assert row.count() == 1 and status_cell.text_content() == "completed"
        no_errors(page)
    finally:
        second.stop()

    run = store.run(run_id)
    assert run["status"] == "completed" and run["error"] is None
    assert run["pid"] == pid  # the same worker finished it: no relaunch, no resume
    assert run["epoch"] == EPOCHS
    assert store.metrics(run_id, names=["test_acc"])["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert load_checkpoint(store.run_dir(run_id) / "last.pt")["epoch"] == EPOCHS
    assert "resuming run" not in (store.run_dir(run_id) / "worker.log").read_text()
    assert store.integrity_check() == "ok"
    store.close()
