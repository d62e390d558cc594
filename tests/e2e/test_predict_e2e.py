"""Browser: draw a stroke on the Predict page's canvas and get a prediction."""
import pytest

from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]


def test_draw_a_digit_and_get_a_prediction(server, page):
    page.goto(server.url + "/predict")
    wait_idle(page)
    canvas = page.locator("canvas").last  # the component renders in an open shadow root
    canvas.wait_for()
    box = canvas.bounding_box()
    x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 21):  # a "1": one vertical stroke
        page.mouse.move(x0 + i * 0.5, y0 + i * box["height"] * 0.03)
    page.mouse.up()
    page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
    wait_idle(page)
    assert page.locator('[data-testid="stMetricLabel"]').first.inner_text() == EN["predict.answer"]
    assert page.locator('[data-testid="stMetricValue"]').first.inner_text() in list("0123456789")
    no_errors(page)
    shot(page, "predict-drawn")
