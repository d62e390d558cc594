"""Browser: a learner takes the first lesson's first step in each language (a prediction, a wrong answer,
a hint, the right answer), and the progress is still there after the server restarts on the same lab home."""
from __future__ import annotations

import pytest
import torch
from playwright.sync_api import expect

from bench.browser import LabServer
from core.i18n import CATALOGUE
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
expect.set_options(timeout=60_000)  # a shared 2-core machine: a check runs PyTorch on the server
LESSON = "tensors_autograd"
PREDICT = f"les_pp_{LESSON}_dtype_of_ints"
ANSWER = f"les_in_{LESSON}_mean_ab"
LEARNERS = {"en": "Ada", "zh": "李雷"}


def right_answer() -> str:
    a = torch.tensor([[1.0, 2, 3], [4, 5, 6]])
    b = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    return f"{(a + b).mean().item():.4f}"


def open_lessons(context, url: str, lang: str):
    page = context.new_page()
    page.set_default_timeout(60_000)
    query = f"?learner={LEARNERS[lang]}" + ("&lang=简体中文" if lang == "zh" else "")
    page.goto(f"{url}/lessons{query}")
    wait_idle(page)
    expect(page.locator("h1").first).to_have_text(CATALOGUE[lang]["lessons.title"])
    return page


def type_answer(page, text: str) -> None:
    box = page.locator(f".st-key-{ANSWER} input")
    box.fill(text)
    box.press("Enter")
    wait_idle(page)
    page.locator(f".st-key-{ANSWER}_check button").click()
    wait_idle(page)


def first_step(page, lang: str) -> None:
    t = CATALOGUE[lang]
    main = page.locator('[data-testid="stMain"]')
    # A prediction: commit a guess, then PyTorch's answer shows next to it.
    page.locator(f".st-key-{PREDICT}__in").get_by_text("torch.int32", exact=True).click()
    wait_idle(page)
    page.locator(f".st-key-{PREDICT}__go button").click()
    wait_idle(page)
    expect(main).to_contain_text(t["pp.off"])
    expect(main).to_contain_text(t["pp.actual"])
    # A wrong answer: told, in the page's language, without a traceback.
    type_answer(page, "3.35")
    expect(page.locator('[data-testid="stAlertContentError"]').first).to_contain_text(
        t["err.lessons.wrong.too_low"])
    assert page.locator('[data-testid="stException"]').count() == 0
    # A hint, one at a time.
    page.locator(f".st-key-{ANSWER}_hint button").click()
    wait_idle(page)
    expect(main).to_contain_text(t["lessons.hint_n"].format(n=1))
    # The right answer, as PyTorch computes it.
    type_answer(page, right_answer())
    expect(page.locator('[data-testid="stAlertContentSuccess"]').last).to_contain_text(t["lessons.right"])
    expect(main).to_contain_text(t["lessons.progress"].format(done=1, total=11))
    no_errors(page)
    shot(page, f"lessons-{lang}")


def test_first_lesson_in_both_languages_survives_a_restart(chromium, tmp_path):
    home = tmp_path / "home"
    server = LabServer(home)
    try:
        context = chromium.new_context(viewport={"width": 1400, "height": 1200})
        for lang in ("en", "zh"):
            first_step(open_lessons(context, server.url, lang), lang)
        context.close()
    finally:
        server.stop()

    again = LabServer(home)  # a new server process on the same lab home
    try:
        context = chromium.new_context(viewport={"width": 1400, "height": 1200})
        for lang in ("en", "zh"):
            t = CATALOGUE[lang]
            page = open_lessons(context, again.url, lang)
            main = page.locator('[data-testid="stMain"]')
            expect(main).to_contain_text(t["lessons.progress"].format(done=1, total=11))
            expect(main).to_contain_text(t["lessons.solved_before"])
            expect(main).to_contain_text(t["lessons.hint_n"].format(n=1))  # the hint opened before is still open
            no_errors(page)
            shot(page, f"lessons-resumed-{lang}")
        context.close()
    finally:
        again.stop()
