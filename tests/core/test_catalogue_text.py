"""Every UI text of the catalogue reads right: Markdown eats none of its characters, and the Chinese
catalogue has no English sentences outside code. The page tests check the same on rendered pages."""
import pytest

from core.i18n import CATALOGUE
from core.ml.zoo import PRESETS
from tests.textcheck import _PLACEHOLDER, english_sentences, markdown_losses

# Texts of pages another change converts (issue 15's Builder/Train part): each must pass once that
# change lands, so it is marked strict (the test then fails until the mark is removed).
PENDING_ZH: dict[str, str] = {}


def test_the_checker_finds_what_markdown_eats():
    assert markdown_losses("2*w0*w1 + w1*cos(w0)")  # "2w0w1" in italics
    assert markdown_losses("A Dataset with __len__ and __getitem__")  # a bold "len"
    assert markdown_losses("Linear(16*14*14, 10)")
    assert markdown_losses("amx\\_bf16")  # a visible backslash outside Markdown
    assert not markdown_losses("`__len__` and `2*w0*w1`, state_dict, x * 2 + sin(x), x**3 + 5*x")
    assert english_sentences("float64 is kept") and english_sentences("int64 + float32 gives float32 (type promotion)")
    assert not english_sentences("保留了 `float64`，用 `torch.save(model.state_dict())` 保存")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_markdown_eats_nothing_in_the_catalogue(lang):
    lost = {key: problems for key, text in CATALOGUE[lang].items()
            if (problems := markdown_losses(text, template=True))}
    assert not lost, lost


def test_no_english_sentences_in_the_chinese_catalogue():
    english = {}
    for key, text in CATALOGUE["zh"].items():
        if key in PENDING_ZH:
            continue
        found = english_sentences(_PLACEHOLDER.sub("X", text.replace("{{", "(").replace("}}", ")")))
        if found:
            english[key] = found
    assert not english, english


@pytest.mark.parametrize("key", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=why))
                                 for k, why in PENDING_ZH.items()])
def test_pending_chinese_texts(key):
    text = CATALOGUE["zh"][key]
    assert not english_sentences(_PLACEHOLDER.sub("X", text.replace("{{", "(").replace("}}", ")")))


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("key", [k for k, p in PRESETS.items() if p.note])
def test_preset_notes_keep_their_characters(key, lang):
    """A preset's note is catalogue text (``zoo.note.<key>``) that Markdown shows whole: M7's
    `Linear(16*14*14, 10)` is code, not "Linear(161414, 10)" in italics."""
    text = CATALOGUE[lang][PRESETS[key].note]
    assert not markdown_losses(text), text
    if key == "cnn_rgb16":
        assert "`Linear(16*14*14, 10)`" in text
