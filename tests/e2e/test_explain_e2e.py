"""Browser: on the Explain page, pick a channel, step the convolution and read its dot product; the
attribution method goes into the share link; a trained run's features map is drawn."""
import pytest
from playwright.sync_api import expect

from core.i18n import CATALOGUE
from core.runs import cli
from core.runs.store import SQLiteRunStore
from tests.e2e.conftest import no_errors, shot, wait_idle
from tests.e2e.test_share_e2e import share_url

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
expect.set_options(timeout=30_000)


def choose_view(page, key: str) -> None:
    page.locator(".st-key-xp_view").get_by_text(EN[f"explain.view.{key}"], exact=True).click()
    wait_idle(page)


def test_step_a_convolution_and_share_the_attribution_method(server, page):
    page.goto(server.url + "/explain")
    wait_idle(page)
    expect(page.get_by_text("Prediction: ").first).to_be_visible()
    shot(page, "explain-layers")
    choose_view(page, "step")
    square = page.locator(".st-key-xp_chpick_0 .scatterlayer .point").nth(3)  # click channel 3's square
    square.wait_for()
    box = square.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_idle(page)
    expect(page.get_by_label(EN["explain.channel"].format(last=31))).to_have_value("3")
    for _ in range(2):
        page.get_by_role("button", name=EN["explain.next"]).click()
        wait_idle(page)
    expect(page.get_by_text("row 0, column 2 of 14×14, channel 3")).to_be_visible()
    dot = page.get_by_text("Σ input × kernel over 25 terms")
    expect(dot).to_be_visible()
    assert "the model's own forward pass computed" in dot.inner_text()
    no_errors(page)
    shot(page, "explain-step")
    choose_view(page, "attribution")
    page.locator(".st-key-xp_method [data-testid='stSelectbox']").click()
    page.keyboard.type("Integrated")
    page.keyboard.press("Enter")
    wait_idle(page)
    expect(page.get_by_text(EN["explain.method_help.integrated_gradients"])).to_be_visible()
    url = share_url(page)
    assert "/explain?" in url and "xp_method=integrated_gradients" in url and "xp_view=attribution" in url
    no_errors(page)
    shot(page, "explain-attribution")


def test_a_trained_runs_features_map(server, page, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    assert cli.main(["--preset", "cnn", "--epochs", "2", "--limit-train", "256", "--limit-test", "100",
                     "--home", str(server.home), "--quiet", "--name", "explain map"]) == 0
    store = SQLiteRunStore(server.home)
    run_id = next(r["id"] for r in store.runs() if r["name"] == "explain map")
    try:
        page.goto(server.url + f"/explain?xp_model={run_id}&xp_view=map")
        wait_idle(page)
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
        expect(page.get_by_text("one frame per recorded epoch (2 frames")).to_be_visible()
        no_errors(page)
        shot(page, "explain-map")
        choose_view(page, "compare")
        expect(page.get_by_text("Prediction: ")).to_have_count(2)
        no_errors(page)
        shot(page, "explain-compare")
    finally:
        store.delete_run(run_id)
