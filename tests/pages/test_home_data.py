"""AppTest tests for the frame, Home and Data pages (whole app: app.py + navigation)."""
import json

import pytest

from core.i18n import CATALOGUE

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    return "\n".join(str(p) for p in parts)


def test_home_shows_cards_environment_and_zoo(app):
    at = app()
    assert at.title[0].value == EN["home.title"]
    assert EN["home.card.data"] in texts(at)
    zoo = at.dataframe[0].value
    assert "neural_network" in set(zoo.iloc[:, 0]) and 669_706 in set(zoo.iloc[:, -1])
    assert {"lab_cnn", "lab_fast"} <= set(zoo.iloc[:, 0])  # the lab's CNNs: the previous default and the default
    env = at.dataframe[1].value
    assert "torch" in set(env.iloc[:, 0])
    # The sidebar's global controls
    assert at.number_input(key="seed").value == 0
    assert at.button_group(key="lang").value == "en"


def test_home_zoo_has_the_tutorials_m8_and_titles_in_the_pages_language(app):
    at = app(lang="简体中文")
    zoo = at.dataframe[0].value.set_index(ZH["home.zoo.col.preset"])
    assert zoo.loc["resblock_net", ZH["home.zoo.col.params"]] == 5_034  # the tutorial's NetWithResBlock
    assert zoo.loc["lab_cnn", ZH["home.zoo.col.title"]] == ZH["zoo.title.lab_cnn"] != EN["zoo.title.lab_cnn"]


def test_language_switch_translates_and_survives_page_change(app):
    at = app()
    at.button_group(key="lang").set_value("zh").run()
    # AppTest applies a URL-bound widget's new value from the following run on (a
    # browser applies it at once: tests/e2e covers that).
    at.run()
    assert at.title[0].value == ZH["home.title"]
    at.switch_page("pages/data.py").run()
    assert not at.exception
    assert at.title[0].value == ZH["data.title"]
    assert at.button_group(key="lang").value == "zh"


def test_language_from_the_url(app):
    at = app("pages/data.py", lang="简体中文")
    assert at.title[0].value == ZH["data.title"]
    assert at.button(key="data_ex_D1").label == ZH["data.example.D1"]


@pytest.mark.parametrize("view", ["samples", "balance", "normalize", "augment", "batch", "custom"])
def test_every_data_view_renders(app, view):
    at = app("pages/data.py")
    at.button_group(key="data_view").set_value(view).run()
    assert not at.exception and not at.error
    assert at.title[0].value == EN["data.title"]


def test_data_examples_one_click(app):
    at = app("pages/data.py")
    at.button(key="data_ex_D1").click().run()
    assert at.button_group(key="data_view").value == "custom"
    batches = at.dataframe[0].value
    assert list(batches.iloc[:, 1]) == ["(32, 10)"] * 3 + ["(4, 10)"]
    at.button(key="data_ex_D2").click().run()
    table = at.dataframe[0].value.set_index("step")
    assert table.loc["Normalize((0.5,), (0.5,))", "min"] == -1.0
    assert table.loc["Normalize((0.1307,), (0.3081,))", "max"] == pytest.approx(2.8215, abs=1e-3)
    at.button(key="data_ex_D3").click().run()
    assert at.selectbox(key="data_aug").value == "imagenet"
    after = at.dataframe[0].value.set_index("tensor").loc["after"]
    assert after["shape"] == "(8, 3, 28, 28)" and after["min"] < -2
    assert not at.exception


def test_batch_view_and_seed(app):
    at = app("pages/data.py", data_view="batch")
    assert at.button_group(key="data_view").value == "batch"
    at.number_input(key="data_bs").set_value(10).run()
    shapes = at.dataframe[0].value
    assert shapes.iloc[0, 1] == "(10, 1, 28, 28)" and shapes.iloc[1, 1] == "(10,)"


def test_unavailable_dataset_shows_error_and_falls_back(app):
    at = app("pages/data.py")
    at.selectbox(key="data_ds").set_value("mnist").run()
    assert not at.exception
    assert at.error and "MNIST" in at.error[0].value and "downloads are off" in at.error[0].value
    assert "7,000 train" in texts(at)  # the bundled digits are shown instead


def test_invalid_url_values_fall_back_to_defaults(app):
    at = app("pages/data.py", data_view="../../etc/passwd", data_cls="__class__", seed="-5")
    assert not at.exception
    assert at.button_group(key="data_view").value == "samples"
    assert at.selectbox(key="data_cls").value == "all"


def test_normalization_histograms_carry_few_points(app):
    """D2 bins on the server: the chart holds 3 x 60 bars, not every pixel of 2,000 images (4.7 million
    values the browser took 24-32 s to bin)."""
    at = app("pages/data.py")
    at.button(key="data_ex_D2").click().run()
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    points = sum(len(trace.get("x", [])) + len(trace.get("y", [])) for trace in spec["data"])
    assert [trace["type"] for trace in spec["data"]] == ["bar"] * 3 and points == 360
    assert len(charts[0].proto.spec) < 50_000


def test_mnist_copied_in_is_used_without_a_restart(app, tmp_path, monkeypatch):
    from tests.core.ml.test_data import write_mnist

    root = tmp_path / "data-root"
    monkeypatch.setenv("PYTORCH_LAB_DATA_ROOT", str(root))
    at = app("pages/data.py")
    at.selectbox(key="data_ds").set_value("mnist").run()
    assert at.error and "downloads are off" in at.error[0].value
    write_mnist(root, n_train=40, n_test=20)  # the user copies the raw files in while the lab runs
    at.run()
    assert not at.error and not at.exception
    assert "40 train and 20 test" in texts(at)


def test_d4_times_the_dataloader_workers_here(app):
    at = app("pages/data.py")
    at.button(key="data_ex_D4").click().run()
    assert not at.exception and not at.error
    assert at.button_group(key="data_view").value == "workers"
    table = at.dataframe[0].value
    assert list(table.iloc[:, 1]) == [0, 2, 0, 2]  # num_workers, for two per-sample pipelines
    epochs = table[EN["data.workers.col.epoch_s"]]
    assert (epochs > 0).all()
    verdicts = [m.value for m in at.markdown if "num_workers=" in m.value]
    assert len(verdicts) == 2
    for verdict, rows in zip(verdicts, (table.iloc[:2], table.iloc[2:]), strict=True):
        best = int(rows.iloc[:, 1].iloc[int(rows[EN["data.workers.col.epoch_s"]].to_numpy().argmin())])
        assert f"`num_workers={best}`" in verdict  # the verdict is the measured one
        assert f"{rows[EN['data.workers.col.epoch_s']].min():.2f} s" in verdict
