"""The lab's UI text in English and Simplified Chinese, read from one data file per language.

``en.toml`` and ``zh.toml`` hold every string the pages show, error messages included
(keys ``err.<code>``, filled from a ``core.errors.LabError``'s code and parameters). A
translator edits those files, not Python. Both files must hold the same keys with the
same ``{placeholders}`` (a test compares them). A flat key/value file per language beats
gettext here: no build step for .mo files, and the tests can compare the languages directly.
"""
from __future__ import annotations

import string
import tomllib
from pathlib import Path

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT_LANGUAGE = "en"
FOLDER = Path(__file__).resolve().parent


def _load(lang: str) -> dict[str, str]:
    with open(FOLDER / f"{lang}.toml", "rb") as fh:
        data = tomllib.load(fh)
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:  # a dotted key without quotes makes a TOML table: say which
        raise ValueError(f"{lang}.toml: keys must be quoted strings mapping to text; check {', '.join(bad[:5])}")
    return data


CATALOGUE: dict[str, dict[str, str]] = {lang: _load(lang) for lang in LANGUAGES}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def has(key: str) -> bool:
    return key in CATALOGUE[DEFAULT_LANGUAGE]


def t(key: str, lang: str = DEFAULT_LANGUAGE, **values) -> str:
    """The text for ``key`` in ``lang`` (English when the language is unknown)."""
    table = CATALOGUE.get(lang, CATALOGUE[DEFAULT_LANGUAGE])
    text = table.get(key)
    if text is None:
        raise KeyError(f"no UI text for {key!r}")
    return text.format(**values) if values else text
