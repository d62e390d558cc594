"""Every text the Home, Tensors, Autograd, Data, Profiler, Export, Predict and Explain pages show, after every
example button, reads right: in Chinese no English sentence outside code, in both languages no
characters eaten by Markdown, no escapes or backticks shown literally in tables (tests/textcheck.py).

To cover another page, add its clicks to ``PAGES``."""
import pytest

import pages.ui.text
from core.i18n import CATALOGUE, LANGUAGES
from core.ml.zoo import PRESETS
from tests.textcheck import text_problems

# page -> what a learner clicks there: a button key, or (widget key, value) for a view or a choice.
PAGES = {
    "pages/home.py": [],
    "pages/tensors.py": [f"ten_ex_T{i}" for i in range(1, 8)] + [("ten_view", v) for v in
                                                                  ("create", "ops", "broadcast", "expr")],
    "pages/autograd.py": [f"ag_ex_A{i}" for i in range(1, 8)] + [("ag_view", "graph")],
    "pages/data.py": [f"data_ex_D{i}" for i in range(1, 5)] + [("data_view", v) for v in
                                                                ("samples", "balance", "batch")],
    "pages/profiler.py": ["pf_p1", "pf_run"],
    "pages/export.py": [("ex_example", e) for e in ("E1", "E2", "E3")]
    + [("ex_formats", ["state_dict", "torch_export"]), "ex_run"],
    "pages/predict.py": [("pr_input", "upload"), ("pr_input", "draw")],
    "pages/explain.py": [("xp_view", v) for v in ("step", "attribution", "compare", "map")],
}


@pytest.fixture
def in_language(app, monkeypatch):
    """The page in ``lang``. AppTest calls a select box's format function outside the script run, where
    the page's language is not known: that reads the language the test asked for."""
    def make(page: str, lang: str):
        monkeypatch.setattr(pages.ui.text, "lang", lambda: lang)
        return app(page, lang=LANGUAGES[lang])

    return make


def click(at, action) -> None:
    if isinstance(action, str):
        at.button(key=action).click().run()
        return
    key, value = action
    widget = next(w for kind in ("button_group", "selectbox", "multiselect", "radio")
                  for w in getattr(at, kind) if w.key == key)
    widget.set_value(value).run()


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("page", list(PAGES))
def test_every_text_reads_right(in_language, page, lang):
    at = in_language(page, lang)
    problems = [f"(opened) {p}" for p in text_problems(at, lang)]
    for action in PAGES[page]:
        click(at, action)
        assert not at.exception, (action, [e.value for e in at.exception])
        problems += [f"({action}) {p}" for p in text_problems(at, lang)]
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_home_names_every_zoo_model_in_both_languages():
    """Home's zoo table (and the Builder's Preset box) show ``zoo.title.<key>`` in the page's language."""
    for key in PRESETS:
        assert f"zoo.title.{key}" in CATALOGUE["en"] and f"zoo.title.{key}" in CATALOGUE["zh"], key


def test_the_home_table_shows_flags_without_markup(app):
    """The environment table is not Markdown: no backslash escapes, no code-span backticks (amx_bf16)."""
    at = app()
    env = at.dataframe[1].value
    for value in env.iloc[:, 1]:
        assert "\\" not in value and "`" not in value, value
