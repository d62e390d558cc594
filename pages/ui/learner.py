"""Who the learner is: the signed-in user where ``st.login`` is configured, else the name typed on the
Lessons or Train page, kept in the session, in the URL (``?learner=...``) so that a reload keeps it, and in
a cookie so that the browser is known again on its next visit (any page, any replica of the server)."""
from __future__ import annotations

import json
from urllib.parse import unquote

import streamlit as st

from core.errors import LabError
from core.runs.progress import check_learner

KEY = "learner_name"  # the validated name, for the whole session (every page)
PARAM = "learner"  # its URL parameter
COOKIE = "lab_learner"  # its cookie (the browser's own; read back through st.context.cookies)
COOKIE_DAYS = 180


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
    kept = _cookie()
    if kept:
        st.session_state[KEY] = kept
    return kept


def _cookie() -> str | None:
    """The name this browser kept from an earlier visit (checked like a typed one), or None."""
    try:
        raw = st.context.cookies.get(COOKIE)
    except (AttributeError, RuntimeError):  # no browser connection (a bare script run)
        return None
    if not raw:
        return None
    try:
        return check_learner(unquote(str(raw)))
    except LabError:
        return None


def remember(name: str | None) -> None:
    """Keep ``name`` in the browser's cookie (None: forget it). Streamlit has no API that sets a cookie,
    so a one-line script does; the name is a checked learner name (letters, digits, spaces, ``. _ - @ +``)
    written as a JSON string, so it cannot leave the string it is in."""
    if name is None:
        script = f"document.cookie = '{COOKIE}=; path=/; max-age=0; SameSite=Lax';"
    else:
        value = json.dumps(check_learner(name))
        script = (f"document.cookie = '{COOKIE}=' + encodeURIComponent({value}) + "
                  f"'; path=/; max-age={COOKIE_DAYS * 86400}; SameSite=Lax';")
    st.html(f"<script>{script}</script>", unsafe_allow_javascript=True, width="content")


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
    remember(st.session_state[KEY])
    return None


def sign_out() -> None:
    st.session_state.pop(KEY, None)
    if PARAM in st.query_params:
        del st.query_params[PARAM]
    remember(None)
