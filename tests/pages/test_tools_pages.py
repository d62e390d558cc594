"""AppTest tests for the Profiler, Export and Predict pages (and what their links carry)."""
import json

import numpy as np
import onnxruntime as ort
import pytest

from core.i18n import CATALOGUE
from core.ml.export import FORMATS
from tests.pages.conftest import shown

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


def test_export_formats_and_opset_come_from_the_url(app):
    at = app("pages/export.py", ex_formats=["ONNX", "state_dict"], ex_opset="18", ex_dynamic="false")
    assert at.multiselect(key="ex_formats").value == ["onnx", "state_dict"]
    assert at.selectbox(key="ex_opset").value == 18 and at.checkbox(key="ex_dynamic").value is False
    at.button(key="ex_run").click().run()
    assert not at.exception and not at.error
    _, results = at.session_state["ex_results"]
    assert [r.format for r in results] == ["onnx", "state_dict"] and all(r.ok for r in results)
    assert results[0].info["opset"] == 18  # the opset from the link is the one exported


def test_export_ignores_unknown_formats_and_opsets_in_the_url(app):
    at = app("pages/export.py", ex_formats=["Pickle", "../x"], ex_opset="99")
    assert not at.exception and not at.error
    assert at.multiselect(key="ex_formats").value == list(FORMATS)  # the defaults
    assert at.selectbox(key="ex_opset").value is None


def test_profiler_settings_come_from_the_url(app):
    at = app("pages/profiler.py", pf_mode="train_steps", pf_batch="16", pf_steps="8", pf_active="4",
             pf_shapes="true", pf_group="true")
    assert at.button_group(key="pf_mode").value == "train_steps"
    assert (at.number_input(key="pf_batch").value, at.number_input(key="pf_steps").value) == (16, 8)
    assert at.number_input(key="pf_active").value == 4
    assert at.checkbox(key="pf_shapes").value is True and at.checkbox(key="pf_group").value is True
    at.button(key="pf_run").click().run()
    assert not at.exception and not at.error
    assert at.session_state["pf_result"]["mode"] == "train_steps"


def test_predict_link_naming_a_missing_run_says_so(app):
    gone = "r20000101-000000-abcdef"
    at = app("pages/predict.py", pr_run=gone, pr_input="upload")
    assert not at.exception and not at.error
    assert any(gone in shown(w.value) and "does not exist" in w.value for w in at.warning)
    assert at.selectbox(key="pr_run").value == "current"  # a fresh lab home has no trained run
    assert at.button_group(key="pr_input").value == "upload"
    # The source stays in the URL even as the default, so a link keeps naming the same model.
    assert at.query_params["pr_run"] == "current"
    zh = app("pages/predict.py", pr_run="**" + gone + "**", lang="简体中文")
    assert any("**" + gone + "**" in shown(w.value) and "不存在" in w.value for w in zh.warning)


def test_share_link_leaves_out_large_tensors_and_says_so(app):
    """x and y too large for a ~2,000-character link are left out; the model still travels."""
    from urllib.parse import parse_qs, urlparse

    import torch

    from core.safe.share import MAX_URL, decode_state

    at = app("pages/builder.py")
    at.button(key="bld_ex_M5").click().run()
    at.switch_page("pages/tensors.py").run()
    at.session_state["ten_x"] = torch.randn(16, 16)  # 256 random floats: the most the page shares
    at.run()
    url = at.sidebar.code[0].value
    assert len(url) < MAX_URL
    state = decode_state(parse_qs(urlparse(url).query)["s"][0])
    assert state["model"]["name"] == "CNN" and "tensors" not in state
    assert any(EN["share.part.tensors"] in shown(c.value) for c in at.sidebar.caption)


def test_profiler_and_export_errors_are_shown_in_chinese(app):
    """Core refusals and failures reach a Chinese page in Chinese (their code-like parts as code)."""
    at = app("pages/profiler.py", lang="简体中文", pf_mode="train_steps", pf_steps="4", pf_active="10")
    assert not at.exception and at.error
    shown_error = shown(at.error[0].value)
    assert "调度要求 wait + warmup + active <= steps" in shown_error and "1 + 1 + 10 = 12 > 4" in shown_error
    assert "the schedule needs" not in shown_error
    assert at.button(key="pf_run").disabled
    at = app("pages/builder.py")
    at.button(key="bld_ex_M9").click().run()  # the LSTM demo: torch.jit.script cannot compile its wrapper
    at.switch_page("pages/export.py").run()
    at.multiselect(key="ex_formats").set_value(["torchscript_script"]).run()
    at.button(key="ex_run").click().run()
    assert not at.exception
    _, results = at.session_state["ex_results"]
    assert not results[0].ok and "Unknown type annotation" in results[0].error
    assert "failed while exporting" in at.error[0].value
    # The kept result is the failure itself, not its English text: the page redraws it in Chinese.
    # (Switched after the clicks: AppTest formats the translated model picker outside the page.)
    at.button_group(key="lang").set_value("zh").run()
    assert not at.exception
    shown_error = shown(at.error[0].value)
    assert "在导出时失败" in shown_error and "提示：torch.jit.script 会编译" in shown_error
    assert "ValueError: Unknown type annotation" in shown_error and "Hint" not in shown_error


def test_e2_says_torchscript_is_deprecated(exporter):
    import warnings

    import torch

    at = exporter
    at.button_group(key="ex_example").set_value("E2").run()
    note = shown(at.warning[-1].value)
    assert "deprecated since PyTorch 2.11" in note and "torch.export" in note
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.trace(torch.nn.Linear(2, 1).eval(), torch.zeros(1, 2))
    said = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    if said:  # what this PyTorch says, word for word
        assert said[0].splitlines()[0] in note
    assert "deprecated since PyTorch 2.11" in at.main.code[-1].value


def test_p1_says_why_it_sorts_by_cpu_time(profiler):
    import torch

    at = profiler
    at.button(key="pf_p1").click().run()
    cuda = torch.cuda.is_available()
    caption = next(c.value for c in at.caption if "cuda_time_total" in c.value)
    assert caption == EN["profiler.p1_sort.cuda_time_total" if cuda else "profiler.p1_sort.self_cpu_time_total"]
    table = at.dataframe[0].value
    assert table["cuda_total_ms" if cuda else "self_cpu_ms"].is_monotonic_decreasing
