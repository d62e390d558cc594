import json

import pytest
import torch
from torch import nn

from core.ml.codegen import module_code
from core.ml.modules import ShapeError, build_model, count_parameters, infer_shapes, parameter_count
from core.ml.spec import ModelSpec, SpecError
from core.ml.zoo import PRESETS, preset_spec, zoo_rows

TUTORIAL_COUNTS = {  # SEED_EXAMPLES M1-M8
    "linear": 2, "neural_net": 241, "mlp_sequential": 1591, "neural_network": 669_706,
    "cnn": 31_530, "simple_cnn": 50_186, "cnn_rgb16": 31_818, "resblock_net": 5_034,
}


@pytest.mark.parametrize("key", list(PRESETS))
def test_every_preset_builds_and_counts(key):
    preset = PRESETS[key]
    model = build_model(preset.spec)
    assert count_parameters(model) == preset.params == parameter_count(preset.spec)
    x = torch.randn(3, *preset.spec.input_shape)
    out = model.eval()(x)
    assert tuple(out.shape) == infer_shapes(preset.spec, batch=3)[-1].output_shape


@pytest.mark.parametrize("key,count", TUTORIAL_COUNTS.items())
def test_tutorial_parameter_counts(key, count):
    assert parameter_count(PRESETS[key].spec) == count


def test_the_lab_cnns_have_the_same_weights_and_the_fast_one_is_the_default():
    """lab_fast is lab_cnn with its first conv + pool replaced by one stride-2 conv: the same 104,938
    parameters (the same shapes, so the same state_dict sizes), a 14x14 map after the first layer."""
    from core.ml.zoo import DEFAULT_PRESET

    assert DEFAULT_PRESET == "lab_fast"
    assert parameter_count(PRESETS["lab_cnn"].spec) == parameter_count(PRESETS["lab_fast"].spec) == 104_938
    slow, fast = build_model(PRESETS["lab_cnn"].spec), build_model(PRESETS["lab_fast"].spec)
    assert [tuple(p.shape) for p in slow.parameters()] == [tuple(p.shape) for p in fast.parameters()]
    first = infer_shapes(PRESETS["lab_fast"].spec, batch=1)[0]
    assert first.output_shape == (1, 32, 14, 14)


def test_m4_repr_and_logits():
    model = build_model(preset_spec("neural_network"))
    assert repr(model) == (
        "NeuralNetwork(\n"
        "  (flatten): Flatten(start_dim=1, end_dim=-1)\n"
        "  (linear_relu_stack): Sequential(\n"
        "    (0): Linear(in_features=784, out_features=512, bias=True)\n"
        "    (1): ReLU()\n"
        "    (2): Linear(in_features=512, out_features=512, bias=True)\n"
        "    (3): ReLU()\n"
        "    (4): Linear(in_features=512, out_features=10, bias=True)\n"
        "  )\n"
        ")")
    assert model(torch.rand(64, 1, 28, 28)).shape == (64, 10)


def test_m7_only_fits_16x16():
    spec = preset_spec("cnn_rgb16")
    assert infer_shapes(spec)[-1].output_shape == (2, 10)
    spec = spec.edit(input_shape=[3, 28, 28])
    with pytest.raises(ShapeError, match=r"layer 3 \(Linear\).*set in_features=10816") as err:
        infer_shapes(spec)
    assert err.value.got == (2, 10816)


def test_m9_output_shapes():
    shapes = {k: infer_shapes(PRESETS[k].spec, batch=4)[-1].output_shape
              for k in ("conv2d_rgb", "conv1d", "lstm_seq", "gru_seq")}
    assert shapes == {"conv2d_rgb": (4, 64, 32, 32), "conv1d": (4, 32, 96),
                      "lstm_seq": (4, 5, 20), "gru_seq": (4, 5, 20)}


# The tutorials' own classes, as they write them.
class TutorialResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += identity
        out = self.relu(out)
        return out


class NetWithResBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layer = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.resblock = TutorialResBlock(16)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.input_layer(x)
        x = self.resblock(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


class NeuralNet(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.fc2 = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = self.fc2(x)
        return x


@pytest.mark.parametrize("key,tutorial", [("resblock_net", NetWithResBlock),
                                          ("neural_net", lambda: NeuralNet(10, 20, 1))])
def test_m2_and_m8_are_the_tutorials_classes(key, tutorial):
    """Printed, counted, keyed and computing exactly as the tutorial's class (M8: 5,034 parameters,
    the ResBlock 4,704; M2: 241, its ReLU a torch.relu call in forward, not a layer)."""
    ours, theirs = build_model(preset_spec(key), seed=3), tutorial()
    theirs._get_name = lambda: ours.spec_name  # the tutorial's class has the same name; only the test's differs
    assert repr(ours) == repr(theirs).replace("TutorialResBlock", "ResBlock")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert count_parameters(ours) == count_parameters(theirs) == TUTORIAL_COUNTS[key]
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, *preset_spec(key).input_shape)
    for mode in (True, False):
        torch.testing.assert_close(ours.train(mode)(x), theirs.train(mode)(x))
    if key == "resblock_net":
        assert count_parameters(ours.resblock) == 4_704


def test_m8_resblock_has_identity_skip():
    model = build_model(preset_spec("resblock_net"))
    block = model.resblock
    assert isinstance(block.bn1, torch.nn.BatchNorm2d) and block.conv1.bias is not None
    with torch.no_grad():  # zero residual branch -> the block is relu(identity)
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block.eval()(x), torch.relu(x))


def test_conv3d_is_a_layer_type_with_shapes_summary_and_code():
    spec = preset_spec("conv3d")
    assert infer_shapes(spec, batch=2)[-1].output_shape == (2, 16, 8, 32, 32)
    assert parameter_count(spec) == count_parameters(nn.Conv3d(3, 16, 3, padding=1)) == 1_312
    assert "(0): Conv3d(3, 16, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))" in repr(build_model(spec))
    assert "nn.Conv3d(3, 16, 3, padding=1)" in module_code(spec)
    bad = spec.edit(input_shape=[3, 32, 32])
    with pytest.raises(ShapeError, match=r"Conv3d needs input \(N, C, D, H, W\)"):
        infer_shapes(bad)


@pytest.mark.parametrize("name,message", [
    ("\ufb01", "reads as 'fi' in Python"),  # the ligature ﬁ: Python reads self.ﬁ as self.fi
    ("class", "Python keyword"), ("forward", "attribute every nn.Module already has"),
    ("training", "attribute every nn.Module already has"), ("append", "attribute every nn.Module already has"),
])
def test_layer_names_python_would_read_otherwise_are_refused(name, message):
    data = {"name": "M", "input_shape": [2], "layers": [{"type": "Linear", "name": name,
                                                          "args": {"in_features": 2, "out_features": 2}}]}
    with pytest.raises(SpecError, match=message):
        ModelSpec.parse(data)


def test_two_layers_equal_under_nfkc_cannot_collapse_into_one():
    layers = [{"type": "ReLU", "name": "fi"}, {"type": "ReLU", "name": "\ufb01"}]
    with pytest.raises(SpecError, match="reads as 'fi'"):
        ModelSpec.parse({"name": "M", "input_shape": [2], "layers": layers})
    with pytest.raises(SpecError, match="reads as"):
        ModelSpec.parse({"name": "\ufb01ne", "input_shape": [2], "layers": []})
    with pytest.raises(SpecError, match="a name the generated code uses"):
        ModelSpec.parse({"name": "torch", "input_shape": [2], "layers": []})


def test_nested_names_are_unique_and_functional_layers_are_checked():
    nested = {"type": "Sequential", "layers": [{"type": "ReLU", "name": "a"}, {"type": "Tanh", "name": "a"}]}
    with pytest.raises(SpecError, match="layer names must be unique"):
        ModelSpec.parse({"name": "M", "input_shape": [2], "layers": [nested]})
    for layer, message in (({"type": "Linear", "functional": True, "args": {"in_features": 2, "out_features": 2}},
                            "only ReLU, LeakyReLU"),
                           ({"type": "ReLU", "functional": True, "name": "relu"}, "remove its name"),
                           ({"type": "Sequential", "layers": [{"type": "ReLU", "functional": True}]},
                            "inside a Sequential block")):
        with pytest.raises(SpecError, match=message):
            ModelSpec.parse({"name": "M", "input_shape": [2], "layers": [layer]})


