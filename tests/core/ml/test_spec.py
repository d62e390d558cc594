"""ModelSpec: validated once into typed layers, written back as the same JSON, refused in the lab's words."""
import json
import pickle
from pathlib import Path

import pytest

from core.errors import LabError
from core.i18n import CATALOGUE
from core.lessons.builder import parse_input_shape
from core.ml.modules import ShapeError, check_batch, checked_spec, infer_shapes
from core.ml.spec import (
    LAYER_TYPES,
    ConvArgs,
    LinearArgs,
    ModelSpec,
    SequentialLayer,
    SpecError,
    arg_info,
    check_input_shape,
)
from core.ml.zoo import PRESETS, preset_spec

# Every preset's spec as the lab wrote it before specs were typed (validate_spec's output).
TODAY = json.loads((Path(__file__).parent / "preset_specs.json").read_text())


def M(layers, **kw):
    return {"name": "M", "input_shape": [1], "layers": layers, **kw}


@pytest.mark.parametrize("key", list(PRESETS))
def test_every_preset_round_trips_to_the_same_json(key):
    spec = PRESETS[key].spec
    assert spec.to_dict() == TODAY[key]
    assert spec.to_json() == json.dumps(TODAY[key], indent=2)  # the Builder's JSON export, byte for byte
    again = ModelSpec.from_json(json.dumps(TODAY[key]))
    assert again == spec and again.to_dict() == TODAY[key]
    assert pickle.loads(pickle.dumps(spec)) == spec  # session state and processes may pickle it


def test_every_layer_type_is_typed():
    assert set(TODAY) == set(PRESETS) and len(LAYER_TYPES) == 21
    spec = ModelSpec.parse(M([{"type": "Linear", "args": {"in_features": 1, "out_features": 2}},
                              {"type": "Sequential", "name": "block", "layers": [{"type": "ReLU"}]}]))
    linear, block = spec.layers
    assert isinstance(linear.args, LinearArgs) and linear.args.in_features == 1 and linear.args.bias is True
    assert isinstance(block, SequentialLayer) and block.layers[0].type == "ReLU"
    assert spec.to_dict()["layers"][0] == {"type": "Linear", "args": {"in_features": 1, "out_features": 2}}
    with pytest.raises(Exception):  # noqa: B017 - frozen: an edit makes a new spec
        spec.name = "Other"  # type: ignore[misc]


def test_only_given_arguments_are_written_back_and_nulls_are_not_given():
    data = M([{"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 4, "kernel_size": [3, 3],
                                           "stride": None, "padding": 0}, "name": None}])
    spec = ModelSpec.parse(data)
    conv = spec.layers[0]
    assert isinstance(conv.args, ConvArgs) and conv.args.stride == 1 and conv.args.kernel_size == (3, 3)
    assert spec.to_dict()["layers"] == [{"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 4,
                                                                    "kernel_size": [3, 3], "padding": 0}}]
    assert ModelSpec.parse(M([{"type": "Dropout", "args": {"p": 1}}])).to_dict()["layers"][0]["args"] == {"p": 1.0}


