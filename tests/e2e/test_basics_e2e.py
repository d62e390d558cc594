"""Browser: type expressions on the Tensors and Autograd pages and see results and the graph."""
import pytest

from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]


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
    page.get_by_role("button", name=EN["autograd.ex.A3"], exact=True).click()
    wait_idle(page)
    table = page.locator('[data-testid="stDataFrame"]').inner_text()
    assert page.get_by_text("1.9984").count() >= 1 or "1.9984" in table
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


def test_home_path_opens_home_without_a_dialog(server, page):
    """/home (Home's own name, typed or shared) shows Home, not a "Page not found" dialog over it; its
    language comes along."""
    for url, title in (("/home", EN["home.title"]), ("/home?lang=简体中文", ZH["home.title"])):
        page.goto(server.url + url)
        wait_idle(page)
        assert page.locator("h1").first.inner_text() == title
        assert page.get_by_text("Page not found").count() == 0
        assert page.locator('[role="dialog"]').count() == 0
        no_errors(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("English").click()  # the switch still works here
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == EN["home.title"]
    page.locator('[data-testid="stSidebarNav"]').get_by_text(EN["page.data"], exact=True).click()
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == EN["data.title"]