@pytest.mark.parametrize("output,shape", [("last", (2, 20)), ("sequence", (2, 7, 20)), ("hidden", (2, 20))])
def test_recurrent_output_choice(output, shape):
    lstm = {"type": "LSTM", "args": {"input_size": 5, "hidden_size": 20, "output": output}}
    spec = ModelSpec.parse({"name": "R", "input_shape": [7, 5], "layers": [lstm]})
    model = build_model(spec)
    assert tuple(model(torch.randn(2, 7, 5)).shape) == shape
    assert repr(model).count("LSTM(5, 20, batch_first=True, output=" + output + ")") == 1


def test_row_rnn_classifiers_read_images_row_by_row():
    for key in ("lstm_mnist", "gru_mnist"):
        steps = infer_shapes(PRESETS[key].spec)
        assert steps[0].output_shape == (2, 28, 28) and steps[-1].output_shape == (2, 10)


def test_same_seed_same_weights():
    a = build_model(preset_spec("cnn"), seed=7)
    b = build_model(preset_spec("cnn"), seed=7)
    c = build_model(preset_spec("cnn"), seed=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_spec_json_round_trip():
    spec = preset_spec("neural_network")
    assert ModelSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("spec,message", [
    ("not a dict", "must be an object"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Evil"}]}, "unknown layer type 'Evil'"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Linear", "args": {"in_features": -3, "out_features": 1}}]},
     "between 1 and"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Linear", "args": {"in_features": "__import__('os')",
                                                                               "out_features": 1}}]},
     "must be an integer"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Linear", "args": {"in_features": 1}}]},
     "out_features is required"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Linear", "args": {"in_features": 1, "out_features": 1,
                                                                               "device": "cuda"}}]},
     "unknown argument"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Dropout", "args": {"p": float("nan")}}]}, "finite"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Dropout", "args": {"p": 2}}]}, "between 0.0 and 1.0"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "ReLU", "args": {}, "name": "__class__"}]}, "identifier"),
    ({"name": "os.system", "input_shape": [1], "layers": []}, "identifier"),
    ({"name": "M", "input_shape": [0], "layers": []}, "input_shape"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "LSTM", "args": {"input_size": 1, "hidden_size": 1,
                                                                             "output": "all"}}]}, "one of"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "ReLU", "layers": []}]}, "only Sequential"),
    ({"name": "M", "input_shape": [1], "layers": [{"type": "Linear", "args": {"in_features": True,
                                                                               "out_features": 1}}]}, "integer"),
])
def test_bad_specs_are_refused_with_a_message(spec, message):
    with pytest.raises(SpecError, match=message):
        ModelSpec.parse(spec)


def test_oversized_model_refused_before_allocation():
    spec = ModelSpec.parse({"name": "Huge", "input_shape": [4096],
                            "layers": [{"type": "Linear", "args": {"in_features": 65536, "out_features": 65536}}] * 4})
    # 4 x 4.3e9 parameters would need 68 GB; the meta-device count refuses it instantly.
    with pytest.raises(SpecError, match="over the cap"):
        build_model(spec)


def test_bad_json():
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{")
    with pytest.raises(SpecError, match="too long"):
        ModelSpec.from_json(" " * 300_000)
    assert ModelSpec.from_json(json.dumps(preset_spec("linear").to_dict())).name == "LinearModel"


def test_zoo_rows():
    rows = {r["preset"]: r for r in zoo_rows()}
    assert rows["neural_network"]["params"] == 669_706 and rows["neural_network"]["output"] == "(1, 10)"


def test_the_zoo_table_shows_the_tutorials_counts_in_both_languages():
    rows = {r["preset"]: r for r in zoo_rows()}
    assert rows["resblock_net"]["params"] == 5_034 and rows["neural_net"]["params"] == 241
    assert rows["conv3d"]["output"] == "(1, 16, 8, 32, 32)"
    zh = {r["preset"]: r for r in zoo_rows("zh")}
    assert zh["lab_cnn"]["title"] == "实验室 CNN：之前默认配方的模型" != rows["lab_cnn"]["title"]
