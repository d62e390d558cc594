"""Session-wide state the pages share: the run store, the global seed, extras for the share link."""
from __future__ import annotations

import streamlit as st

SEED_MAX = 2**31 - 1


@st.cache_resource(show_spinner=False)
def _store(home: str, url: str):
    from core.runs.store import open_store

    return open_store(home=home, url=url)


def lab_store():
    """The lab's run store (one per lab home and store URL; it keeps one connection per thread).

    A store that cannot be opened (an unreachable PostgreSQL, a bad ``PYTORCH_LAB_STORE_URL``)
    shows its translated error and stops the page here; the next run tries again.
    """
    from core.runs.store import StoreError
    from core.settings import load_settings
    from pages.ui.text import tr_error

    settings = load_settings()
    try:
        return _store(str(settings.home), settings.store_url or "")
    except StoreError as exc:
        st.error(tr_error(exc), icon=":material/database:")
        st.stop()


def seed() -> int:
    value = st.session_state.get("seed", 0)
    return int(value) if isinstance(value, (int, float)) and 0 <= value <= SEED_MAX else 0


def shared_extras() -> dict:
    """Non-widget state pages add to the share link (e.g. selected runs): {name: JSON value}."""
    return st.session_state.setdefault("share_extras", {})