# The English messages are the ones the lab gave before specs were typed (word for word).
BAD = [
    ("not a dict", "a model spec must be an object with name, input_shape and layers"),
    ({"name": "M", "input_shape": [1], "layers": [], "extra": 1}, "unknown spec keys: extra"),
    (M([{"type": "Evil"}]), "layer 0: unknown layer type 'Evil'; known types: Linear, Conv1d, Conv2d, Conv3d, "
     "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, LayerNorm, Dropout, ReLU, LeakyReLU, "
     "Sigmoid, Tanh, Softmax, Flatten, LSTM, GRU, ResBlock, Sequential"),
    (M([{"type": "Linear", "args": {"in_features": -3, "out_features": 1}}]),
     "layer 0 (Linear).in_features must be between 1 and 65536, got -3"),
    (M([{"type": "Linear", "args": {"in_features": "__import__('os')", "out_features": 1}}]),
     "layer 0 (Linear).in_features must be an integer, got \"__import__('os')\""),
    (M([{"type": "Linear", "args": {"in_features": 1}}]), "layer 0 (Linear): argument out_features is required"),
    (M([{"type": "Linear", "args": {"in_features": 1, "out_features": 1, "device": "cuda"}}]),
     "layer 0 (Linear): unknown argument(s) device; allowed: in_features, out_features, bias"),
    (M([{"type": "Dropout", "args": {"p": float("nan")}}]), "layer 0 (Dropout).p must be a finite number, got nan"),
    (M([{"type": "Dropout", "args": {"p": 2.5}}]), "layer 0 (Dropout).p must be between 0.0 and 1.0, got 2.5"),
    (M([{"type": "ReLU", "args": {}, "name": "__class__"}]),
     "layer 0 (ReLU): name must be a Python identifier not starting with '_', got '__class__'"),
    ({"name": "os.system", "input_shape": [1], "layers": []},
     "model name must be a Python identifier (letters, digits, _), got 'os.system'"),
    ({"name": "M", "input_shape": [0], "layers": []},
     "input_shape must be a list of 1 to 4 sizes between 1 and 4096 (without the batch dimension), got [0]"),
    (M([{"type": "LSTM", "args": {"input_size": 1, "hidden_size": 1, "output": "all"}}]),
     "layer 0 (LSTM).output must be one of last, sequence, hidden, got 'all'"),
    (M([{"type": "ReLU", "layers": []}]), "layer 0 (ReLU): only Sequential blocks have nested layers"),
    (M([{"type": "Linear", "args": {"in_features": True, "out_features": 1}}]),
     "layer 0 (Linear).in_features must be an integer, got True"),
    (M([{"type": "ReLU", "args": {"x": 1}}]), "layer 0 (ReLU): unknown argument(s) x; allowed: no arguments"),
    (M([{"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 1, "kernel_size": [1, 2, 3, 4]}}]),
     "layer 0 (Conv2d).kernel_size must be an integer or a list of 1 to 3 integers, got [1, 2, 3, 4]"),
    (M([{"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 1, "kernel_size": 3, "bias": 1}}]),
     "layer 0 (Conv2d).bias must be true or false, got 1"),
    (M([{"type": "Sequential", "layers": [{"type": "Sequential", "layers": [{"type": "Sequential", "layers": [
        {"type": "Sequential", "layers": [{"type": "Sequential", "layers": [{"type": "ReLU"}]}]}]}]}]}]),
     "layer 0.0.0.0.0.0: Sequential blocks nest at most 4 deep"),
    (M([{"type": "Sequential", "layers": []}]),
     "layer 0 (Sequential): a Sequential block needs a non-empty list of layers"),
    (M([{"type": "ReLU", "name": "a"}, {"type": "ReLU", "name": "a"}]), "layer names must be unique"),
    (M([{"type": "ReLU"}] * 201), "a spec may have at most 200 layers"),
    (M([5]), 'layer 0 must be an object like {"type": "Linear", "args": {...}}'),
    (M([{"type": "ReLU", "zz": 1}]), "layer 0 has unknown keys: zz"),
    (M([{"type": "Linear", "args": 5}]), "layer 0 (Linear): args must be an object of name: value"),
    (M({}), "layers must be a list"),
]


@pytest.mark.parametrize("data,message", BAD)
def test_a_bad_spec_is_refused_in_the_labs_words_in_both_languages(data, message):
    with pytest.raises(SpecError) as err:
        ModelSpec.parse(data)
    assert str(err.value) == message
    zh = err.value.message("zh")
    assert zh != message and any("\u4e00" <= ch <= "\u9fff" for ch in zh)  # a Chinese sentence
    assert f"err.{err.value.code}" in CATALOGUE["zh"]
    if "layer 0 (" in message:  # the layer type and the argument stay code in both languages
        assert "`" in err.value.message("zh", markdown=True)


def test_shape_and_cap_errors_keep_their_wording():
    with pytest.raises(ShapeError) as err:
        infer_shapes(preset_spec("cnn_rgb16").edit(input_shape=[3, 28, 28]))
    assert str(err.value) == ("layer 3 (Linear) got input shape (2, 10816): Linear expects 3136 inputs: set "
                              "in_features=10816. PyTorch says: a and b must have same reduction dim, but got "
                              "[2, 10816] X [3136, 10].")
    assert (err.value.index, err.value.layer_type, err.value.got) == ("3", "Linear", (2, 10816))
    zh = err.value.message("zh", markdown=True)
    assert "in_features=10816" in zh and "`Linear`" in zh and "请设置" in zh
    again = pickle.loads(pickle.dumps(err.value))
    assert isinstance(again, ShapeError) and again.got == (2, 10816) and str(again) == str(err.value)
    rows = preset_spec("lstm_mnist")
    with pytest.raises(ShapeError, match=r"LSTM needs input \(N, T, features\), got \(2, 1, 28, 28\): use Flatten"):
        infer_shapes(rows.edit(layers=rows.layers[1:]))
    with pytest.raises(SpecError) as err:
        check_batch(ModelSpec.parse({"name": "M", "input_shape": [1, 1000, 1000], "layers": [{"type": "ReLU"}]}),
                    1024)
    assert str(err.value) == ("a batch of 1,024 would put 2,048,000,000 activation elements through the model, "
                              "over the cap of 256,000,000; use a batch of at most 128")
    assert "2,048,000,000" in err.value.message("zh")
    with pytest.raises(SpecError) as err:
        checked_spec(ModelSpec.parse(M([{"type": "Linear", "args": {"in_features": 4096, "out_features": 65536}}],
                                       input_shape=[4096])))
    assert str(err.value) == "the model has 268,500,992 parameters, over the cap of 50,000,000; make layers smaller"


def test_one_input_shape_rule():
    assert check_input_shape([1, 28, 28]) == (1, 28, 28) == parse_input_shape("1 x 28 × 28")
    for bad in ([], [1, 2, 3, 4, 5], [0], [4097], [True], [1.0], "1, 2", None):
        with pytest.raises(SpecError, match="input_shape must be a list of 1 to 4 sizes between 1 and 4096"):
            check_input_shape(bad)
    for text in ("1, 28, __import__", "999999, 1", "", "²"):  # not sizes: the Builder's own message
        with pytest.raises(LabError, match="is not an input shape") as err:
            parse_input_shape(text)
        assert "不是有效的输入形状" in err.value.message("zh")
    for text in ("1, 2, 3, 4, 5", "5000", "0, 1"):  # sizes, but not an input shape: the rule's message
        with pytest.raises(SpecError, match="input_shape must be a list of 1 to 4 sizes between 1 and 4096"):
            parse_input_shape(text)
    with pytest.raises(SpecError, match="input_shape must be"):
        ModelSpec.parse({"name": "M", "input_shape": [1, 2, 3, 4, 5], "layers": []})


def test_arg_info_describes_the_builders_widgets():
    conv = arg_info("Conv2d")
    assert list(conv) == ["in_channels", "out_channels", "kernel_size", "stride", "padding", "bias"]
    assert (conv["kernel_size"].kind, conv["kernel_size"].required, conv["kernel_size"].lo) == ("ints", True, 1)
    assert (conv["padding"].default, conv["bias"].kind) == (0, "bool")
    lstm = arg_info("LSTM")
    assert lstm["output"].choices == ("last", "sequence", "hidden") and lstm["dropout"].kind == "float"
    assert arg_info("MaxPool2d")["stride"].default is None and arg_info("ReLU") == {}


def test_edits_make_new_validated_specs():
    spec = preset_spec("linear")
    renamed = spec.edit(name="Other")
    assert renamed.name == "Other" and spec.name == "LinearModel" and renamed.layers == spec.layers
    with pytest.raises(SpecError, match="layer names must be unique"):
        spec.edit(layers=[*spec.layers, *spec.layers])
    assert isinstance(LabError("spec.names_unique"), ValueError)
