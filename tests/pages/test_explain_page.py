"""AppTest tests for the Explain page (layers, convolution step, attributions, two models, the features
map) and for Predict's attribution method choice."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from core.i18n import CATALOGUE
from core.ml.data import load_bundled
from core.ml.zoo import preset_spec
from core.runs import cli
from core.runs.representation import REPRESENTATION_FILE
from core.runs.store import SQLiteRunStore
from tests.pages.conftest import shown

EN = CATALOGUE["en"]


def view(at, name: str):
    next(w for w in at.button_group if w.key == "xp_view").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    return "\n".join(shown(m.value) for m in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error])


def test_layers_and_convolution_step_on_the_current_model(app):
    at = app("pages/explain.py")
    assert not at.error
    assert at.title[0].value == EN["explain.title"]
    assert "Prediction: " in texts(at) and "`0` Conv2d · 32 × 14 × 14" in [m.value for m in at.markdown]
    view(at, "step")
    channel = next(w for w in at.number_input if str(w.key).startswith("xp_channel_"))
    channel.set_value(5).run()
    at.button(key="xp_next").click().run()
    at.button(key="xp_next").click().run()
    assert not at.exception and not at.error
    text = texts(at)
    assert "row 0, column 2 of 14×14, channel 5" in text
    dot = next(m.value for m in at.markdown if m.value.startswith("Σ"))
    numbers = [s.strip("*().") for s in dot.split() if s.strip("*().").replace("-", "").replace(".", "").isdigit()]
    assert numbers[-2] == numbers[-1]  # the value shown = the model's own forward pass (4 decimals)
    assert "BatchNorm2d" in text and "ReLU" in text
    at.button(key="xp_prev").click().run()
    assert "row 0, column 1 of 14×14" in texts(at)


def test_a_model_without_a_conv_layer_gets_clear_messages(app):
    at = app("pages/explain.py")
    at.session_state["current_spec"] = preset_spec("neural_network")
    at.run()
    assert "`flatten` Flatten · 784" in [m.value for m in at.markdown]  # the overview still works
    view(at, "step")
    assert at.info[0].value == EN["explain.no_conv_step"]
    view(at, "attribution")
    at.selectbox(key="xp_method").set_value("gradcam").run()
    assert not at.exception and "no Conv2d layer" in at.info[0].value
    assert at.query_params["xp_method"] in ("gradcam", ["gradcam"])
    view(at, "map")
    assert at.info[0].value == EN["explain.map_needs_run"]


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A lab home with one small trained CNN run (two epochs: two frames of the map)."""
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    assert cli.main(["--preset", "cnn", "--epochs", "2", "--limit-train", "256", "--limit-test", "100",
                     "--home", str(tmp_path), "--quiet"]) == 0
    return SQLiteRunStore(tmp_path).runs()[0]["id"]


def test_a_trained_run_two_models_and_the_features_map(app, trained, tmp_path):
    at = app("pages/explain.py")
    assert at.selectbox(key="xp_model").value == trained  # the newest run by default
    assert "Weights from best.pt" in texts(at)
    view(at, "compare")
    assert at.selectbox(key="xp_other").value == "current"
    assert not at.error and sum("Prediction: " in m.value for m in at.markdown) == 2
    view(at, "map")
    assert not at.error and at.get("plotly_chart")
    assert "100 test digits" not in texts(at) and "one frame per recorded epoch (2 frames" in texts(at)
    assert EN["explain.map_pick"] in texts(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [f["name"] for f in fig["frames"]] == ["1", "2"] and fig["layout"]["sliders"][0]["active"] == 1
    assert [t["name"] for t in fig["data"]] == [*"0123456789", EN["explain.map_yours"]]
    assert len(fig["data"][-1]["x"]) == 1  # the test digit on the left lands on the last epoch's map
    at.session_state["xp_map_point"] = 3  # what a click on a point sets
    at.run()
    assert not at.exception and EN["explain.map_point_attr"] in [m.value for m in at.markdown]
    (tmp_path / "runs" / trained / REPRESENTATION_FILE).unlink()
    at.run()
    assert at.info[0].value == EN["explain.map_empty"]


def test_a_link_to_a_run_without_a_checkpoint_says_so(app, tmp_path):
    from core.training.config import TrainConfig

    store = SQLiteRunStore(tmp_path)
    run_id = store.create_run(TrainConfig().to_dict(), name="queued", status="queued", kind="job")
    at = app("pages/explain.py", xp_model=run_id)
    assert not at.exception
    assert f"Run {run_id} has no checkpoint yet" in shown(at.info[0].value)
    assert at.selectbox(key="xp_model").value == "current"


def png_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_predict_offers_the_attribution_methods_with_a_line_each(app):
    at = app("pages/predict.py", pr_input="upload", pr_method="integrated_gradients")
    digit = 255 - np.asarray(Image.fromarray(load_bundled().test_images[3].numpy()).resize((112, 112)))
    at.file_uploader(key="pr_upload").upload("digit.png", png_of(digit), "image/png").run()
    assert not at.exception and not at.error
    method = at.selectbox(key="pr_method")
    assert method.value == "integrated_gradients"  # from the link
    assert EN["explain.method_help.integrated_gradients"] in [c.value for c in at.caption]
    method.set_value("gradcam").run()
    assert at.selectbox(key="pr_cam").value == "7"  # the last conv layer of the default model
    assert EN["explain.method_help.gradcam"] in [c.value for c in at.caption]
    assert at.query_params["pr_method"] in ("gradcam", ["gradcam"])
    assert not at.exception and not at.error and at.get("plotly_chart")


def test_a_custom_builder_model_steps_its_own_convolution(app):
    from tests.core.ml.test_explain import custom_spec

    at = app("pages/explain.py", xp_view="step")
    at.session_state["current_spec"] = custom_spec()  # what the Builder made: a 3×5 kernel, stride 2, padding 1, 2
    at.run()
    at.button(key="xp_next").click().run()
    assert not at.exception and not at.error
    text = texts(at)
    assert "row 0, column 1 of 14×14, channel 0" in text and "over 15 terms" in text
    assert "LeakyReLU" in text
    at.selectbox(key="xp_layer").set_value("2").run()  # the second conv reads 6 channels
    assert "over 54 terms" in texts(at) and "ReLU" in texts(at)
