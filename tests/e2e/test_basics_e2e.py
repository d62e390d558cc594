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


def test_tensors_share_link_keeps_the_operation(server, page, chromium):
    """The share link of the Operations view reopens the chosen operation and its parameters
    (permute came back as neg, the first operation)."""
    from tests.e2e.test_share_e2e import share_url

    page.goto(server.url + "/tensors?ten_view=ops")
    wait_idle(page)
    page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').first.click()
    page.keyboard.type("permute")
    page.keyboard.press("Enter")
    wait_idle(page)
    assert "y = x.permute(1, 0)" in page.locator('[data-testid="stMain"] [data-testid="stCode"]').first.inner_text()
    url = share_url(page)
    assert "ten_op=permute" in url
    other = chromium.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    fresh.goto(url)
    wait_idle(fresh)
    select = fresh.locator('[data-testid="stMain"] [data-testid="stSelectbox"] input').first
    assert select.input_value() == "permute"
    assert "y = x.permute(1, 0)" in fresh.locator('[data-testid="stMain"] [data-testid="stCode"]').first.inner_text()
    no_errors(fresh)
    other.close()


# Visible text of the main area and the sidebar without code (code blocks, inline code, the code of
# an error): what a reader of the Chinese lab reads as prose.
_PROSE_JS = """() => {
  const parts = [];
  for (const sel of ['[data-testid="stMain"]', '[data-testid="stSidebar"]']) {
    const root = document.querySelector(sel);
    if (!root) continue;
    const copy = root.cloneNode(true);
    copy.querySelectorAll('pre, code, [data-testid="stCode"], .js-plotly-plot, svg').forEach(e => e.remove());
    document.body.appendChild(copy);
    parts.push(copy.innerText);
    copy.remove();
  }
  return parts.join('\\n');
}"""


def english_on_page(page) -> list[str]:
    from tests.textcheck import english_sentences

    return [s for line in page.evaluate(_PROSE_JS).splitlines() for s in english_sentences(line)]


ZH_EXAMPLES = {  # page url -> the example buttons (or segmented-control options) a learner clicks, in Chinese
    "": [],
    "tensors": [ZH[f"tensors.ex.T{i}"] for i in range(1, 8)],
    "autograd": [ZH[f"autograd.ex.A{i}"] for i in range(1, 8)],
    "data": [ZH[f"data.example.D{i}"] for i in range(1, 5)],
    "profiler": [ZH["profiler.p1"]],
    "export": [ZH[f"export.ex.E{i}"] for i in range(1, 4)],
    "predict": [],
}


def test_chinese_pages_and_examples_have_no_english_prose(server, page):
    """Every page of this part of the lab, and every example on it, in Chinese: no English sentence
    outside code in what the browser shows (tests/pages/test_text_quality.py checks the same texts
    element by element without a browser)."""
    found = {}
    for url, buttons in ZH_EXAMPLES.items():
        page.goto(f"{server.url}/{url}?lang=简体中文")
        wait_idle(page, 180_000)
        found[url or "home"] = english_on_page(page)
        for label in buttons:
            name = label.replace("`", "")  # code spans show without their backticks
            page.locator('[data-testid="stMain"]').get_by_text(name, exact=True).first.click()
            wait_idle(page, 180_000)
            assert page.locator('[data-testid="stException"]').count() == 0, label  # T4/T5/T7 show torch's refusal
            found[f"{url} {label}"] = english_on_page(page)
        shot(page, f"zh-{url or 'home'}")
    found = {k: v for k, v in found.items() if v}
    assert not found, found
