"""UI text in the page's language, and user text shown literally (never as Markdown)."""
from __future__ import annotations

import re

import streamlit as st

from core.i18n import DEFAULT_LANGUAGE, LANGUAGES, t


def lang() -> str:
    value = st.session_state.get("lang", DEFAULT_LANGUAGE)
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text) -> str:
    """Text shown literally where Streamlit renders Markdown: user input and error messages
    (which quote user input) must not become bold, links or images."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def tr(key: str, **values) -> str:
    """UI text in the current language; inserted values are shown literally (see ``plain``)."""
    return t(key, lang(), **{k: v if isinstance(v, (int, float)) else plain(v) for k, v in values.items()})
