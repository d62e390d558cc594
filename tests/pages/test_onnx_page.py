"""AppTest tests for opening an ONNX model on the Export page (issue 21): the lab's own export and a
model made by another route are checked, drawn and tabulated, run on the digits, and offered on
Predict; hostile files get a clear message."""
from __future__ import annotations

import pytest
from onnx import helper

from core.i18n import CATALOGUE
from tests.core.ml.test_onnx_view import other_route_onnx, tiny
from tests.pages.conftest import shown

pytestmark = pytest.mark.slow


def _open(app, name: str, data: bytes):
    at = app("pages/export.py", ex_mode="open")
    at.file_uploader(key="ex_onnx_file").upload(name, data, "application/octet-stream").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_model_from_another_route_is_shown_run_and_offered_on_predict(app):
    data, _ = other_route_onnx(batch=1)
    at = _open(app, "tanh.onnx", data)
    assert not at.error and "onnx.checker" in shown(at.success[0].value)
    assert "25,450 parameters" in shown(at.success[0].value)  # 784*32 + 32 + 32*10 + 10
    nodes = next(d.value for d in at.dataframe if "op type" in d.value.columns)
    assert {"Flatten", "Gemm", "Tanh", "Mul"} <= set(nodes["op type"])
    assert nodes["parameters"].sum() == 25_450 and list(nodes.columns) == [
        "#", "name", "op type", "inputs", "outputs", "attributes", "parameters"]
    assert at.get("graphviz_chart")
    at.button(key="ex_onnx_run").click().run()
    assert not at.exception and not at.error
    assert at.metric[0].value.endswith("%")
    at.switch_page("pages/predict.py").run()
    assert CATALOGUE["en"]["predict.onnx"] in at.selectbox(key="pr_run").options and not at.exception


@pytest.mark.parametrize("name, data, words", [
    ("custom.onnx", tiny([helper.make_node("Evil", ["x"], ["y"], domain="com.example.native")],
                         opsets=(("", 17), ("com.example.native", 1))).SerializeToString(), "custom operators"),
    ("cut.onnx", other_route_onnx()[0][:5000], "ONNX"),
])
def test_hostile_onnx_files_get_a_clear_message(app, name, data, words):
    at = _open(app, name, data)
    assert at.error and words in shown(at.error[0].value)
    assert not at.get("graphviz_chart")


def test_predict_runs_the_onnx_file_on_an_uploaded_digit(app):
    from tests.e2e.test_hostile_e2e import digit_png

    data, _ = other_route_onnx(batch=1)
    at = _open(app, "tanh.onnx", data)
    at.switch_page("pages/predict.py").run()
    at.selectbox(key="pr_run").set_value("onnx").run()
    at.segmented_control(key="pr_input").set_value("upload").run()
    at.file_uploader(key="pr_upload").upload("digit.png", digit_png(), "image/png").run()
    assert not at.exception and not at.error
    assert at.metric and at.metric[0].value in [str(i) for i in range(10)]
    assert CATALOGUE["en"]["predict.onnx_note"] in [c.value for c in at.caption]  # no saliency for a file


def test_the_labs_own_onnx_export_opens_and_runs(app):
    import torch

    from core.ml.export import export_model
    from core.ml.modules import build_model
    from core.ml.zoo import preset_spec

    spec = preset_spec("cnn")
    torch.manual_seed(0)
    result = export_model(build_model(spec).eval(), spec.input_shape, "onnx", name="cnn")
    at = _open(app, result.filename, result.data)
    assert not at.error and "31,530 parameters" in shown(at.success[0].value)
    nodes = next(d.value for d in at.dataframe if "op type" in d.value.columns)
    assert list(nodes["op type"]) == ["Conv", "Relu", "MaxPool", "Reshape", "Gemm"]
    at.button(key="ex_onnx_run").click().run()
    assert not at.exception and not at.error and at.metric[0].value.endswith("%")
