"""AppTest tests for the Model Builder: every example, editing, and each refusal."""
import json

import pytest

from core.i18n import CATALOGUE
from core.ml.zoo import DEFAULT_PRESET, PRESETS
from tests.pages.conftest import shown
from tests.textcheck import _options
from tests.textcheck import text_problems as shared_text_problems

EN = CATALOGUE["en"]
EXAMPLES = {"M1": 2, "M2": 241, "M3": 1591, "M4": 669_706, "M5": 31_530, "M6": 50_186, "M7": 31_818,
            "M8": 5_034, "M9": 5_920}


@pytest.fixture
def builder(app):
    return app("pages/builder.py")


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("example,params", EXAMPLES.items())
def test_examples_load_with_the_tutorials_parameter_counts(builder, example, params):
    at = builder
    at.button(key=f"bld_ex_{example}").click().run()
    assert not at.exception and not at.error
    at.button_group(key="bld_tab").set_value("summary").run()
    assert metric(at, EN["builder.total_params"]) == f"{params:,}"
    assert at.session_state["current_spec"].name == PRESETS[
        {"M1": "linear", "M2": "neural_net", "M3": "mlp_sequential", "M4": "neural_network", "M5": "cnn",
         "M6": "simple_cnn", "M7": "cnn_rgb16", "M8": "resblock_net", "M9": "lstm_seq"}[example]].spec.name


def test_m4_forward_and_repr(builder):
    at = builder
    at.button(key="bld_ex_M4").click().run()
    assert at.button_group(key="bld_tab").value == "forward"
    assert "(64, 1, 28, 28) → output (64, 10)" in shown(at.success[0].value)
    at.button_group(key="bld_tab").set_value("summary").run()
    assert "(linear_relu_stack): Sequential(" in at.code[0].value


def test_m7_other_input_size_is_a_shape_error(builder):
    at = builder
    at.button(key="bld_ex_M7").click().run()
    assert not at.error
    at.text_input(key="bld_shape").set_value("3, 28, 28").run()
    assert at.error and "set in_features=10816" in shown(at.error[0].value)


def test_m10_and_m11(builder):
    at = builder
    at.button(key="bld_ex_M10").click().run()
    table = at.dataframe[-1].value.set_index("layer")
    assert list(table["differ"]) == [True, True, False]
    at.button(key="bld_ex_M11").click().run()
    names = at.dataframe[-1].value["name"].tolist()
    assert names[0].endswith("weight")


def test_graph_and_code_views(builder):
    at = builder
    at.button(key="bld_ex_M8").click().run()
    assert at.button_group(key="bld_tab").value == "graph"
    at.button_group(key="bld_tab").set_value("code").run()
    assert "class NetWithResBlock(nn.Module):" in at.code[0].value
    at.radio(key="bld_code_kind").set_value("sequential").run()
    assert "nn.Sequential(OrderedDict([" in at.code[0].value


def test_build_a_cnn_layer_by_layer(builder):
    at = builder
    at.button(key="bld_empty").click().run()
    assert at.session_state["current_spec"].layers == ()
    for kind in ("Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"):
        at.selectbox(key="bld_add_type").set_value(kind).run()
        at.button(key="bld_add").click().run()
        assert not at.exception
    spec = at.session_state["current_spec"]
    assert [x.type for x in spec.layers] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert not at.error
    # Break it: Linear in_features 100 -> a shape error naming the fix; then mend it.
    at.selectbox(key="bld_sel").set_value(4).run()
    in_features = next(n.key for n in at.number_input if n.key.endswith("_4_Linear_in_features"))
    at.number_input(key=in_features).set_value(100).run()
    assert at.error and "set in_features=3136" in shown(at.error[0].value)
    at.number_input(key=in_features).set_value(3136).run()
    assert not at.error
    at.button_group(key="bld_tab").set_value("summary").run()
    assert metric(at, EN["builder.total_params"]) == f"{16 * 9 + 16 + 3136 * 10 + 10:,}"
    # Move and remove
    at.button(key="bld_up").click().run()
    assert at.session_state["current_spec"].layers[3].type == "Linear"
    at.button(key="bld_remove").click().run()
    assert len(at.session_state["current_spec"].layers) == 4


