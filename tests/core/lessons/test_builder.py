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


def _generated_model(spec, style, tmp_path, name):
    code = module_code(spec) if style == "module" else sequential_code(spec)
    return _run_generated(code, tmp_path, name)["model"], code


@pytest.mark.parametrize("key", list(PRESETS))
@pytest.mark.parametrize("style", ["module", "sequential"])
def test_the_labs_state_dict_loads_into_the_generated_code(key, style, tmp_path, capsys):
    """E1 tells the learner to save the lab model's state_dict and load it into the generated code:
    the keys must be the same, so a strict load_state_dict works as it is and the outputs agree."""
    spec = preset_spec(key)
    generated, _ = _generated_model(spec, style, tmp_path, f"{key}_{style}")
    ours = build_model(spec, seed=1)
    assert count_parameters(generated) == count_parameters(ours) == PRESETS[key].params
    assert list(generated.state_dict()) == list(ours.state_dict())
    generated.load_state_dict(ours.state_dict())  # strict
    x = torch.randn(4, *spec.input_shape)
    torch.testing.assert_close(generated.eval()(x), ours.eval()(x))
    assert "torch.Size" in capsys.readouterr().out
    if style == "module":  # print(model) of the generated class is the lab's print(model)
        assert repr(generated) == repr(ours)


@pytest.mark.parametrize("style", ["module", "sequential"])
def test_an_edited_stack_with_named_unnamed_and_nested_layers_loads_too(style, tmp_path, capsys):
    spec = B.add_layer(preset_spec("cnn"), "ReLU")  # an unnamed layer after named ones
    spec = spec.edit(layers=[*spec.layers, {"type": "Sequential", "name": "head", "layers": [
        {"type": "Linear", "name": "a", "args": {"in_features": 10, "out_features": 5}},
        {"type": "Linear", "args": {"in_features": 5, "out_features": 3}}]}])
    generated, _ = _generated_model(spec, style, tmp_path, f"mixed_{style}")
    ours = build_model(spec, seed=2)
    assert "head.a.weight" in ours.state_dict() and "head.1.weight" in ours.state_dict()
    generated.load_state_dict(ours.state_dict())
    x = torch.randn(2, *spec.input_shape)
    torch.testing.assert_close(generated.eval()(x), ours.eval()(x))


def test_sequential_code_reads_like_the_tutorials_plain_sequential():
    code = sequential_code(preset_spec("mlp_sequential"))  # M3
    assert "OrderedDict" not in code
    assert ("model = nn.Sequential(\n    nn.Linear(10, 50),\n    nn.ReLU(),\n    nn.Linear(50, 20),\n"
            "    nn.ReLU(),\n    nn.Linear(20, 1),\n)") in code
    # Named layers keep their names (so their keys): an OrderedDict.
    assert "('conv1', nn.Conv2d(1, 16, 3, padding=1))" in sequential_code(preset_spec("cnn"))
    # The tutorial's NeuralNet (M2): torch.relu in forward; as a Sequential it must be a module.
    m2 = module_code(preset_spec("neural_net"))
    assert "self.relu" not in m2 and "        x = torch.relu(x)\n" in m2
    assert "('relu', nn.ReLU())" in sequential_code(preset_spec("neural_net"))
    # M8 flattens with torch.flatten(x, 1) in forward, as the tutorial does.
    assert "        x = torch.flatten(x, 1)\n" in module_code(preset_spec("resblock_net"))


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
    assert 10 < table.loc["Dropout(p=0.2)", "zeros_train"] < 30


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


# --------------------------------------------------------------------------- the tutorials' snippets, against torch
def test_three_ways_to_flatten_and_the_silent_batch_change():
    result = B.flatten_demo(seed=0, batch=4)
    model = build_model(preset_spec("cnn"), seed=0).eval()
    rows = {(r["code"], r["input"]): r for r in result["rows"]}
    for size in ((4, 1, 28, 28), (4, 1, 56, 56)):
        features = model.pool(model.relu(model.conv1(torch.rand(size))))
        for code, expected in (("x.view(-1, 16*14*14)", features.view(-1, 16 * 14 * 14)),
                               ("x.view(x.size(0), -1)", features.view(features.size(0), -1)),
                               ("torch.flatten(x, 1)", torch.flatten(features, 1))):
            row = rows[(code, str(size))]
            assert row["flat"] == str(tuple(expected.shape)) and row["features"] == str(tuple(features.shape))
            try:
                out = model.fc(expected)
            except RuntimeError as exc:
                assert row["output"] is None and row["error"] == str(exc).splitlines()[0]
            else:
                assert row["output"] == str(tuple(out.shape)) and row["error"] is None
            assert row["batch_kept"] == (expected.shape[0] == 4)
    assert result["same"]
    silent = rows[("x.view(-1, 16*14*14)", "(4, 1, 56, 56)")]
    assert silent["flat"] == "(16, 3136)" and silent["output"] == "(16, 10)" and not silent["batch_kept"]


