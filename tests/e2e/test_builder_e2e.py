"""Browser: build a CNN layer by layer, hit a shape error, fix it, see the summary."""
import pytest

from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]


def test_build_cnn_fix_shape_error_and_see_summary(server, page):
    page.goto(server.url + "/builder")
    wait_idle(page)
    page.get_by_role("button", name=EN["builder.empty"]).click()
    wait_idle(page)
    assert page.get_by_text(EN["builder.empty_stack"]).count() == 1
    # The add-type selectbox is the last one on the page while the stack is empty.
    for kind in ("Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"):
        boxes = page.locator('[data-testid="stSelectbox"]')
        boxes.nth(boxes.count() - 1).click()
        page.keyboard.type(kind)  # the option list is virtualized: filter it, then pick the first match
        page.keyboard.press("Enter")
        wait_idle(page)
        assert kind in boxes.nth(boxes.count() - 1).inner_text() or \
            boxes.nth(boxes.count() - 1).locator("input").input_value() == kind
        page.get_by_role("button", name=EN["builder.add"]).click()
        wait_idle(page)
    assert page.get_by_text("Model: 5 layers").count() == 1
    no_errors(page)
    # The Linear layer (selected after adding) gets a wrong in_features.
    field = page.get_by_label("in_features")
    field.fill("100")
    field.press("Enter")
    wait_idle(page)
    error = page.locator('[data-testid="stAlertContentError"]')
    assert error.count() == 1 and "set in_features=3136" in error.inner_text()
    shot(page, "builder-shape-error")
    field = page.get_by_label("in_features")
    field.fill("3136")
    field.press("Enter")
    wait_idle(page)
    page.set_viewport_size({"width": 1400, "height": 3000})
    shot(page, "builder-fixed")
    no_errors(page)
    page.wait_for_selector('[data-testid="stMetric"]')
    summary = page.locator('[data-testid="stMetric"]').first.inner_text()
    assert f"{16 * 9 + 16 + 3136 * 10 + 10:,}" in summary
    page.locator("[data-testid=stButtonGroup]").get_by_text(EN["builder.tab.graph"]).click()
    wait_idle(page)
    page.wait_for_selector('[data-testid="stGraphVizChart"] svg')
    shot(page, "builder-graph")


def test_loading_a_preset_refreshes_the_argument_widgets(server, page):
    page.goto(server.url + "/builder")
    wait_idle(page)
    assert page.get_by_label("out_channels").input_value() == "32"  # LabCNN's first conv
    page.locator(".st-key-bld_ex_M5 button").first.click()  # "M5 · CNN"
    wait_idle(page)
    assert page.get_by_label("out_channels").input_value() == "16"  # the tutorials' CNN
    no_errors(page)