@pytest.mark.parametrize("text,message", [
    ("{", "not valid JSON"),
    (json.dumps({"name": "M", "input_shape": [1], "layers": [{"type": "Eval"}]}), "unknown layer type"),
    (json.dumps({"name": "M", "input_shape": [1], "layers": [
        {"type": "Linear", "args": {"in_features": -1, "out_features": 2}}]}), "between 1 and"),
    (json.dumps({"name": "M", "input_shape": [1], "layers": [
        {"type": "Linear", "args": {"in_features": "__import__('os').system('id')", "out_features": 2}}]}),
     "must be an integer"),
    (json.dumps({"name": "M", "input_shape": [4096], "layers": [
        {"type": "Linear", "args": {"in_features": 4096, "out_features": 65536}}]}), "over the cap"),
])
def test_bad_json_specs_are_refused(builder, text, message):
    at = builder
    at.text_area(key="bld_json").set_value(text).run()
    at.button(key="bld_json_apply").click().run()
    assert not at.exception
    assert any(message in shown(e.value) for e in at.error), [e.value for e in at.error]


def test_bad_input_shape_text(builder):
    at = builder
    at.text_input(key="bld_shape").set_value("1, 28, __import__").run()
    assert not at.exception
    assert "is not an input shape" in shown(at.error[0].value)


def test_argument_widgets_follow_the_loaded_model(builder):
    at = builder  # LabCNN's first conv has 32 channels; M5's has 16
    at.button(key="bld_ex_M5").click().run()
    out = next(n for n in at.number_input if n.key.endswith("_0_Conv2d_out_channels"))
    assert out.value == 16


def test_current_model_is_kept_across_pages(builder):
    at = builder
    at.button(key="bld_ex_M5").click().run()
    at.switch_page("pages/data.py").run()
    at.switch_page("pages/builder.py").run()
    assert at.session_state["current_spec"].name == "CNN"


def test_errors_show_in_the_pages_language(app):
    at = app("pages/builder.py", lang="简体中文")
    at.text_area(key="bld_json").set_value(json.dumps({"name": "M", "input_shape": [1], "layers": [
        {"type": "Linear", "args": {"in_features": -3, "out_features": 1}}]})).run()
    at.button(key="bld_json_apply").click().run()
    assert not at.exception
    text = shown(at.error[0].value)
    assert "第 0 层" in text and "必须介于 1 和 65536 之间" in text and "in_features" in text
    assert "must be" not in text
    at.button(key="bld_ex_M7").click().run()
    at.text_input(key="bld_shape").set_value("3, 28, 28").run()
    text = shown(at.error[0].value)
    assert "形状错误" in text and "请设置 in_features=10816" in text and "PyTorch" in text
    at.text_input(key="bld_shape").set_value("1, y").run()
    assert "不是有效的输入形状" in shown(at.error[0].value)


# --------------------------------------------------------------------------- every text readable in both languages
def text_problems(at, lang: str) -> list[str]:
    """tests/textcheck.py's problems, less the layer picker's options: "4: fc Linear" is a layer's
    index, name and type, identifiers that read like English words to the checker."""
    layers = {str(o) for box in at.selectbox if box.key == "bld_sel" for o in _options(box)}
    return [p for p in shared_text_problems(at, lang) if not any(f"in {o[:160]!r}" in p for o in layers)]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_example_and_view_reads_right(app, lang):
    """Every example, every view and every snippet, in both languages: Markdown eats nothing, and the
    Chinese page has no English sentence outside code (the M7 note, shape errors, snippets, tables)."""
    from core.lessons.builder import EXAMPLES, SNIPPETS, TABS

    at = app("pages/builder.py", lang="简体中文" if lang == "zh" else "English")
    problems = []
    for example in EXAMPLES:
        at.button(key=f"bld_ex_{example}").click().run()
        assert not at.exception, example
        problems += [f"{example}: {p}" for p in text_problems(at, lang)]
    for tab in TABS:
        at.button_group(key="bld_tab").set_value(tab).run()
        problems += [f"view {tab}: {p}" for p in text_problems(at, lang)]
    for snippet in SNIPPETS:
        at.button_group(key="bld_snippet").set_value(snippet).run()
        problems += [f"snippet {snippet}: {p}" for p in text_problems(at, lang)]
    at.button(key="bld_ex_M7").click().run()
    at.text_input(key="bld_shape").set_value("3, 28, 28").run()  # a shape error, with its fix
    assert at.error
    problems += [f"M7 error: {p}" for p in text_problems(at, lang)]
    for example, bad in (("M9", "1, 28, 28"), ("M5", "5, 10")):  # the LSTM's input fix; Conv2d's
        at.button(key=f"bld_ex_{example}").click().run()
        at.text_input(key="bld_shape").set_value(bad).run()
        assert at.error, bad
        problems += [f"shape {bad}: {p}" for p in text_problems(at, lang)]
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_m7_note_keeps_its_asterisks(builder):
    at = builder
    at.button(key="bld_ex_M7").click().run()
    note = next(c.value for c in at.caption if "16×16" in c.value)
    assert "`Linear(16*14*14, 10)`" in note  # code: shown as typed, not as italics