def test_logits_of_neural_network_on_rand_2_1_28_28():
    spec = preset_spec("neural_network")
    result = B.logits_demo(spec, seed=0)
    model = build_model(spec, seed=0)
    torch.manual_seed(0)
    logits = model(torch.rand(2, 1, 28, 28))
    assert result["logits"] == str(logits) and "grad_fn=<AddmmBackward0>" in result["logits"]
    probab = torch.nn.Softmax(dim=1)(logits)
    assert result["probab"] == str(probab) and result["pred"] == str(probab.argmax(1))
    assert "X = torch.rand(2, 1, 28, 28)" in result["code"]


def test_eval_and_no_grad_inference_on_the_current_model():
    rows = {r["setting"]: r for r in B.inference_demo(preset_spec("lab_cnn"))["rows"]}
    assert not rows["model.train()"]["same_twice"]  # Dropout draws new masks
    assert rows["model.eval()"]["same_twice"] and rows["model.eval()"]["requires_grad"]
    assert rows["model.eval() + torch.no_grad()"]["grad_fn"] == "None"
    assert not rows["model.eval() + torch.no_grad()"]["requires_grad"]
    plain = B.inference_demo(preset_spec("neural_net"))
    assert plain["mode_layers"] == [] and all(r["same_twice"] for r in plain["rows"])


def test_torchinfo_and_the_224_input_on_the_3x16x16_cnn():
    spec = preset_spec("cnn_rgb16")
    rows = {r["call"]: r for r in B.summaries_demo(spec)}
    ok = rows["torchinfo.summary(model, input_size=(1, 3, 16, 16))"]
    assert ok["params"] == 31_818 and ok["output"] == "(1, 10)"
    model = build_model(spec, seed=0)
    for call, size in (("torchinfo.summary(model, input_size=(1, 3, 224, 224))", (1, 3, 224, 224)),
                       ("torchsummary.summary(model, (3, 224, 224))", (2, 3, 224, 224)),
                       ("torchinfo.summary(model, input_size=(3, 16, 16))", (3, 16, 16))):
        with pytest.raises(RuntimeError) as err:
            model(torch.rand(size))
        assert rows[call]["error"] == str(err.value).splitlines()[0], call


def test_sequential_versus_a_subclass_calling_torch_relu():
    result = B.subclass_demo(preset_spec("neural_net"))
    assert "relu" not in result["subclass_repr"] and "(1): ReLU()" in result["sequential_repr"]
    assert result["params"] == (241, 241) and result["max_diff"] == 0.0
    assert "x = torch.relu(x)" in result["subclass_code"] and "nn.ReLU()," in result["sequential_code"]
    assert result["functional"] == ["torch.relu(x)"]


def test_hooks_run_with_model_x_not_with_forward():
    result = B.hooks_demo(preset_spec("neural_net"))
    assert [(r["model_hook"], r["layer_hook"]) for r in result["rows"]] == [(1, 1), (1, 2)]
    assert result["layer"] == "fc1" and result["same"]


def test_train_eval_on_the_learners_model():
    result = B.model_train_eval(preset_spec("lab_cnn"))
    assert [r["type"] for r in result["rows"]] == ["BatchNorm2d"] * 3 + ["Dropout"]
    assert all(r["differ"] for r in result["rows"]) and result["output_diff"] > 0
    none = B.model_train_eval(preset_spec("neural_net"))
    assert none["rows"] == [] and none["output_diff"] == 0.0
    layer_norm = ModelSpec.parse({"name": "LN", "input_shape": [6], "layers": [
        {"type": "LayerNorm", "args": {"normalized_shape": 6}}, {"type": "Dropout", "args": {"p": 0.5}}]})
    rows = {r["type"]: r for r in B.model_train_eval(layer_norm)["rows"]}
    assert not rows["LayerNorm"]["differ"] and rows["Dropout"]["differ"]


def test_every_example_names_a_known_preset_tab_and_snippet():
    for ex in B.EXAMPLES.values():
        assert ex.preset is None or ex.preset in PRESETS
        assert ex.tab in B.TABS and (ex.snippet in B.SNIPPETS) == (ex.tab == "snippets")
