import json

import plotly.graph_objects as go
import pytest
import torch

from core.ml import profiling as P
from core.ml.modules import build_model
from core.ml.zoo import PRESETS


def preset(key):
    p = PRESETS[key]
    return build_model(p.spec), p.spec.input_shape, p.task


# --------------------------------------------------------------------------- config caps
@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=51), "at most 50 steps"),
    (dict(steps=0), "steps"),
    (dict(mode="train_steps", steps=4, wait=1, warmup=1, active=3), "wait \\+ warmup \\+ active <= steps"),
    (dict(active=0), "active"),
    (dict(wait=-1), "wait"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=1025), "batch_size"),
    (dict(batch_size=True), "whole number"),
    (dict(mode="training"), "mode"),
    (dict(row_limit=0), "row_limit"),
    (dict(group_by_input_shape=True), "record_shapes"),
    (dict(max_trace_mb=0), "max_trace_mb"),
    (dict(max_trace_mb=float("nan")), "max_trace_mb"),
    (dict(profile_memory="yes"), "profile_memory"),
])
def test_config_caps_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.ProfileConfig(**kwargs)


def test_config_accepts_limits():
    assert P.ProfileConfig(mode="train_steps", steps=50, wait=10, warmup=10, active=30).profiled_steps == 30
    assert P.ProfileConfig(mode="inference", batch_size=1024).profiled_steps == 1


def test_bad_arguments_raise_value_error():
    model, shape, _ = preset("linear")
    with pytest.raises(ValueError):
        P.profile_model(model, shape, {"mode": "inference"})
    with pytest.raises(ValueError):
        P.profile_model(model, [0], P.ProfileConfig())
    with pytest.raises(ValueError):
        P.profile_model(model, shape, P.ProfileConfig(), device="tpu")


# --------------------------------------------------------------------------- results
def check_trace(result, labels):
    assert result["trace_error"] == ""
    assert result["trace_size"] == len(result["trace"]) > 0
    data = json.loads(result["trace"])
    assert isinstance(data["traceEvents"], list) and data["traceEvents"]
    names = {e.get("name") for e in data["traceEvents"]}
    assert set(labels) <= names
    assert P.trace_is_valid(result["trace"])


