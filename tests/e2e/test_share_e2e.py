"""Browser: the sidebar's share link reopens the same view in a fresh browser; a tampered one says so."""
import pytest

from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]


def share_url(page, lang: str = "en") -> str:
    page.locator('[data-testid="stSidebar"]').get_by_text(CATALOGUE[lang]["share.button"]).click()
    code = page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"]')
    code.wait_for()
    url = code.inner_text().strip()
    page.keyboard.press("Escape")
    return url


def test_share_link_restores_model_language_seed_and_view(server, page, chromium):
    page.goto(server.url + "/builder?lang=简体中文&seed=7")
    wait_idle(page)
    page.get_by_role("button", name="M8", exact=True).click()  # graph view of NetWithResBlock
    wait_idle(page)
    url = share_url(page, "zh")
    assert "/builder?" in url and "s=1." in url and "bld_tab=graph" in url and len(url) < 2000
    shot(page, "share-popover")
    other = chromium.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    fresh.goto(url)
    wait_idle(fresh)
    assert fresh.locator("h1").first.inner_text() == CATALOGUE["zh"]["builder.title"]
    assert fresh.get_by_text("NetWithResBlock").count() >= 1
    assert fresh.locator('[data-testid="stNumberInput"] input').first.input_value() == "7"
    fresh.wait_for_selector('[data-testid="stGraphVizChart"] svg')
    no_errors(fresh)
    other.close()


def test_tampered_link_shows_a_notice_not_a_crash(server, page):
    page.goto(server.url + "/builder?s=1.AAAAtampered&bld_tab=nonsense&seed=-3")
    wait_idle(page)
    warning = page.locator('[data-testid="stSidebar"] [data-testid="stAlertContentWarning"]')
    assert warning.count() == 1 and "ignored" in warning.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("LabCNN").count() >= 1  # the default model
