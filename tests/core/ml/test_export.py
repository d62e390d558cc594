import functools
import io
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from core.ml import export as E
from core.ml.modules import build_model
from core.ml.zoo import PRESETS, preset_spec

ALL_FORMATS = ["state_dict", "checkpoint", "torch_export", "onnx", "torchscript_trace", "torchscript_script"]

# Preset x format pairs that genuinely cannot export, with the text their clean failure must show.
# torch.jit.script compiles forward's Python source; the lab's LSTM/GRU wrappers (a mixin with a
# class-level ``output: str`` annotation and a ``super().forward`` call) are outside TorchScript.
EXPECTED_FAILURES = {
    (key, "torchscript_script"): "Unknown type annotation"
    for key in ("lstm_seq", "gru_seq", "lstm_mnist", "gru_mnist")
}


@functools.cache
def exported(key: str) -> dict[str, E.ExportResult]:
    spec = PRESETS[key].spec
    model = build_model(spec)
    return {r.format: r for r in E.export_all(model, spec.input_shape, name=key)}


def eager_out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def check_result(key: str, fmt: str, r: E.ExportResult) -> None:
    assert r.format == fmt
    if (key, fmt) in EXPECTED_FAILURES:
        assert not r.ok and r.data is None and r.max_abs_diff is None
        assert EXPECTED_FAILURES[key, fmt] in r.error
        assert r.error.startswith(E.FORMATS[fmt].label + " failed while exporting")
        assert "\n" not in r.error and len(r.error) < 1000
        assert "Traceback" in r.detail
        return
    assert r.ok, r.error
    assert r.error == ""
    assert r.max_abs_diff is not None and r.max_abs_diff <= 1e-4
    assert r.data and r.size_bytes == len(r.data) and r.seconds >= 0
    assert r.filename == E.filename_for(fmt, key) and r.filename.startswith(key)
    assert r.info["verified_batches"] == [2, 3]
    if fmt == "onnx":
        assert r.info["checker"] == "ok" and r.info["op_counts"]
        assert r.info["exporter"] in ("dynamo", "legacy")
        onnx.checker.check_model(onnx.load_model_from_string(r.data), full_check=True)


# --------------------------------------------------------------------------- the matrix
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("key", list(PRESETS))
def test_every_preset_exports_to_every_format(key, fmt):
    check_result(key, fmt, exported(key)[fmt])


@pytest.mark.parametrize("key", ["linear", "cnn"])
def test_small_presets_export_everywhere(key):
    results = exported(key)
    assert list(results) == ALL_FORMATS
    for fmt, r in results.items():
        check_result(key, fmt, r)


def test_recurrent_preset_exports_or_fails_cleanly():
    spec = PRESETS["lstm_seq"].spec
    model = build_model(spec)
    for fmt in ("torchscript_trace", "torchscript_script", "onnx", "torch_export"):
        check_result("lstm_seq", fmt, E.export_model(model, spec.input_shape, fmt, name="lstm_seq"))


def test_expected_failures_are_listed_for_known_presets():
    assert {k for k, _ in EXPECTED_FAILURES} <= set(PRESETS)


# --------------------------------------------------------------------------- tutorials E1-E3
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated in torch 2.9+
def test_e2_reloaded_torchscript_equals_eager():
    model = build_model(preset_spec("cnn"))
    x = torch.randn(4, 1, 28, 28)
    for fmt in ("torchscript_trace", "torchscript_script"):
        r = exported("cnn")[fmt]
        loaded = torch.jit.load(io.BytesIO(r.data))  # our own test bytes
        torch.testing.assert_close(eager_out(loaded, x), eager_out(model, x), atol=1e-4, rtol=0)


