"""AppTest tests for the Train page: examples fill the form, a tiny run finishes, step mode, uploads."""
import io
import time

import pytest
import torch

from core.i18n import CATALOGUE

EN = CATALOGUE["en"]
pytestmark = pytest.mark.slow


@pytest.fixture
def train(app):
    return app("pages/train.py")


def wait_for(at, run_id: str, timeout: float = 120) -> dict:
    from pages.ui.state import lab_store

    deadline = time.time() + timeout
    while time.time() < deadline:
        run = lab_store().get_run(run_id)
        if run["status"] in ("completed", "failed", "stopped"):
            return run
        time.sleep(0.5)
    raise AssertionError("run did not finish")


def test_examples_fill_the_form(train):
    at = train
    at.button(key="tr_ex_R1").click().run()
    assert at.selectbox(key="tr_dataset").value == "linear"
    assert at.selectbox(key="tr_optimizer").value == "sgd" and at.number_input(key="tr_epochs").value == 100
    at.button(key="tr_ex_R3").click().run()
    assert at.selectbox(key="tr_preset").value == "cnn" and at.number_input(key="tr_batch_size").value == 64
    assert not at.exception


def test_the_form_holds_the_default_recipe_and_the_page_says_selection_uses_validation(train):
    at = train
    assert EN["train.honest"] in [c.value for c in at.caption]
    assert at.number_input(key="tr_val_size").value == 500 and at.number_input(key="tr_ema").value == 0.98
    assert at.checkbox(key="tr_tta").value and at.checkbox(key="tr_drop_last").value
    assert at.selectbox(key="tr_precision").value == "auto" and at.selectbox(key="tr_scheduler").value == "linear"
    at.button(key="tr_ex_R1").click().run()  # the tutorials' recipes keep their plain settings
    assert not at.checkbox(key="tr_tta").value and at.number_input(key="tr_ema").value == 0.0
    assert at.selectbox(key="tr_precision").value == "fp32" and not at.error


def test_tiny_run_finishes_and_shows_charts(train):
    at = train
    at.button(key="tr_ex_R1").click().run()
    at.number_input(key="tr_epochs").set_value(20).run()
    at.text_input(key="tr_name").set_value("tiny R1").run()
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    run_id = at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"]
    run = wait_for(at, run_id)
    assert run["status"] == "completed", run.get("error")
    at.run()
    assert not at.exception
    assert "completed" in at.get("progress")[0].proto.text
    assert not at.error


def test_step_mode(train):
    at = train
    at.radio(key="tr_source").set_value("preset").run()
    at.selectbox(key="tr_preset").set_value("cnn").run()
    at.button_group(key="tr_view").set_value("step").run()
    at.button(key="tr_step_one").click().run()
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert EN["train.loss_before"] in labels and EN["train.loss_after"] in labels
    assert at.session_state["tr_step_trainer"].global_step == 1


@pytest.mark.parametrize("payload,message", [
    (b"not a checkpoint", "not"),
    (b"", "empty"),
])
def test_bad_checkpoint_upload(train, payload, message):
    at = train
    at.file_uploader(key="tr_upload").upload("x.pt", payload, "application/octet-stream").run()
    assert not at.exception
    assert at.error and message in at.error[0].value.lower()


def test_pickle_payload_is_refused(train, tmp_path):
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save({"epoch": 1, "model_state_dict": Evil(), "optimizer_state_dict": {}, "loss": 0.0}, buf,
               pickle_module=pickle)
    at = train
    at.file_uploader(key="tr_upload").upload("evil.pt", buf.getvalue(), "application/octet-stream").run()
    assert at.error and not marker.exists()


def test_precision_ab_starts_fp32_and_the_reduced_precision(train):
    from pages.ui.state import lab_store
    from pages.ui.train_views import fastest_reduced

    reduced = fastest_reduced()
    at = train
    if reduced is None:
        assert at.button(key="tr_ab").disabled
        return
    at.button(key="tr_ab").click().run()
    assert not at.exception and not at.error
    ids = at.query_params["run"][0].split(",") if isinstance(at.query_params["run"], list) else \
        at.query_params["run"].split(",")
    runs = [lab_store().get_run(r) for r in ids]
    assert [r["config"]["precision"] for r in runs] == ["fp32", reduced]
    assert runs[0]["config"]["seed"] == runs[1]["config"]["seed"]
    from pages.ui.train_views import lab_jobs

    for r in ids:  # no need to train them to the end here
        lab_jobs().stop(r)
        lab_jobs().wait(r, timeout=120)


def test_share_link_carries_the_training_config(app):
    from urllib.parse import parse_qs, urlparse

    at = app("pages/train.py")
    at.button(key="tr_ex_R2").click().run()
    at.number_input(key="tr_lr").set_value(0.004).run()
    url = at.sidebar.code[0].value
    token = parse_qs(urlparse(url).query)["s"][0]
    fresh = app("pages/train.py", s=token)
    assert fresh.number_input(key="tr_lr").value == pytest.approx(0.004)
    assert fresh.selectbox(key="tr_dataset").value == "synthetic"
    assert fresh.selectbox(key="tr_preset").value == "neural_net"
    tampered = app(None, s=token[:-6] + "AAAAAA")  # the notice shows on the first page the link opens
    assert any("ignored" in w.value for w in tampered.sidebar.warning)


def test_a_start_click_validates_the_config_once(train, monkeypatch):
    """The form's config is validated once when the form changes; Start, JobManager.start and the
    rerun after the click use that config as it is (the worker process validates its own copy)."""
    from core.ml.spec import ModelSpec
    from core.training.config import TrainConfig
    from pages.ui.train_views import lab_jobs

    counts = {"config": 0, "spec": 0}

    class Counting:
        def __init__(self, inner, key):
            self.inner, self.key = inner, key

        def validate_python(self, *args, **kwargs):
            counts[self.key] += 1
            return self.inner.validate_python(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(TrainConfig, "__pydantic_validator__", Counting(TrainConfig.__pydantic_validator__, "config"))
    monkeypatch.setattr(ModelSpec, "__pydantic_validator__", Counting(ModelSpec.__pydantic_validator__, "spec"))
    at = train
    at.button(key="tr_ex_R1").click().run()  # the form changes: its config is made (and validated) once
    assert counts == {"config": 1, "spec": 0}
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    assert counts == {"config": 1, "spec": 0}
    run_id = at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"]
    lab_jobs().stop(run_id)
    lab_jobs().wait(run_id, timeout=120)