def test_inference_profile_p1_style():
    model, shape, task = preset("cnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = P.ProfileConfig(mode="inference", batch_size=4, row_limit=5)
    r = P.profile_model(model, shape, cfg, task=task)
    assert r["device"] == "cpu" and r["activities"] == ["CPU"] and r["steps"] == 1 and r["loss"] is None
    table = r["table"]
    assert list(table.columns) == P.BASE_COLUMNS
    assert table["self_cpu_ms"].is_monotonic_decreasing
    assert "model_inference" in set(table["name"]) and "aten::addmm" in set(table["name"])
    assert (table["calls"] >= 1).all()
    top = r["top"]
    assert 1 <= len(top) <= 5 and (top["kind"] == "op").all()
    assert list(r["breakdown"]["phase"]) == ["data", "forward"]
    assert r["breakdown"].loc[1, "label"] == "model_inference" and r["breakdown"].loc[1, "ms"] > 0
    assert abs(r["breakdown"]["share_pct"].sum() - 100) < 1e-6
    assert r["memory"] is None
    check_trace(r, ["model_inference", "data"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_train_step_with_memory_and_shapes():
    model, shape, task = preset("cnn")
    cfg = P.ProfileConfig(mode="train_step", batch_size=8, record_shapes=True, profile_memory=True,
                          group_by_input_shape=True)
    r = P.profile_model(model, shape, cfg, task=task)
    assert r["loss"] == "cross_entropy" and r["steps"] == 1 and r["warmup_steps"] == 1
    assert list(r["table"].columns) == P.BASE_COLUMNS + P.MEMORY_COLUMNS + P.SHAPE_COLUMNS
    shapes = r["table"].loc[r["table"]["name"] == "aten::convolution", "input_shapes"]
    assert any("[8, 1, 28, 28]" in s for s in shapes)
    b = r["breakdown"]
    assert list(b.columns) == P.BREAKDOWN_COLUMNS
    assert list(b["phase"]) == ["data", "forward", "backward", "optimizer"]
    assert list(b["label"]) == ["data", "forward", "backward", "optimizer_step"]
    assert (b["ms"] > 0).all() and (b["calls"] == 1).all()
    mem = r["memory"]
    assert len(mem) > 0 and {"name", "cpu_mem_mb", "self_cpu_mem_mb"} <= set(mem.columns)
    assert mem["self_cpu_mem_mb"].is_monotonic_decreasing
    check_trace(r, ["forward", "backward", "optimizer_step"])


def test_train_steps_with_schedule_and_regression_loss():
    model, shape, task = preset("neural_net")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = P.ProfileConfig(mode="train_steps", steps=6, wait=1, warmup=1, active=3, batch_size=4)
    r = P.profile_model(model, shape, cfg, task=task)
    assert r["loss"] == "mse" and r["steps"] == 3 and r["warmup_steps"] == 2
    b = r["breakdown"].set_index("phase")
    assert (b["calls"] == 3).all()
    assert (abs(b["ms_per_step"] - b["ms"] / 3) < 1e-9).all()
    steps = r["table"][r["table"]["name"].str.startswith("ProfilerStep")]
    assert int(steps["calls"].sum()) == 3
    check_trace(r, ["forward", "backward", "optimizer_step"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # trained a copy


def test_shape_demo_and_recurrent_models_use_mse():
    for key in ("conv1d", "lstm_seq"):
        model, shape, task = preset(key)
        r = P.profile_model(model, shape, P.ProfileConfig(mode="train_step", batch_size=2), task=task)
        assert r["loss"] == "mse", key
        assert (r["breakdown"]["ms"] > 0).all()


def test_trace_over_cap_is_withheld_with_a_message():
    model, shape, task = preset("linear")
    cfg = P.ProfileConfig(mode="train_steps", steps=4, wait=0, warmup=1, active=3, batch_size=2,
                          max_trace_mb=0.001)
    r = P.profile_model(model, shape, cfg, task=task)
    assert r["trace"] is None and r["trace_size"] > 1024
    assert "cap" in r["trace_error"] and "MB" in r["trace_error"]
    assert len(r["table"]) > 0  # the table is still there


def test_figures():
    model, shape, task = preset("cnn")
    r = P.profile_model(model, shape, P.ProfileConfig(mode="train_step", batch_size=2), task=task)
    fig = P.top_ops_figure(r["top"])
    assert isinstance(fig, go.Figure) and len(fig.data[0].x) == len(r["top"])
    # The op names fit: the left margin grows with the longest label, long names are shortened on the
    # axis (whole in the hover), so no label is cut off by the chart's edge.
    labels = list(fig.data[0].y)
    assert fig.layout.margin.l >= 7 * max(len(label) for label in labels) and fig.layout.yaxis.automargin
    long = P.top_ops_figure(r["top"].assign(name=["aten::" + "x" * 80, *list(r["top"]["name"][1:])]))
    assert max(len(label) for label in long.data[0].y) <= 48 and long.layout.margin.l <= 360
    assert ("aten::" + "x" * 80) in list(long.data[0].hovertext)
    fig = P.breakdown_figure(r["breakdown"])
    assert isinstance(fig, go.Figure) and len(fig.data) == 4


def test_p1_example():
    model, shape, _ = preset("cnn")
    ex = P.p1_example(model, shape)
    assert 'record_function("model_inference")' in ex["code"]
    # The tutorial sorts by cuda_time_total; without CUDA every CUDA time is 0, so CPU time sorts (and says so).
    assert 'sort_by = "cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"' in ex["code"]
    assert "sort_by=sort_by, row_limit=10" in ex["code"]
    assert "ProfilerActivity.CUDA" in ex["code"] and "torch.randn(5, 1, 28, 28)" in ex["code"]
    compile(ex["code"], "p1", "exec")
    t = ex["table"]
    cuda = torch.cuda.is_available()
    assert ex["sort_by"] == ("cuda_time_total" if cuda else "self_cpu_time_total")
    assert len(t) == 10 and t["cuda_total_ms" if cuda else "self_cpu_ms"].is_monotonic_decreasing
    assert list(t.columns) == P.BASE_COLUMNS
    assert "model_inference" in set(t["name"])


def test_model_failure_is_a_clear_profiling_error():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\n" + "detail\n" * 100)

    with pytest.raises(P.ProfilingError, match="mat1 and mat2") as info:
        P.profile_model(Broken(), [4], P.ProfileConfig(mode="inference", batch_size=2))
    assert "detail" not in str(info.value)
    # the profiler is usable again afterwards
    model, shape, _task = preset("linear")
    assert P.profile_model(model, shape, P.ProfileConfig(batch_size=2))["trace"]
