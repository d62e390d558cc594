"""AppTest tests for the Profiler and Export pages."""
import json

import onnxruntime as ort
import numpy as np
import pytest

from core.i18n import CATALOGUE

EN = CATALOGUE["en"]


@pytest.fixture
def profiler(app):
    return app("pages/profiler.py")


@pytest.fixture
def exporter(app):
    at = app("pages/builder.py")
    at.button(key="bld_ex_M5").click().run()  # the tutorials' CNN is the current model
    at.switch_page("pages/export.py").run()
    return at


def test_p1_and_inference_profile(profiler):
    at = profiler
    at.button(key="pf_p1").click().run()
    assert "model_inference" in at.code[0].value and len(at.dataframe[0].value) == 10
    at.button(key="pf_run").click().run()
    assert not at.exception and not at.error
    result = at.session_state["pf_result"]
    assert {"name", "calls", "self_cpu_ms"} <= set(result["table"].columns)
    assert "traceEvents" in json.loads(result["trace"])


def test_training_steps_schedule_and_caps(profiler):
    at = profiler
    at.button_group(key="pf_mode").set_value("train_steps").run()
    at.number_input(key="pf_steps").set_value(6).run()
    at.button(key="pf_run").click().run()
    phases = set(at.session_state["pf_result"]["breakdown"]["phase"])
    assert {"forward", "backward", "optimizer"} <= phases
    at.number_input(key="pf_active").set_value(10).run()  # wait + warmup + active > steps
    assert at.error and not at.exception


def test_export_verifies_and_offers_onnx(exporter):
    at = exporter
    at.multiselect(key="ex_formats").set_value(["state_dict", "onnx", "torchscript_trace"]).run()
    at.button(key="ex_run").click().run()
    assert not at.exception
    _, results = at.session_state["ex_results"]
    assert [r.ok for r in results] == [True, True, True]
    onnx = next(r for r in results if r.format == "onnx")
    assert onnx.filename == "CNN.onnx" and onnx.max_abs_diff < 1e-4
    session = ort.InferenceSession(onnx.data, providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.random.rand(3, 1, 28, 28).astype(np.float32)})[0]
    assert out.shape == (3, 10)


def test_export_examples(exporter):
    at = exporter
    for example, text in (("E1", "state_dict"), ("E2", "torch.jit.trace"), ("E3", "torch.onnx.export")):
        at.button_group(key="ex_example").set_value(example).run()
        assert text in at.main.code[-1].value
