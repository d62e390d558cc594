"""core.ml.explain: the convolution step's numbers are the model's own, the attributions' maps, the overview
and the PCA map's frames."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.ml import explain as E
from core.ml.data import MNIST_MEAN, MNIST_STD, load_bundled
from core.ml.modules import build_model
from core.ml.spec import ModelSpec
from core.ml.zoo import preset_spec


def digit(i: int = 0) -> torch.Tensor:
    img = load_bundled().test_images[i].float() / 255
    return ((img - MNIST_MEAN) / MNIST_STD).view(1, 1, 28, 28)


def custom_spec() -> ModelSpec:
    """A Builder-made stack: a strided, padded conv with bias, LeakyReLU, a second conv, pooling, linear."""
    return ModelSpec.parse({"name": "Mine", "input_shape": [1, 28, 28], "layers": [
        {"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 6, "kernel_size": [3, 5], "stride": 2,
                                    "padding": [1, 2]}},
        {"type": "LeakyReLU", "args": {"negative_slope": 0.1}},
        {"type": "Conv2d", "args": {"in_channels": 6, "out_channels": 4, "kernel_size": 3}},
        {"type": "ReLU", "args": {}}, {"type": "AdaptiveAvgPool2d", "args": {"output_size": 2}},
        {"type": "Flatten", "args": {}}, {"type": "Linear", "args": {"in_features": 16, "out_features": 10}}]})


@pytest.mark.parametrize("spec", [preset_spec("lab_fast"), preset_spec("cnn"), custom_spec()],
                         ids=["lab_fast", "cnn", "custom"])
def test_the_dot_product_shown_is_the_conv_output_at_that_position(spec):
    torch.manual_seed(1)
    model = build_model(spec, seed=3).eval()
    with torch.no_grad():  # a trained-looking bias and batch norm, so every number counts
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2)
    x = digit(5)
    inputs = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: inputs.__setitem__(n, inp[0].detach()))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for layer in E.conv_layers(model):
        conv = dict(model.named_modules())[layer]
        # The same convolution in float64: the value shown must be it (float64 rounding apart, 1e-12).
        exact = F.conv2d(inputs[layer].double(), conv.weight.detach().double(),
                         None if conv.bias is None else conv.bias.detach().double(), conv.stride, conv.padding)[0]
        first = E.conv_step(model, x, layer, 0, 0, 0)
        for channel, row, col in [(0, 0, 0), (conv.out_channels - 1, first.out_h - 1, first.out_w - 1),
                                  (conv.out_channels // 2, first.out_h // 2, first.out_w // 3)]:
            step = E.conv_step(model, x, layer, channel, row, col)
            # The terms shown, summed, plus the bias shown, are exactly the value shown ...
            assert np.float64(step.products.sum()) + step.bias == pytest.approx(step.value, abs=1e-12)
            assert step.value == pytest.approx(float(exact[channel, row, col]), abs=1e-12)
            assert step.patch.shape == step.kernel.shape
            # ... and that value is what the model's forward pass computed there (float32 rounding apart).
            assert step.value == pytest.approx(step.model_value, rel=1e-5, abs=1e-5)
    # The element-wise layers after the first conv are followed: batch norm then ReLU, applied by hand.
    if isinstance(model[1], nn.BatchNorm2d):
        step = E.conv_step(model, x, "0", 3, 4, 5)
        bn = model[1].eval()
        expected = ((step.model_value - float(bn.running_mean[3])) / float(torch.sqrt(bn.running_var[3] + bn.eps))
                    * float(bn.weight.detach()[3]) + float(bn.bias.detach()[3]))
        assert [kind for _, kind, _ in step.after] == ["BatchNorm2d", "ReLU"]
        assert step.after[0][2] == pytest.approx(expected, rel=1e-4, abs=1e-5)
        assert step.after[1][2] == pytest.approx(max(0.0, expected), rel=1e-4, abs=1e-5)


def test_the_patch_is_the_padded_input_under_the_kernel():
    model = build_model(custom_spec(), seed=0).eval()
    x = digit(2)
    step = E.conv_step(model, x, "0", 1, 0, 3)  # padding 1 row, 2 columns: the first row is padding
    padded = F.pad(x[0], (2, 2, 1, 1))
    np.testing.assert_array_equal(step.patch, padded[:, 0:3, 6:11].numpy())
    assert step.box == (-1, 4, 2, 9)
    with pytest.raises(E.ExplainError) as err:
        E.conv_step(model, x, "0", 6, 0, 0)
    assert err.value.code == "explain.position"
    with pytest.raises(E.ExplainError) as err:
        E.conv_step(model, x, "1", 0, 0, 0)
    assert err.value.code == "explain.not_conv"


def test_the_overview_has_every_layer_in_order_and_leaves_no_hooks():
    model = build_model(preset_spec("resblock_net"), seed=0).eval()
    acts, logits = E.activations(model, digit())
    assert logits.shape == (1, 10)
    kinds = [a.kind for a in acts]
    assert kinds[:2] == ["Conv2d", "ResBlock"] and kinds[-1] == "Linear"
    assert all(a.values.shape == a.shape for a in acts)
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("method", E.METHODS)
def test_attributions_are_one_map_in_unit_range(method):
    model = build_model(preset_spec("simple_cnn"), seed=0).eval()
    x = digit(1)
    before = [p.detach().clone() for p in model.parameters()]
    amap = E.attribute(model, x, method, layer="conv1")
    assert amap.shape == (28, 28) and amap.min() >= 0 and amap.max() == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())  # a shared model's gradients stay untouched
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    if method == "smoothgrad":  # seeded: the same picture on every rerun
        np.testing.assert_array_equal(amap, E.attribute(model, x, method))


def test_gradcam_without_a_conv_layer_says_so_and_the_others_still_work():
    model = build_model(preset_spec("neural_network"), seed=0).eval()
    with pytest.raises(E.ExplainError) as err:
        E.attribute(model, digit(), "gradcam")
    assert err.value.code == "explain.no_conv" and "Conv2d" in str(err.value)
    assert E.attribute(model, digit(), "integrated_gradients").shape == (28, 28)
    with pytest.raises(E.ExplainError):
        E.attribute(model, digit(), "lime")


def test_gradcam_on_different_layers_differs():
    model = build_model(preset_spec("simple_cnn"), seed=0).eval()
    a = E.attribute(model, digit(), "gradcam", layer="conv1")
    b = E.attribute(model, digit(), "gradcam", layer="conv2")
    assert not np.allclose(a, b)


def test_pca_frames_project_and_align():
    torch.manual_seed(0)
    feats = torch.randn(200, 3) * torch.tensor([5.0, 2.0, 0.1])
    frame = E.pca_frame(feats)
    assert frame.coords.shape == (200, 2) and frame.components.shape == (3, 2)
    assert frame.explained[0] > frame.explained[1] > 0.0 and frame.explained.sum() > 0.99
    np.testing.assert_allclose(np.abs(frame.components[:, 0]), [1, 0, 0], atol=0.05)
    np.testing.assert_allclose(E.project(feats, frame.mean, frame.components), frame.coords, atol=1e-4)
    flipped = -frame.coords
    coords, comps = E.align_signs(flipped, -frame.components, frame.coords)
    np.testing.assert_allclose(coords, frame.coords)
    np.testing.assert_allclose(comps, frame.components)
    with pytest.raises(E.ExplainError):
        E.project(torch.zeros(1, 4), frame.mean, frame.components)


def test_penultimate_features_are_what_the_last_linear_reads():
    model = build_model(preset_spec("lab_fast"), seed=0).eval()
    x = torch.cat([digit(i) for i in range(5)])
    feats, logits = E.penultimate_and_logits(model, x, batch=2)
    assert feats.shape == (5, 128 * 3 * 3) and logits.shape == (5, 10)
    torch.testing.assert_close(model[-1](feats), logits)
