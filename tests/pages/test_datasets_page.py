"""AppTest tests for the learner's own datasets (issue 21): upload on the Data page, see it, train on it
from the Train page, give the Builder its input shape, delete it; hostile files get a clear message."""
from __future__ import annotations

import pytest

from core.i18n import CATALOGUE
from core.ml.userdata import list_keys
from tests.datafiles import shapes_zip, zip_bomb
from tests.pages.conftest import shown
from tests.pages.test_train_page import wait_for

EN = CATALOGUE["en"]
pytestmark = pytest.mark.slow


def _upload(at, name: str, data: bytes, size: int = 16):
    at.file_uploader(key="data_up_file").upload(name, data, "application/zip").run()
    at.text_input(key="data_up_name").set_value("shapes").run()
    at.selectbox(key="data_up_size").set_value(size).run()
    at.button(key="data_up_add").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_upload_shows_the_dataset_and_trains_on_it(app):
    at = _upload(app("pages/data.py"), "shapes.zip", shapes_zip(per_class=20))
    key = at.selectbox(key="data_ds").value
    assert key.startswith("shapes-") and list_keys() == [key] and not at.error
    assert any(key in shown(s.value) for s in at.success)
    captions = " ".join(c.value for c in at.caption)
    assert "48 training" in shown(captions) or "48" in captions  # the summary: train / test split
    assert "(1, 16, 16)" in shown(captions) and "3 classes" in shown(captions)
    assert at.get("plotly_chart"), "the sample grid"
    at.segmented_control(key="data_view").set_value("balance").run()
    assert not at.exception and at.get("plotly_chart")

    at.switch_page("pages/train.py").run()  # the Train page offers it; choosing it fits the model
    at.selectbox(key="tr_dataset").set_value(key).run()
    assert not at.exception and not at.error
    assert at.radio(key="tr_source").value == "current" and at.number_input(key="tr_val_size").value == 5
    at.number_input(key="tr_epochs").set_value(1).run()
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    run_id = at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"]
    run = wait_for(at, run_id)
    assert run["status"] == "completed", run.get("error")
    assert run["config"]["dataset"] == key and run["last_metrics"].get("test_acc") is not None
    at.run()  # the evaluation: accuracy, the confusion matrix and per-class accuracy by the dataset's class names
    assert not at.exception and not at.error
    assert [m for m in at.metric if m.label == EN["train.test_acc"]]
    per_class = next(d.value for d in at.dataframe if EN["train.class"] in d.value.columns)
    assert list(per_class[EN["train.class"]]) == ["circle", "square", "triangle"]

    at.switch_page("pages/builder.py").run()  # the Builder takes its input shape
    at.button(key="bld_empty").click().run()
    at.text_input(key="bld_shape").set_value("3, 32, 32").run()
    at.button(key="bld_ds_shape").click().run()
    assert at.text_input(key="bld_shape").value == "1, 16, 16" and not at.exception

    at.switch_page("pages/data.py").run()
    at.button(key="data_delete").click().run()
    assert list_keys() == [] and at.selectbox(key="data_ds").value == "digits8k" and not at.exception


def test_another_session_sees_it_only_by_link(app):
    at = _upload(app("pages/data.py"), "shapes.zip", shapes_zip(per_class=5))
    key = at.selectbox(key="data_ds").value
    other = app("pages/data.py")
    assert key not in other.selectbox(key="data_ds").options
    linked = app("pages/data.py", data_ds=key)
    assert linked.selectbox(key="data_ds").value == key and not linked.error
    assert linked.get("button") and not [b for b in linked.button if b.key == "data_delete"]  # not theirs to delete


@pytest.mark.parametrize("name, data, words", [
    ("bomb.zip", zip_bomb(mb=5), "zip bomb"),
    ("one.zip", shapes_zip(per_class=5, classes=("circle",)), "at least 2 classes"),
    ("cut.zip", shapes_zip(per_class=5)[:300], "truncated"),
])
def test_hostile_uploads_get_a_clear_message(app, name, data, words):
    at = _upload(app("pages/data.py"), name, data)
    assert at.error and words in shown(at.error[0].value) and list_keys() == []
    assert at.selectbox(key="data_ds").value == "digits8k"


def test_a_csv_regression_is_shown_and_fitted_from_the_train_page(app):
    from tests.datafiles import regression_csv

    at = app("pages/data.py")
    at.file_uploader(key="data_up_file").upload("houses.csv", regression_csv(), "text/csv").run()
    assert at.selectbox(key="data_up_target").options == ["a", "b", "c", "y"]
    assert at.selectbox(key="data_up_target").value == "y"
    at.text_input(key="data_up_name").set_value("houses").run()
    at.button(key="data_up_add").click().run()
    assert not at.exception and not at.error
    key = at.selectbox(key="data_ds").value
    assert key.startswith("houses-")
    rows = at.dataframe[0].value
    assert list(rows.columns) == ["a", "b", "c", "y"] and len(rows) == 20

    at.switch_page("pages/train.py").run()
    at.selectbox(key="tr_dataset").set_value(key).run()
    at.number_input(key="tr_epochs").set_value(100).run()
    at.selectbox(key="tr_optimizer").set_value("adam").run()
    at.number_input(key="tr_lr").set_value(0.02).run()
    assert not at.error and at.radio(key="tr_source").value == "current"
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    run_id = at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"]
    run = wait_for(at, run_id)
    assert run["status"] == "completed", run.get("error")
    at.run()
    mse = [m for m in at.metric if m.label == EN["train.mse"]]
    assert mse and float(mse[0].value) < 2.0 and not at.exception  # y has variance ~14: it fitted the plane


def test_csv_with_text_columns_is_refused_by_name(app):
    from tests.datafiles import regression_csv

    at = app("pages/data.py")
    data = regression_csv(extra={"city": ["Paris", "Rome"] * 40})
    at.file_uploader(key="data_up_file").upload("t.csv", data, "text/csv").run()
    at.selectbox(key="data_up_target").set_value("y").run()
    at.button(key="data_up_add").click().run()
    assert at.error and "city" in shown(at.error[0].value) and "not numbers" in shown(at.error[0].value)
