import runpy

import pytest
import torch

from core.lessons import builder as B
from core.ml.codegen import module_code, sequential_code
from core.ml.modules import build_model, count_parameters, infer_shapes
from core.ml.spec import ModelSpec, SpecError
from core.ml.zoo import PRESETS, preset_spec


def _run_generated(code: str, tmp_path, name: str) -> dict:
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    return runpy.run_path(str(path))  # the generated script is our own output, run in the test process


@pytest.mark.parametrize("key", list(PRESETS))
@pytest.mark.parametrize("style", ["module", "sequential"])
def test_generated_code_builds_the_same_model(key, style, tmp_path, capsys):
    spec = preset_spec(key)
    code = module_code(spec) if style == "module" else sequential_code(spec)
    namespace = _run_generated(code, tmp_path, f"{key}_{style}")
    generated = namespace["model"]
    ours = build_model(spec, seed=1)
    assert count_parameters(generated) == count_parameters(ours) == PRESETS[key].params
    # Same layout: copy our weights (and buffers) in order, outputs must match.
    ours_state = ours.state_dict()
    gen_keys = list(generated.state_dict())
    assert len(gen_keys) == len(ours_state)
    generated.load_state_dict(dict(zip(gen_keys, ours_state.values(), strict=False)))
    x = torch.randn(4, *spec.input_shape)
    torch.testing.assert_close(generated.eval()(x), ours.eval()(x))
    assert "torch.Size" in capsys.readouterr().out


def test_summary_totals_and_depth():
    table, totals = B.summary(preset_spec("neural_network"), depth=2)
    assert totals["parameters"] == totals["trainable"] == 669_706
    assert totals["macs"] == 669_706 and totals["param_mb"] == pytest.approx(2.68, abs=0.01)
    assert list(table.columns) == ["layer", "depth", "output shape", "parameters", "mult-adds", "trainable"]
    assert table["depth"].max() == 2 and table["parameters"].sum() == 669_706
    shallow, _ = B.summary(preset_spec("neural_network"), depth=1)
    assert len(shallow) == 2 and shallow["parameters"].sum() == 669_706
    with pytest.raises(ValueError):
        B.summary(preset_spec("cnn"), depth=0)


def test_parameters_table_m11():
    table = B.parameters_table(build_model(preset_spec("neural_net")))
    assert list(table["name"]) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert list(table["shape"]) == ["(20, 10)", "(20,)", "(1, 20)", "(1,)"]
    assert table["count"].sum() == 241 and (table["norm"] > 0).all()


def test_forward_demo_m4():
    result = B.forward_demo(preset_spec("neural_network"), batch=64)
    assert result["input_shape"] == (64, 1, 28, 28) and result["output_shape"] == (64, 10)
    with pytest.raises(ValueError):
        B.forward_demo(preset_spec("cnn"), batch=0)


def test_train_eval_demo_m10():
    table = B.train_eval_demo().set_index("layer")
    assert table.loc["Dropout(p=0.2)", "differ"] and table.loc["BatchNorm1d(256)", "differ"]
    assert not table.loc["LayerNorm(256)", "differ"]
    assert 10 < table.loc["Dropout(p=0.2)", "zeros in train (%)"] < 30


def test_editing_keeps_shapes_fitting():
    spec = ModelSpec.parse({"name": "Built", "input_shape": [1, 28, 28], "layers": []})
    for kind in ("Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"):
        spec = B.add_layer(spec, kind)
    steps = infer_shapes(spec)
    assert steps[-1].output_shape == (2, 10)
    assert spec.layers[-1].args.in_features == 16 * 14 * 14
    moved = B.move_layer(spec, 4, -1)
    assert [x.type for x in moved.layers][-2:] == ["Linear", "Flatten"]
    assert B.move_layer(spec, 0, -1) == spec
    removed = B.remove_layer(spec, 1)
    assert len(removed.layers) == 4 and len(spec.layers) == 5  # edits make new specs
    with pytest.raises(ValueError):
        B.remove_layer(spec, 9)
    with pytest.raises(ValueError):
        B.add_layer(spec, "Evil")
    full = spec.edit(layers=[{"type": "ReLU"}] * 200)
    with pytest.raises(SpecError, match="at most 200 layers"):  # an edit is checked like any spec
        B.add_layer(full, "ReLU")


def test_architecture_graph_has_shapes_and_residual_skip():
    dot = B.architecture_dot(preset_spec("resblock_net"))
    assert dot.startswith("digraph") and "(1, 16, 28, 28)" in dot
    assert 'label="identity", style=dashed' in dot
    spec = preset_spec("simple_cnn").to_dict()
    spec["layers"][-1]["args"]["in_features"] = 100
    assert "shape error here" in B.architecture_dot(ModelSpec.parse(spec))


def test_graph_labels_are_escaped():
    spec = preset_spec("linear").to_dict()
    spec["layers"][0]["name"] = "evil_name"
    spec["name"] = "Quote"
    dot = B.architecture_dot(ModelSpec.parse(spec))
    assert dot.count("{") == dot.count("}")
    assert B._esc('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