def test_e3_onnxruntime_equals_eager_with_named_io():
    model = build_model(preset_spec("cnn"))
    r = exported("cnn")["onnx"]
    session = ort.InferenceSession(r.data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    x = torch.randn(5, 1, 28, 28)  # dynamic batch: a size the exporter never saw
    out = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(out, eager_out(model, x).numpy(), atol=1e-4)
    assert isinstance(r.info["inputs"]["input"][0], str)  # a named (dynamic) batch dimension


def test_e1_state_dict_and_checkpoint_load_with_weights_only():
    model = build_model(preset_spec("neural_net"))
    sd = exported("linear")["state_dict"]
    state = torch.load(io.BytesIO(sd.data), weights_only=True)
    assert set(state) == {"linear.weight", "linear.bias"}
    r = E.export_model(model, [10], "checkpoint", name="run 7",
                       checkpoint_extra={"epoch": 3, "loss": 0.25, "config": {"lr": 0.01, "preset": "neural_net"}})
    assert r.ok, r.error
    assert r.filename == "run_7_checkpoint.pt"
    ckpt = torch.load(io.BytesIO(r.data), weights_only=True)
    assert {"epoch", "model_state_dict", "optimizer_state_dict", "loss", "config"} <= set(ckpt)
    assert ckpt["epoch"] == 3 and ckpt["loss"] == 0.25 and ckpt["config"]["preset"] == "neural_net"
    fresh = build_model(preset_spec("neural_net"), seed=123)
    fresh.load_state_dict(ckpt["model_state_dict"])
    x = torch.randn(3, 10)
    torch.testing.assert_close(eager_out(fresh, x), eager_out(model, x))


def test_checkpoint_with_unsafe_config_fails_cleanly():
    model = build_model(preset_spec("linear"))
    r = E.export_model(model, [1], "checkpoint", checkpoint_extra={"config": {"thing": object()}})
    assert not r.ok and r.data is None
    assert "weights_only" in r.error and "\n" not in r.error


def test_full_model_pickle_is_offered_but_never_unpickled():
    model = build_model(preset_spec("neural_net"))
    r = E.full_model_pickle(model, name="my model!")
    assert r.ok and r.data and r.filename == "my_model_full_model.pt"
    assert r.info["verified"] is False and r.max_abs_diff is None
    assert "core.ml.modules.SpecModel" in r.info["globals"]
    assert r.info["weights_only_load"].startswith("refused")
    assert "state_dict" in r.info["note"]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated in torch 2.9+
def test_saving_examples_code_runs(tmp_path, monkeypatch):
    code = E.saving_examples_code([10], name="net")
    assert {"E1", "E2", "E3"} <= set(code)
    assert "model.state_dict()" in code["E1"] and "weights_only=True" in code["E1"] and "model.eval()" in code["E1"]
    assert "torch.save(model," in code["E1"]
    assert "torch.jit.trace" in code["E2"] and "torch.jit.script" in code["E2"]
    assert 'input_names=["input"]' in code["E3"] and 'output_names=["output"]' in code["E3"]
    monkeypatch.chdir(tmp_path)
    for key in ("E1", "E2", "E3", "torch_export"):
        exec(compile(code[key], key, "exec"), {"model": build_model(preset_spec("neural_net"))})
    assert (tmp_path / "net_weights.pth").exists() and (tmp_path / "net.onnx").exists()


# --------------------------------------------------------------------------- failures and options
class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        raise RuntimeError("boom: this model refuses to run\n" + "\n".join(f"noise line {i}" for i in range(200)))


class DataDependent(nn.Module):
    """torch.export cannot branch on tensor values; the legacy ONNX exporter traces one branch."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.abs().sum() >= 0:  # always true, but data-dependent
            return self.fc(x)
        return -self.fc(x)


def test_failures_are_summarized_and_do_not_stop_other_formats():
    results = E.export_all(Boom(), [4], name="boom")
    assert [r.format for r in results] == ALL_FORMATS
    for r in results:
        assert not r.ok and r.data is None
        assert "boom: this model refuses to run" in r.error
        assert "noise line" not in r.error and "\n" not in r.error and len(r.error) < 1000
        assert "noise line 199" in r.detail and "Traceback" in r.detail


def test_onnx_falls_back_to_legacy_exporter():
    results = {r.format: r for r in E.export_all(DataDependent(), [4], formats=["onnx", "torch_export"])}
    r = results["onnx"]
    assert r.ok, r.error
    assert r.info["exporter"] == "legacy"
    assert "data-dependent" in r.info["dynamo_error"]
    assert r.max_abs_diff <= 1e-4 and r.info["dynamic_batch"] is True
    t = results["torch_export"]
    assert not t.ok and "data-dependent" in t.error and "\n" not in t.error


def test_onnx_reports_both_exporters_when_both_fail(monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError(f"exporter broke (dynamo={kwargs.get('dynamo')})")
    monkeypatch.setattr(torch.onnx, "export", failing)
    r = E.export_model(build_model(preset_spec("linear")), [1], "onnx")
    assert not r.ok
    assert "dynamo=False" in r.error and "dynamo=True" in r.error


def test_static_batch_and_opset():
    model = build_model(preset_spec("neural_net"))
    r = E.export_model(model, [10], "onnx", opset=17, dynamic_batch=False, input_names=["features"],
                       output_names=["y"])
    assert r.ok, r.error
    assert r.info["opset"] == 17 and r.info["dynamic_batch"] is False
    assert r.info["inputs"] == {"features": [2, 10]} and r.info["verified_batches"] == [2]
    t = E.export_model(model, [10], "torch_export", dynamic_batch=False)
    assert t.ok and t.info["dynamic_batch"] is False
    table = E.speed_table(model, [10], [r, t], repeats=3, budget_seconds=1.0)
    static = table[table["format"].isin(["onnx", "torch_export"])]
    assert static["median_ms"].isna().all() and static["note"].map(str).str.contains("static batch").all()


def test_export_does_not_touch_the_callers_model():
    model = build_model(preset_spec("lab_cnn")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    E.export_model(model, [1, 28, 28], "torchscript_trace")
    E.export_model(model, [1, 28, 28], "state_dict")
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_names_and_filenames():
    assert E.safe_name("My Run #3/ä") == "My_Run_3"
    assert E.safe_name("///") == "model"
    assert E.filename_for("onnx", "a b") == "a_b.onnx"
    assert E.filename_for("torch_export", "x") == "x.pt2"
    assert [f.ext for f in E.FORMATS.values()] == [".pt", ".pt", ".pt2", ".onnx", ".pt", ".pt"]
    assert len({E.filename_for(f, "m") for f in E.FORMATS}) == len(E.FORMATS)
    assert all(f.description for f in E.FORMATS.values())


@pytest.mark.parametrize("kwargs", [
    dict(fmt="zip"), dict(input_shape=[]), dict(input_shape=[0, 3]), dict(input_shape="28"),
    dict(opset=3), dict(opset="18"), dict(input_names=["bad name"]), dict(input_names=["a", "b"]),
    dict(output_names=[]),
])
def test_invalid_arguments_raise_value_error(kwargs):
    args = dict(model=build_model(preset_spec("linear")), input_shape=[1], fmt="onnx")
    args.update(kwargs)
    with pytest.raises(ValueError):
        E.export_model(args.pop("model"), args.pop("input_shape"), args.pop("fmt"), **args)


def test_results_table():
    table = E.results_table(list(exported("linear").values()))
    assert list(table["format"]) == [E.FORMATS[f].label for f in ALL_FORMATS]
    assert table["ok"].all() and (table["max_abs_diff"] <= 1e-4).all()


# --------------------------------------------------------------------------- speed table
def test_speed_table_measures_each_runtime_quickly():
    import time
    model = build_model(preset_spec("cnn"))
    start = time.perf_counter()
    table = E.speed_table(model, [1, 28, 28], list(exported("cnn").values()), repeats=5, budget_seconds=2.0)
    assert time.perf_counter() - start < 10
    assert list(table.columns) == ["format", "runtime", "batch", "median_ms", "per_sample_ms", "runs",
                                   "speedup_vs_eager", "note"]
    assert set(table["format"]) == {"eager", "torchscript_trace", "torchscript_script", "onnx", "torch_export"}
    assert sorted(set(table["batch"])) == [1, 64]
    assert (table["median_ms"] > 0).all() and (table["runs"] >= 1).all()
    assert (table.loc[table["format"] == "eager", "speedup_vs_eager"] == 1).all()


# --------------------------------------------------------------------------- house rules
def test_no_unsafe_loading_in_core():
    for path in Path(E.__file__).parent.glob("*.py"):
        if path.name not in ("export.py", "profiling.py"):
            continue
        text = path.read_text()
        assert "weights_only=False" not in text and "pickle.load" not in text
        for line in text.splitlines():
            if re.search(r"\btorch\.load\(", line):
                assert "weights_only=True" in line, line


def test_export_work_files_stay_in_the_lab_home(tmp_path, monkeypatch):
    """The ONNX round trip writes its temporary files under the lab home and removes them."""
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    seen = []
    real = E.tempfile.TemporaryDirectory

    def spy(*args, **kwargs):
        made = real(*args, **kwargs)
        seen.append(made.name)
        return made

    monkeypatch.setattr(E.tempfile, "TemporaryDirectory", spy)
    spec = preset_spec("neural_network")
    assert E.export_model(build_model(spec), spec.input_shape, "onnx").data
    assert seen and all(str(p).startswith(str(tmp_path / "tmp")) for p in seen)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_torchscript_is_deprecated_and_offered_after_torch_export_and_onnx():
    """TorchScript is deprecated since PyTorch 2.11 in favour of torch.export: E2 says so, with the
    warning this PyTorch itself gives, and the formats list torch.export and ONNX first."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.trace(torch.nn.Linear(2, 1).eval(), torch.zeros(1, 2))
    said = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    assert E.torchscript_warning() == (said[0].splitlines()[0] if said else None)
    keys = list(E.FORMATS)
    assert keys.index("torch_export") < keys.index("torchscript_trace")
    assert keys.index("onnx") < keys.index("torchscript_script")
    e2 = E.saving_examples_code((1, 28, 28))["E2"]
    assert "deprecated since PyTorch 2.11" in e2 and "torch.export" in e2 and E.TORCHSCRIPT_DEPRECATED_IN == "2.11"
