"""AppTest tests for the Predict page (upload path; drawing is covered in the browser test)."""
import io

import numpy as np
import pytest
from PIL import Image

from core.i18n import CATALOGUE
from core.ml.data import load_bundled

EN = CATALOGUE["en"]


def png_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def predict(app):
    return app("pages/predict.py", pr_input="upload")


def upload(at, data: bytes, name="digit.png"):
    at.file_uploader(key="pr_upload").upload(name, data, "image/png").run()
    return at


def test_upload_gives_probabilities_and_maps(predict):
    digit = 255 - np.asarray(Image.fromarray(load_bundled().test_images[3].numpy()).resize((112, 112)))
    at = upload(predict, png_of(digit))
    assert not at.exception and not at.error
    assert at.metric[0].label == EN["predict.answer"] and at.metric[0].value in list("0123456789")
    assert EN["predict.untrained"] in at.warning[0].value  # no trained run in a fresh lab home


@pytest.mark.parametrize("data,message", [
    (b"not an image at all", "not a readable image"),
    (b"", "empty"),
])
def test_bad_uploads_are_refused(predict, data, message):
    at = upload(predict, data, "bad.png")
    assert not at.exception
    assert at.error and message in at.error[0].value
