"""AppTest: the Profiler page's rule-based advice with measured evidence, in both languages."""
from core.i18n import CATALOGUE
from tests.pages.conftest import shown
from tests.textcheck import text_problems

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]


def test_a_cnn_gets_measured_convolution_advice(app):
    at = app("pages/builder.py")
    at.button(key="bld_ex_M6").click().run()  # SimpleCNN: convolutions hold most of a step
    at.switch_page("pages/profiler.py").run()
    at.button_group(key="pf_mode").set_value("train_step").run()
    at.number_input(key="pf_batch").set_value(16).run()
    at.button(key="pf_run").click().run()
    assert not at.exception and not at.error
    advice = at.session_state["pf_result"]["advice"]
    assert [a.code for a in advice][:2] == ["conv", "conv_layout"]
    text = shown(" ".join(str(m.value) for m in at.markdown))
    assert EN["profiler.advice.title"] in text and "channels_last" in text
    assert "ms in channels_last" in text  # the measured step times, not a canned sentence
    at.button_group(key="lang").set_value("zh").run()
    assert not at.exception and ZH["profiler.advice.title"] in " ".join(str(m.value) for m in at.markdown)
    assert not text_problems(at, "zh"), text_problems(at, "zh")


def test_a_model_without_convolutions_gets_no_convolution_advice(app):
    at = app("pages/builder.py")
    at.button(key="bld_ex_M4").click().run()  # the tutorials' NeuralNetwork: Linear and ReLU only
    at.switch_page("pages/profiler.py").run()
    at.button(key="pf_run").click().run()
    assert not at.exception and not at.error
    assert not [a for a in at.session_state["pf_result"]["advice"] if a.code.startswith("conv")]
