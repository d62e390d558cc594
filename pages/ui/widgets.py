"""Widgets with lab conventions: choices kept in the URL as stable ids, code panels."""
from __future__ import annotations

import streamlit as st

from pages.ui.text import tr


def url_choice(widget, label: str, options: list[str], key: str, default: str, format_func,
               keep_default: bool = False, stale: str | None = None, **kwargs):
    """A choice widget whose value lives in the URL as a stable id, e.g. ``?data_view=balance``.

    Streamlit's own ``bind="query-params"`` writes the *formatted* label into the URL,
    which changes with the UI language, so a link made in one language (or a reload after
    switching language) would lose the choice. Widgets with translated labels sync
    through ``st.query_params`` here instead; the rest use ``bind="query-params"``.

    ``keep_default`` keeps the value in the URL even when it is the default: a default that
    moves (Predict's "newest run") must not decide what a shared link shows later.
    ``stale`` is a tr() key with ``{value}``: shown as a warning when the URL asks for an
    option that is not here (a deleted run), until the user picks another value.
    """
    notice = f"{key}__stale"
    if key not in st.session_state:
        wanted = st.query_params.get(key)
        st.session_state.pop(notice, None)
        if wanted in options:
            st.session_state[key] = wanted
        else:
            st.session_state[key] = default
            if stale and wanted is not None:
                st.session_state[notice] = str(wanted)[:80]
    elif st.session_state[key] not in options:  # an option gone since the last run (a deleted run)
        st.session_state[key] = default
    if notice in st.session_state:
        if st.session_state.get(key) in (default, None):
            st.warning(tr(stale, value=st.session_state[notice]))
        else:
            del st.session_state[notice]
    value = widget(label, options, key=key, format_func=format_func, **kwargs)
    if value is None:  # a widget recreated after a hidden run can come back empty
        value = default
    if value == default and not keep_default:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != value:
        st.query_params[key] = value
    return value


def code_block(code: str) -> None:
    with st.expander(tr("data.code")):
        st.code(code, language="python")
