"""Session isolation: two users of one lab server never see each other's uploads, current
model, tensors or step-mode state. Two AppTest instances in one process are two sessions of
one server (shared module state, st.cache_resource / st.cache_data, one lab home), as two
browser tabs of two colleagues are. tests/e2e/test_hostile_e2e.py repeats the main checks
with two browser contexts against a real server.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.ml.modules import build_model
from core.ml.zoo import DEFAULT_PRESET, preset_spec
from core.training.config import TrainConfig

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SECRET = {"name": "SecretNet", "input_shape": [1, 28, 28],
          "layers": [{"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": 10}}]}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    return tmp_path


def session(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def checkpoint_bytes() -> bytes:
    spec = preset_spec("linear")
    buf = io.BytesIO()
    torch.save({"epoch": 3, "model_state_dict": build_model(spec).state_dict(), "optimizer_state_dict": {},
                "loss": 0.25, "config": TrainConfig(preset="linear", dataset="linear", augment=False).to_dict()}, buf)
    return buf.getvalue()


def digit_png() -> bytes:
    img = np.zeros((56, 56), np.uint8)
    img[10:46, 26:30] = 255  # a "1"
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_stay_in_their_session(home):
    alice, bob = session("pages/train.py"), session("pages/train.py")
    alice.file_uploader(key="tr_upload").upload("alice.pt", checkpoint_bytes()).run()
    assert not alice.exception and alice.success  # Alice's checkpoint is offered for evaluation / resume
    bob.run()
    assert not bob.exception and not bob.success and not bob.error
    assert bob.session_state["tr_upload"] is None and alice.session_state["tr_upload"].name == "alice.pt"

    alice_p, bob_p = session("pages/predict.py", pr_input="upload"), session("pages/predict.py", pr_input="upload")
    alice_p.file_uploader(key="pr_upload").upload("alice.png", digit_png(), "image/png").run()
    assert not alice_p.exception and alice_p.metric  # Alice gets a prediction
    bob_p.run()
    assert not bob_p.exception and not bob_p.metric and bob_p.session_state["pr_upload"] is None
    # Bob's own upload does not replace Alice's either.
    bob_p.file_uploader(key="pr_upload").upload("bob.png", np.zeros(1, np.uint8).tobytes()).run()
    assert bob_p.error and not bob_p.metric
    alice_p.run()
    assert alice_p.metric and not alice_p.error and alice_p.session_state["pr_upload"].name == "alice.png"


def test_current_model_stays_in_its_session(home):
    alice, bob = session("pages/builder.py"), session("pages/builder.py")
    alice.text_area(key="bld_json").set_value(json.dumps(SECRET)).run()
    alice.button(key="bld_json_apply").click().run()
    assert not alice.exception and not alice.error
    assert alice.session_state["current_spec"].name == "SecretNet"
    bob.run()
    assert bob.session_state["current_spec"] == preset_spec(DEFAULT_PRESET)
    assert "SecretNet" not in bob.text_area(key="bld_json").value
    # Bob edits his own model: Alice's stays as she left it (no shared, mutated spec object).
    bob.button(key="bld_remove").click().run()
    assert len(bob.session_state["current_spec"].layers) == len(preset_spec(DEFAULT_PRESET).layers) - 1
    alice.run()
    assert alice.session_state["current_spec"].name == "SecretNet"
    assert len(alice.session_state["current_spec"].layers) == 2
    # The other pages that use "the current model" follow each session's own.
    alice.switch_page("pages/export.py").run()
    bob.switch_page("pages/export.py").run()
    alice_code = "\n".join(c.value for c in alice.main.code)
    bob_code = "\n".join(c.value for c in bob.main.code)
    assert "SecretNet" in alice_code and "SecretNet" not in bob_code


def test_step_mode_state_stays_in_its_session(home):
    alice, bob = session("pages/train.py", tr_view="step"), session("pages/train.py", tr_view="step")
    for _ in range(3):
        alice.button(key="tr_step_one").click().run()
    assert not alice.exception and not alice.error
    assert alice.session_state["tr_step_trainer"].global_step == 3
    bob.run()
    assert bob.session_state["tr_step_trainer"].global_step == 0
    assert bob.session_state["tr_step_trainer"] is not alice.session_state["tr_step_trainer"]
    assert not [m for m in bob.metric if m.label]  # no "loss before/after" of Alice's steps
    bob.button(key="tr_step_one").click().run()
    alice.run()
    assert alice.session_state["tr_step_trainer"].global_step == 3
    assert bob.session_state["tr_step_trainer"].global_step == 1


def test_tensors_and_shared_links_stay_in_their_session(home):
    alice = session("pages/tensors.py", ten_view="create")
    alice.selectbox(key="ten_kind").set_value("zeros").run()
    alice.text_input(key="ten_shape").set_value("2, 5").run()
    alice.button(key="ten_create").click().run()
    assert tuple(alice.session_state["ten_x"].shape) == (2, 5)
    bob = session("pages/tensors.py", ten_view="create")
    assert tuple(bob.session_state["ten_x"].shape) == (3, 4)
    # A link Alice opens (with a model in it) changes nothing for Bob.
    from core.safe.share import encode_state

    carol = session("pages/builder.py", s=encode_state({"model": SECRET}))
    assert carol.session_state["current_spec"].name == "SecretNet"
    bob.switch_page("pages/builder.py").run()
    assert bob.session_state["current_spec"].name != "SecretNet"
