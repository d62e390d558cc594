"""Browser: type expressions on the Tensors and Autograd pages and see results and the graph."""
import pytest

from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]


def test_autograd_expression_draws_the_graph(server, page):
    page.goto(server.url + "/autograd?ag_view=graph")
    wait_idle(page)
    page.wait_for_selector('[data-testid="stGraphVizChart"] svg')
    box = page.get_by_role("textbox", name=EN["autograd.graph_expr"])
    box.fill("(x * w).sum() * exp(x).mean()")
    box.press("Enter")
    wait_idle(page)
    svg = page.locator('[data-testid="stGraphVizChart"] svg')
    page.wait_for_function("document.querySelector('[data-testid=stGraphVizChart] svg').textContent.includes('Exp')")
    text = svg.text_content()
    assert "Mul" in text and "Exp" in text and "Sum" in text
    no_errors(page)
    shot(page, "autograd-graph")
    # A hostile expression is refused with a message, and the page keeps working.
    box.fill("x.__class__.__bases__[0].__subclasses__()")
    box.press("Enter")
    wait_idle(page)
    error = page.locator('[data-testid="stAlertContentError"]')
    assert error.count() == 1 and "not allowed" in error.inner_text()


def test_autograd_a3_and_tensors_expression(server, page):
    page.goto(server.url + "/autograd")
    wait_idle(page)
    page.get_by_role("button", name="A3", exact=True).click()
    wait_idle(page)
    table = page.locator('[data-testid="stDataFrame"]')
    assert page.get_by_text("1.9984").count() >= 1 or "1.9984" in table.inner_text()
    page.wait_for_selector(".js-plotly-plot")
    shot(page, "autograd-a3")
    page.goto(server.url + "/tensors?ten_view=expr")
    wait_idle(page)
    box = page.get_by_role("textbox", name=EN["tensors.expr"])
    box.fill("x @ y")
    box.press("Enter")
    wait_idle(page)
    no_errors(page)
    assert "torch.matmul" in page.locator('[data-testid="stCode"]').first.inner_text() or \
        "x @ y" in page.locator('[data-testid="stCode"]').first.inner_text()
    shot(page, "tensors-expr")
    page.get_by_role("button", name=EN["tensors.ex.T4"]).click()
    wait_idle(page)
    assert page.get_by_text("view size is not compatible").count() >= 1
    shot(page, "tensors-t4")
