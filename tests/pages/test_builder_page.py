"""AppTest tests for the Model Builder: every example, editing, and each refusal."""
import json

import pytest

from core.i18n import CATALOGUE
from core.ml.zoo import PRESETS
from tests.pages.conftest import shown

EN = CATALOGUE["en"]
EXAMPLES = {"M1": 2, "M2": 241, "M3": 1591, "M4": 669_706, "M5": 31_530, "M6": 50_186, "M7": 31_818,
            "M8": 5_002, "M9": 5_920}


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
