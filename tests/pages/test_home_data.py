"""AppTest tests for the frame, Home and Data pages (whole app: app.py + navigation)."""
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
