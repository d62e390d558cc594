"""End-to-end: the real server in headless Chromium. Screenshots go to tests/e2e/screenshots/."""
import os

import pytest
from playwright.sync_api import expect

from bench.browser import ROOT, LabServer
from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
PAGES = {"": "home", "lessons": "lessons", "tensors": "tensors", "autograd": "autograd", "builder": "builder",
         "data": "data", "train": "train", "runs": "runs", "profiler": "profiler", "export": "export",
         "predict": "predict", "explain": "explain"}


def sidebar_nav(page) -> str:
    return page.locator('[data-testid="stSidebarNav"]').inner_text()


def test_deep_link_on_fresh_server(chromium, tmp_path):
    """A shared deep link is the very first request of a new server process."""
    srv = LabServer(tmp_path)
    try:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(srv.url + "/data")
        wait_idle(page)
        assert page.locator("h1").first.inner_text() == EN["data.title"]
        nav = sidebar_nav(page)
        assert EN["section.basics"] in nav and EN["page.home"] in nav and EN["page.data"] in nav
        assert "app" not in nav.split() and "data.py" not in nav
        assert page.get_by_text("Page not found").count() == 0
        no_errors(page)
        context.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_renders_without_errors(server, page, lang):
    for url, key in PAGES.items():
        query = "?lang=简体中文" if lang == "zh" else ""
        page.goto(f"{server.url}/{url}{query}")
        wait_idle(page)
        assert page.locator("h1").first.inner_text() == (EN if lang == "en" else ZH)[f"{key}.title"]
        # The sidebar can still be redrawing when the main area is idle: wait for its language control.
        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(
            (EN if lang == "en" else ZH)["sidebar.language"], timeout=15_000)
        no_errors(page)
        path = shot(page, f"{key}-{lang}")
        assert path.stat().st_size > 10_000
        if url == "" and lang == "en" and os.environ.get("LAB_UPDATE_README_SCREENSHOT") == "1":
            page.set_viewport_size({"width": 1400, "height": 900})
            page.screenshot(path=str(ROOT / "assets" / "screenshot.png"))


def test_language_switch_survives_navigation_and_reload(server, page):
    page.goto(server.url + "/")
    wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("简体中文").click()
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == ZH["home.title"]
    page.locator('[data-testid="stSidebarNav"]').get_by_text(ZH["page.data"]).click()
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == ZH["data.title"]
    assert "lang=" in page.url
    page.reload()
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == ZH["data.title"]
    no_errors(page)


def test_home_card_links_to_data(server, page):
    page.goto(server.url + "/")
    wait_idle(page)
    page.get_by_text(EN["home.open"].format(page=EN["page.data"])).click()
    wait_idle(page)
    assert page.url.rstrip("/").endswith("/data")
    assert page.locator("h1").first.inner_text() == EN["data.title"]


def test_data_example_and_its_link_reopen_the_same_view(server, page, chromium):
    page.goto(server.url + "/data")
    wait_idle(page)
    page.get_by_text(EN["data.example.D3"]).click()
    wait_idle(page)
    assert "data_view=augment" in page.url and "data_aug=imagenet" in page.url
    assert page.get_by_text(EN["data.augment.after"], exact=True).count() == 1
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length == 2")
    shot(page, "data-d3")
    # The same URL in a fresh browser context shows the same view.
    other = chromium.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    fresh.goto(page.url)
    wait_idle(fresh)
    augmentation = fresh.locator(".st-key-data_aug [data-testid=stSelectbox] input")
    assert augmentation.input_value() == EN["data.augment.imagenet"]
    fresh.wait_for_function("document.querySelectorAll('.js-plotly-plot').length == 2")
    no_errors(fresh)
    other.close()


def test_unavailable_dataset_shows_a_message_not_a_crash(server, page):
    page.goto(server.url + "/data")
    wait_idle(page)
    page.locator('.st-key-data_ds [data-testid="stSelectbox"]').click()
    page.get_by_role("option", name=EN["data.ds.mnist"], exact=True).click()
    wait_idle(page)
    error = page.locator('[data-testid="stAlertContentError"]')
    assert error.count() == 1 and "MNIST" in error.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length == 1")  # bundled digits
    shot(page, "data-unavailable")


