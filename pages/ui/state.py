"""Session-wide state the pages share: the run store, the global seed, extras for the share link."""
from __future__ import annotations

import streamlit as st

SEED_MAX = 2**31 - 1


@st.cache_resource
def _store(home: str):
    from core.runs.store import RunStore

    return RunStore(home)


def lab_store():
    """The lab's run store (one per lab home; the store keeps one SQLite connection per thread)."""
    from core.settings import load_settings

    return _store(str(load_settings().home))


def seed() -> int:
    value = st.session_state.get("seed", 0)
    return int(value) if isinstance(value, (int, float)) and 0 <= value <= SEED_MAX else 0


def shared_extras() -> dict:
    """Non-widget state pages add to the share link (e.g. selected runs): {name: JSON value}."""
    return st.session_state.setdefault("share_extras", {})
