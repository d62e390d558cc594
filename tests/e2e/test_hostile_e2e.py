"""Browser: hostile input and files against a real server, while another user keeps working,
and two browser contexts that never see each other's state.

The AppTest suites (tests/pages/test_hostile_inputs.py, test_hostile_files.py,
test_isolation.py) hold the full corpora; here a handful of them go through Chromium and
Streamlit's real websocket, upload endpoint and upload cap.
"""
from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from core.i18n import CATALOGUE
from core.safe.share import encode_state
from tests.e2e.conftest import no_errors, shot, wait_idle
from tests.pages.test_hostile_files import Payload, png_declaring

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
ERROR = '[data-testid="stAlertContentError"]'
UPLOAD_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'


@pytest.fixture
def other(chromium):
    """A second user: a separate browser context (its own cookies, its own Streamlit session)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def expression_box(pg):
    return pg.get_by_role("textbox", name=EN["tensors.expr"])


def error_text(pg) -> str:
    pg.wait_for_selector(ERROR, timeout=30_000)
    return "\n".join(pg.locator(ERROR).all_inner_texts())


def test_hostile_expressions_while_another_user_works(server, page, other, tmp_path):
    marker = tmp_path / "pwned"
    attacks = [
        ("().__class__.__bases__[0].__subclasses__()", "names starting with '_' are refused"),
        (f"__import__('os').system('touch {marker}')", "is not allowed"),
        ("'{0.__class__}'.format(x)", "is not allowed"),
        ("torch.load('/etc/passwd')", "name 'torch' is not allowed"),
        ("zeros(10**6, 10**6)", "too large"),
        ("2**10**10", "too large"),
        ("(" * 240 + "x" + ")" * 240, "nested too deeply"),
    ]
    page.goto(server.url + "/tensors?ten_view=expr")
    other.goto(server.url + "/tensors?ten_view=expr")
    wait_idle(page)
    wait_idle(other)
    for i, (text, needle) in enumerate(attacks):
        expression_box(page).fill(text)
        expression_box(page).press("Enter")  # the attack is sent; do not wait for it
        expression_box(other).fill(f"x * {i + 2} + 1")  # meanwhile the other user keeps working
        expression_box(other).press("Enter")
        wait_idle(other)
        no_errors(other)
        assert f"x * {i + 2} + 1" in other.locator('[data-testid="stCode"]').first.inner_text()
        wait_idle(page)
        assert needle in error_text(page), (text, error_text(page))
        assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "hostile-expression")
    assert not marker.exists()
    # The attacker's own session still works afterwards.
    expression_box(page).fill("x.sum()")
    expression_box(page).press("Enter")
    wait_idle(page)
    no_errors(page)


def test_hostile_uploads_are_refused(server, page, tmp_path):
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"epoch": 1, "model_state_dict": Payload(os.system, f"touch {marker}"), "optimizer_state_dict": {},
                "loss": 0.0}, evil, pickle_module=pickle)
    page.goto(server.url + "/train")
    wait_idle(page)
    page.get_by_text(EN["train.upload_title"]).click()
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "evil.pt", "mimeType": "application/octet-stream",
                                                       "buffer": evil.getvalue()}])
    wait_idle(page)
    assert "could run code" in error_text(page)
    assert not marker.exists()
    shot(page, "hostile-checkpoint")
    # Over the server's upload cap (25 MB): the browser refuses it, the page never sees it.
    page.goto(server.url + "/train")
    wait_idle(page)
    page.get_by_text(EN["train.upload_title"]).click()
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "big.pt", "mimeType": "application/octet-stream",
                                                       "buffer": b"\0" * (26 * 1024 * 1024)}])
    page.get_by_text("or smaller").first.wait_for(timeout=30_000)
    wait_idle(page)
    assert "25" in page.get_by_text("or smaller").first.inner_text()
    no_errors(page)  # no st.error: the file did not reach the page
    # An image declaring 100000 x 100000 pixels.
    page.goto(server.url + "/predict?pr_input=upload")
    wait_idle(page)
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "bomb.png", "mimeType": "image/png",
                                                       "buffer": png_declaring(100_000, 100_000)}])
    wait_idle(page)
    assert "too large to decode safely" in error_text(page)
    assert page.locator('[data-testid="stMetric"]').count() == 0
    shot(page, "hostile-image")


def digit_png() -> bytes:
    img = np.zeros((56, 56), np.uint8)
    img[10:46, 26:30] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_two_browser_contexts_never_see_each_others_state(server, page, other):
    secret = {"name": "SecretNet", "input_shape": [1, 28, 28],
              "layers": [{"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": 10}}]}
    # The current model: Alice opens a link carrying hers; Bob's Builder keeps the default.
    page.goto(server.url + "/builder?s=" + encode_state({"model": secret}))
    other.goto(server.url + "/builder")
    wait_idle(page)
    wait_idle(other)
    assert page.get_by_text("SecretNet").count() >= 1
    assert other.get_by_text("SecretNet").count() == 0
    # Uploads: Alice's image and prediction never show up for Bob.
    page.goto(server.url + "/predict?pr_input=upload")
    other.goto(server.url + "/predict?pr_input=upload")
    wait_idle(page)
    wait_idle(other)
    page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "alice-digit.png", "mimeType": "image/png",
                                                       "buffer": digit_png()}])
    page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
    wait_idle(page)
    other.reload()
    wait_idle(other)
    assert other.get_by_text("alice-digit.png").count() == 0
    assert other.locator('[data-testid="stMetric"]').count() == 0
    # Step mode: Alice's steps are hers.
    page.goto(server.url + "/train?tr_view=step")
    other.goto(server.url + "/train?tr_view=step")
    wait_idle(page)
    wait_idle(other)
    for _ in range(2):
        page.get_by_role("button", name=EN["train.step_one"]).click()
        wait_idle(page)
    assert page.get_by_text("Optimizer steps so far: 2").count() == 1
    other.reload()
    wait_idle(other)
    assert other.get_by_text("Optimizer steps so far: 0").count() == 1
    no_errors(page)
    no_errors(other)
