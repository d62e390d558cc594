"""Who the learner is: the signed-in user where ``st.login`` is configured, else the name typed on the
Lessons page, kept in the session and in the URL (``?learner=...``) so that a reload keeps it."""
from __future__ import annotations

import streamlit as st

from core.errors import LabError
from core.runs.progress import check_learner

KEY = "learner_name"  # the validated name, for the whole session (every page)
PARAM = "learner"  # its URL parameter


def signed_in() -> str | None:
    """The signed-in user's email (or name) when Streamlit's authentication is configured and used."""
    try:
        user = st.user
        if not user.get("is_logged_in"):
            return None
        name = user.get("email") or user.get("name")
        return check_learner(str(name)[:40]) if name else None
    except (LabError, AttributeError, KeyError, RuntimeError):  # no auth configured, or an odd identity
        return None


def current() -> str | None:
    """The learner of this session, or None when nobody has given a name yet."""
    user = signed_in()
    if user:
        return user
    name = st.session_state.get(KEY)
    if name:
        return str(name)
    wanted = st.query_params.get(PARAM)
    if wanted:
        try:
            st.session_state[KEY] = check_learner(wanted)
        except LabError:
            return None
        return st.session_state[KEY]
    return None


def keep_in_url() -> None:
    """Put the learner's name in the URL (a reload, or a link the learner keeps, then knows them)."""
    name = current()
    if name and not signed_in() and st.query_params.get(PARAM) != name:
        st.query_params[PARAM] = name


def set_name(name: str) -> LabError | None:
    """Take a typed name: None when it is valid (and now the learner), else why not."""
    try:
        st.session_state[KEY] = check_learner(name)
    except LabError as exc:
        return exc
    st.query_params[PARAM] = st.session_state[KEY]
    return None


def sign_out() -> None:
    st.session_state.pop(KEY, None)
    if PARAM in st.query_params:
        del st.query_params[PARAM]
