"""Browser: export the current model, download the ONNX file and check it with onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest

from core.i18n import CATALOGUE
from core.ml.zoo import DEFAULT_PRESET, preset_spec
from tests.e2e.conftest import no_errors, shot, wait_idle

pytestmark = pytest.mark.e2e
DEFAULT_NAME = preset_spec(DEFAULT_PRESET).name  # the model the Export page opens with
EN = CATALOGUE["en"]


def test_download_onnx_and_run_it(server, page, tmp_path):
    page.goto(server.url + "/export")
    wait_idle(page)
    page.get_by_role("button", name=EN["export.run"]).click()
    button = page.get_by_role("button", name=EN["export.download"].format(file=f"{DEFAULT_NAME}.onnx"))
    button.wait_for(timeout=180_000)
    wait_idle(page)
    no_errors(page)
    shot(page, "export")
    with page.expect_download() as info:
        button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name == f"{DEFAULT_NAME}.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.random.rand(4, 1, 28, 28).astype(np.float32)})[0]
    assert out.shape == (4, 10) and np.isfinite(out).all()
