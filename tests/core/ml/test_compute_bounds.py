"""Issue 22, items 3 and 4: recurrent shapes by formula (never stepping through time on the
meta device) and a compute cap (multiply-adds per sample and per request)."""
import time

import pytest
import torch
from torch import nn

from core.ml import modules as M
from core.ml.spec import ModelSpec, SpecError

# The attack link of issue 22, item 3: 4,096 steps through 16 bidirectional layers.
LSTM_ATTACK = {"name": "M", "input_shape": [4096, 8],
               "layers": [{"type": "LSTM", "args": {"input_size": 8, "hidden_size": 8, "num_layers": 16,
                                                    "bidirectional": True}}]}
# Item 4: two wide convolutions with 64x64 kernels: (126² + 127²) x 64 outputs x 64 x 64 x 64 = 537 billion
# multiply-adds per sample.
CONV_ATTACK = {"name": "M", "input_shape": [64, 125, 125],
               "layers": [{"type": "Conv2d", "args": {"in_channels": 64, "out_channels": 64, "kernel_size": 64,
                                                      "padding": 32}},
                          {"type": "Conv2d", "args": {"in_channels": 64, "out_channels": 64, "kernel_size": 64,
                                                      "padding": 32}}]}


@pytest.fixture
def no_stepping(monkeypatch):
    """PyTorch's own recurrent forward on the meta device is the slow path: fail if it is reached."""
    for cls in (nn.LSTM, nn.GRU):
        real = cls.forward

        def forward(self, input, hx=None, _real=real):
            if input.is_meta:
                raise AssertionError("stepped through time on the meta device")
            return _real(self, input, hx)

        monkeypatch.setattr(cls, "forward", forward)


def test_the_lstm_attack_link_settles_fast_with_the_right_shape_and_a_cap_message(no_stepping):
    spec = ModelSpec.parse(LSTM_ATTACK)
    start = time.monotonic()
    assert [s.output_shape for s in M.infer_shapes(spec, batch=2)] == [(2, 16)]
    cost = M.spec_cost(spec)
    with pytest.raises(SpecError) as err:
        M.checked_spec(spec)
    assert time.monotonic() - start < 1.0
    assert cost.activations == 4096 * 8 + 16 and cost.recurrent_steps == 4096 * 16 * 2
    # 16 layers x 2 directions x 4,096 steps x 4 gates x 8 hidden x (inputs + hidden): 8 + 8 first, 16 + 8 after.
    assert cost.macs == 4096 * 2 * 4 * 8 * (16 + 15 * 24)
    assert str(err.value).startswith("the recurrent layers would take 131,072 steps one after another for each "
                                     "sample (time steps × stacked layers × directions), over the cap of 16,384")
    assert "131,072" in err.value.message("zh")
    one_layer = ModelSpec.parse({**LSTM_ATTACK, "layers": [{"type": "LSTM", "args": {"input_size": 8,
                                                                                     "hidden_size": 8}}]})
    assert M.checked_spec(one_layer) is one_layer  # 4,096 steps: the 60 s case, now milliseconds


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("output", ["last", "sequence", "hidden"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("shape", [(3, 5, 4), (5, 4)])  # batched (N, T, F) and PyTorch's unbatched (T, F)
def test_recurrent_shapes_by_formula_match_pytorch(kind, output, layers, bidirectional, shape):
    cls = M.LSTM if kind == "LSTM" else M.GRU
    module = cls(4, 6, num_layers=layers, bidirectional=bidirectional, batch_first=True, output=output)
    with torch.no_grad():
        real = module(torch.zeros(shape))
    assert module(torch.empty(shape, device="meta")).shape == real.shape


@pytest.mark.parametrize("shape", [(3, 5, 7), (3, 1, 5, 4), (4,)])
def test_recurrent_shape_errors_by_formula_match_pytorch(shape):
    module = M.LSTM(4, 6, batch_first=True)
    with pytest.raises(Exception) as real:
        module(torch.zeros(shape))
    with pytest.raises(type(real.value)) as meta:
        module(torch.empty(shape, device="meta"))
    assert str(meta.value) == str(real.value)


def test_macs_by_formula_per_layer_type():
    conv = ModelSpec.parse({"name": "M", "input_shape": [3, 8, 8], "layers": [
        {"type": "Conv2d", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 3}},  # 4x6x6 out
        {"type": "MaxPool2d", "args": {"kernel_size": 2}},  # 4x3x3 out
        {"type": "Flatten"},
        {"type": "Linear", "args": {"in_features": 36, "out_features": 10}},
        {"type": "ReLU"}]})
    assert M.mac_count(conv) == 144 * 3 * 9 + 36 * 4 + 36 + 10 * 36 + 10
    gru = ModelSpec.parse({"name": "M", "input_shape": [7, 5], "layers": [
        {"type": "GRU", "args": {"input_size": 5, "hidden_size": 3, "output": "sequence"}}]})
    assert M.mac_count(gru) == 7 * 3 * 3 * (5 + 3)


def test_a_spec_over_the_per_sample_compute_cap_is_refused_fast():
    spec = ModelSpec.parse(CONV_ATTACK)
    start = time.monotonic()
    with pytest.raises(SpecError) as err:
        M.checked_spec(spec)
    assert time.monotonic() - start < 1.0
    assert err.value.code == "budget.sample_macs"
    assert str(err.value).startswith("one sample needs 537 billion multiply-adds through this model, over the "
                                     "cap of 5 billion (PYTORCH_LAB_MAX_SAMPLE_GMAC)")
    assert "十亿次乘加" in err.value.message("zh") and "PYTORCH_LAB_MAX_SAMPLE_GMAC" in err.value.message("zh")
    with pytest.raises(SpecError, match="multiply-adds"):
        M.build_model(spec)


def test_the_per_sample_cap_is_a_setting(monkeypatch):
    spec = ModelSpec.parse({"name": "M", "input_shape": [1000], "layers": [
        {"type": "Linear", "args": {"in_features": 1000, "out_features": 2000}}]})  # 2 million
    assert M.checked_spec(spec) is spec
    monkeypatch.setenv("PYTORCH_LAB_MAX_SAMPLE_GMAC", "0.001")
    with pytest.raises(SpecError, match=r"needs 0\.002 billion multiply-adds through this model, over the cap of "
                                        r"0\.001"):
        M.checked_spec(spec)


def test_a_batch_over_the_per_request_compute_cap_is_refused_with_the_batch_that_fits(monkeypatch):
    spec = ModelSpec.parse({"name": "M", "input_shape": [1000], "layers": [
        {"type": "Linear", "args": {"in_features": 1000, "out_features": 1000}}]})  # 1 million per sample
    monkeypatch.setenv("PYTORCH_LAB_MAX_BATCH_GMAC", "0.1")
    M.check_batch(spec, 100)
    with pytest.raises(SpecError) as err:
        M.check_batch(spec, 101)
    assert err.value.code == "budget.batch_macs" and err.value.params["fit"] == 100
    assert str(err.value) == ("a batch of 101 needs 0.101 billion multiply-adds, more than the 0.1 billion one "
                              "request may run in the server (PYTORCH_LAB_MAX_BATCH_GMAC); it was refused before "
                              "running. Use a batch of at most 100")
    with pytest.raises(SpecError) as err:
        M.check_batch(spec, 40, passes=3)  # a training step: about three forward passes
    assert err.value.params["fit"] == 33


def test_every_preset_passes_the_default_caps_at_the_largest_forward_batch():
    from core.ml.zoo import PRESETS

    for preset in PRESETS.values():
        M.checked_spec(preset.spec)
        M.check_batch(preset.spec, 1024)
