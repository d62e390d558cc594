"""Browser: the tutorial examples on the Train and Runs pages as a learner clicks them (R1 with its run-on,
a precision A/B pair, a two-process DDP run), in English and Chinese, with screenshots to look at."""
import re
import time
from urllib.parse import quote

import pytest

from core.i18n import CATALOGUE
from tests.core.lessons.test_regression import epochs_until_close, tutorial_r1
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
ZH_PARAM = quote("简体中文")


def progress_texts(page) -> list[str]:
    # one read: the live view redraws
    return page.locator('[data-testid="stProgress"], .lab-live-text').all_inner_texts()


def wait_until(predicate, timeout: float = 300, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def finished(page, n: int = 1) -> bool:
    texts = progress_texts(page)
    return len(texts) >= n and all("completed" in t or "已完成" in t for t in texts)


def example(page, ex: str) -> None:
    page.get_by_role("button", name=EN[f"train.ex_title.{ex}"], exact=True).click()
    wait_idle(page)


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def run_id_of(page) -> str:
    found = re.search(r"run=([\w%,-]+)", page.evaluate("() => location.href"))
    return found.group(1).replace("%2C", ",") if found else ""


def start_and_wait(page, button: str, runs: int = 1, timeout: float = 600) -> list[str]:
    """Click Start (or A/B), wait until the page watches the new run(s) and they have completed."""
    before = run_id_of(page)
    for attempt in range(2):  # a click that lands while the form is being redrawn can be lost: click again
        page.get_by_role("button", name=button, exact=True).click()
        try:
            wait_until(lambda: run_id_of(page) not in ("", before), timeout=45, what="the new run in the URL")
            break
        except AssertionError:
            if attempt:
                tall_shot(page, "failed-start")
                raise
    ids = run_id_of(page).split(",")
    assert len(ids) == runs
    wait_until(lambda: finished(page, runs) and len(progress_texts(page)) == runs, timeout=timeout,
               what=f"{ids} to complete")
    wait_idle(page)
    return ids


def metric(page, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(f"^{re.escape(label)}$")))
    return card.locator('[data-testid="stMetricValue"]').first.inner_text()


def tall_shot(page, name: str) -> None:
    """The whole page in one picture: the viewport as tall as Streamlit's scrolling main area."""
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": 1400, "height": min(max(1000, int(height) + 60), 9000)})
    page.wait_for_timeout(800)
    wait_idle(page)
    shot(page, name)
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_r1_ab_and_ddp_on_the_train_and_runs_pages(server, page):
    page.goto(server.url + "/train")
    wait_idle(page)
    # R1: the run ends where PyTorch's does, not at w = 2; the page says why and runs on until it is.
    example(page, "R1")
    (r1,) = start_and_wait(page, EN["train.start"])
    page.get_by_text(EN["train.evaluation"]).first.wait_for()
    wait_idle(page)
    model, _opt, _loss = tutorial_r1(0)
    assert metric(page, "w") == f"{model.weight.item():.4f}" and metric(page, "b") == f"{model.bias.item():.4f}"
    assert page.get_by_text("100 epochs are not enough", exact=False).count() == 1
    no_errors(page)
    tall_shot(page, "train-r1-en")
    page.get_by_role("button", name=re.compile(r"^Run on until")).click()
    wait_idle(page)
    epochs = epochs_until_close(0)
    assert page.get_by_text(f"{epochs:,} in all", exact=False).count() == 1
    tall_shot(page, "train-r1-run-on-en")
    # The run's link in a new session, in Chinese: that run's form (100 epochs of SGD), its w and b.
    fresh = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        fresh.goto(f"{server.url}/train?run={r1}&lang={ZH_PARAM}")
        wait_idle(fresh)
        fresh.get_by_text(ZH["train.evaluation"]).first.wait_for()
        wait_idle(fresh)
        assert fresh.get_by_label(ZH["train.epochs"], exact=True).input_value() == "100"
        assert metric(fresh, "w") == f"{model.weight.item():.4f}"
        no_errors(fresh)
        tall_shot(fresh, "train-r1-zh")
    finally:
        fresh.context.close()

    # R6: the precision A/B pair of R3's recipe (1 epoch here), when this machine has a fast reduced precision.
    from pages.ui.train_views import fastest_reduced

    ab = None
    if fastest_reduced() is not None:
        example(page, "R6")
        set_number(page, EN["train.epochs"], 1)
        ab = start_and_wait(page, EN["train.ab"], runs=2)
        no_errors(page)
        tall_shot(page, "train-ab-en")

    # R8: two processes through torchrun (1 epoch); the status line shows the world size.
    example(page, "R8")
    set_number(page, EN["train.epochs"], 1)
    (ddp,) = start_and_wait(page, EN["train.start"])
    assert "world size 2" in progress_texts(page)[0]
    no_errors(page)
    tall_shot(page, "train-ddp-en")

    # Runs: the three runs compared, in both languages.
    from core.safe.share import encode_state

    token = encode_state({"runs": [r1, ddp, *(ab or [])]})
    for lang, name in (("English", "en"), ("简体中文", "zh")):
        page.goto(f"{server.url}/runs?s={token}&lang={quote(lang)}")
        wait_idle(page)
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        wait_idle(page)
        no_errors(page)
        tall_shot(page, f"runs-{name}")
    page.goto(f"{server.url}/runs?s={encode_state({'runs': [r1]})}&rn_view=open&lang={ZH_PARAM}")
    wait_idle(page)
    page.get_by_text(ZH["train.mae"]).first.wait_for()
    no_errors(page)
    tall_shot(page, "runs-r1-open-zh")
