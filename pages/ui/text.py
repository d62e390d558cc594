"""UI text in the page's language, and user text shown literally (never as Markdown)."""
from __future__ import annotations

import streamlit as st

from core.errors import Code, LabError, Message, code_span, escape_markdown
from core.i18n import DEFAULT_LANGUAGE, LANGUAGES, t


def lang() -> str:
    value = st.session_state.get("lang", DEFAULT_LANGUAGE)
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def plain(text) -> str:
    """Text shown literally where Streamlit renders Markdown: user input and error messages
    (which quote user input) must not become bold, links or images."""
    return escape_markdown(str(text))


def tr(key: str, **values) -> str:
    """UI text in the current language; inserted values are shown literally (see ``plain``), an
    error in the page's language (``tr_error``), ``core.errors.Code`` as code."""
    return t(key, lang(), **{k: _shown(v) for k, v in values.items()})


def _shown(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, BaseException):
        return tr_error(value)
    if isinstance(value, Message):
        return tr_message(value)
    if isinstance(value, Code):
        return code_span(value)
    return plain(value)


def tr_error(exc: BaseException) -> str:
    """An exception as the page shows it: a ``LabError`` in the page's language (its code parts as
    code), anything else literally."""
    if isinstance(exc, LabError):
        return exc.message(lang(), markdown=True)
    return plain(str(exc))


def tr_message(message: Message, markdown: bool = True) -> str:
    """A ``core.errors.Message`` (a note an engine returned) in the page's language: code as code
    spans for Markdown, or bare (``markdown=False``) for a table cell, which shows text literally."""
    return message.text(lang(), markdown=markdown)
