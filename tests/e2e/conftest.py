"""Fixtures for end-to-end tests: a real `streamlit run app.py` (bench.browser.LabServer) and headless Chromium.

Browser tests are marked ``e2e``. Without Chromium they are skipped, unless
``LAB_REQUIRE_BROWSER=1`` (set by .ci/run), where a missing browser fails the run.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.browser import CHROMIUM_ARGS, ROOT, LabServer, chromium_path

SHOTS = ROOT / "tests" / "e2e" / "screenshots"


@pytest.fixture(scope="session")
def chromium():
    path = chromium_path()
    if path is None:
        if os.environ.get("LAB_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (LAB_REQUIRE_BROWSER=1) but was not found")
        pytest.skip("Chromium not installed: apt-get install chromium (see README)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory, chromium):
    srv = LabServer(tmp_path_factory.mktemp("labhome"))
    yield srv
    srv.stop()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def wait_idle(pg, timeout: float = 60_000) -> None:
    """Wait until the app has rendered and no script run has been in progress for a moment."""
    pg.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout)
    deadline = time.time() + timeout / 1000
    quiet_since = None
    while time.time() < deadline:
        if pg.locator('[data-testid="stStatusWidget"]').count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 0.8:
            return
        pg.wait_for_timeout(100)
    raise AssertionError("the app was still running after the timeout")


def no_errors(pg) -> None:
    errors = pg.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.first.inner_text()


def shot(pg, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path