def test_a_layer_becomes_a_call_in_forward(builder):
    at = builder
    at.button(key="bld_ex_M5").click().run()  # the tutorial's CNN registers its ReLU as self.relu
    at.selectbox(key="bld_sel").set_value(1).run()
    next(c for c in at.checkbox if c.key.endswith("_1_ReLU_functional")).check().run()
    spec = at.session_state["current_spec"]
    assert spec.layers[1].functional and spec.layers[1].name is None and not at.error
    at.button_group(key="bld_tab").set_value("summary").run()
    assert "(relu)" not in at.code[0].value and "(conv1)" in at.code[0].value
    assert metric(at, EN["builder.total_params"]) == f"{31_530:,}"
    at.button_group(key="bld_tab").set_value("code").run()
    assert "        x = torch.relu(x)\n" in at.code[0].value


def test_conv3d_is_in_the_layer_menu(builder):
    at = builder
    at.button(key="bld_ex_M18").click().run()
    assert "Conv3d" in at.selectbox(key="bld_add_type").options
    at.button_group(key="bld_tab").set_value("summary").run()
    assert metric(at, EN["builder.total_params"]) == f"{3 * 16 * 27 + 16:,}"
    at.selectbox(key="bld_add_type").set_value("Conv3d").run()
    at.button(key="bld_add").click().run()  # sized to fit: in_channels=16 after the first Conv3d
    assert at.session_state["current_spec"].layers[-1].args.in_channels == 16 and not at.error


def test_an_old_stacks_widget_value_arriving_with_a_load_does_not_touch_the_new_model(builder):
    """A click that loads a model can arrive with a value of the old model's argument widgets (the
    browser sends every widget's value): it must neither fail nor edit the new model's layer 0."""
    at = builder
    at.button(key="bld_ex_M1").click().run()
    at.selectbox(key="bld_sel").set_value(0).run()
    field = next(w for w in at.number_input if w.key.endswith("_0_Linear_in_features"))
    field.set_value(3)
    at.button(key="bld_ex_M3").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["current_spec"] == PRESETS["mlp_sequential"].spec


def table_with(at, column: str):
    """The first table below the layer stack that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_train_eval_runs_on_the_learners_own_model(builder):
    """M10 on the current model (LabCNN: BatchNorm and Dropout), its numbers as torch computes them here;
    on a model without such layers, it says so."""
    import copy

    import torch

    from core.ml.modules import build_model

    at = builder
    at.button(key="bld_ex_M10").click().run()
    yours = table_with(at, EN["builder.te.col.zeros_train"])
    assert list(yours[EN["builder.te.col.type"]]) == ["BatchNorm2d"] * 3 + ["Dropout"]
    model = build_model(PRESETS[DEFAULT_PRESET].spec, seed=0)  # the Builder opens with the default model
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with torch.no_grad():
        diff = float((copy.deepcopy(model).train()(x) - model.eval()(x)).abs().max())
    assert EN["builder.te.output"].format(diff=diff) in [c.value for c in at.caption]
    at.button(key="bld_ex_M2").click().run()
    at.button(key="bld_ex_M10").click().run()
    assert "has no Dropout or normalization layer" in shown(at.info[0].value) and "NeuralNet" in at.info[0].value


def test_snippet_examples_show_what_torch_computes(builder):
    import torch

    from core.ml.modules import build_model

    at = builder
    at.button(key="bld_ex_M12").click().run()  # three ways to flatten, on the tutorial's CNN
    col = {k: EN[f"builder.flat.col.{k}"] for k in ("code", "input", "flat")}
    flat = table_with(at, col["flat"])
    row = flat[(flat[col["code"]] == "x.view(-1, 16*14*14)") & (flat[col["input"]] == "(4, 1, 56, 56)")]
    cnn = build_model(PRESETS["cnn"].spec, seed=0)
    features = cnn.pool(cnn.relu(cnn.conv1(torch.rand(4, 1, 56, 56))))
    assert row[col["flat"]].item() == str(tuple(features.view(-1, 16 * 14 * 14).shape)) == "(16, 3136)"
    at.button(key="bld_ex_M13").click().run()  # logits = model(torch.rand(2, 1, 28, 28))
    model = build_model(PRESETS["neural_network"].spec, seed=0)
    torch.manual_seed(0)
    logits = model(torch.rand(2, 1, 28, 28))
    assert any(c.value.startswith(str(logits)) for c in at.code)
    at.button(key="bld_ex_M17").click().run()  # hooks, on the current model (NeuralNetwork)
    hooks = table_with(at, EN["builder.hooks.col.model_hook"])
    assert hooks[EN["builder.hooks.col.model_hook"]].tolist() == [1, 1]
    assert hooks[EN["builder.hooks.col.layer_hook"]].tolist() == [1, 2]
