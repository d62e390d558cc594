"""The share link: apply the state a link carries once per session, and build the link of this view."""
from __future__ import annotations

import streamlit as st

from pages.ui.state import shared_extras
from pages.ui.text import tr
from pages.ui.train_form import RANGES as FORM_RANGES
from pages.ui.train_form import SHARED as TRAIN_FIELDS

SHARE_PARAM = "s"  # the token's URL parameter (core.share.PARAM; share_url leaves an old one out)


def _train_form_state() -> dict | None:
    """The Train form's values when the user has touched it (shared so a colleague re-trains the same run)."""
    if "tr_dataset" not in st.session_state:
        return None
    return {f: st.session_state[f"tr_{f}"] for f in TRAIN_FIELDS if f"tr_{f}" in st.session_state}


def _restore_train_form(values) -> None:
    """Validate shared Train form values as a real TrainConfig before putting them in the form."""
    from core.errors import Code
    from core.safe.share import ShareError
    from core.training.config import TrainConfig

    if not isinstance(values, dict) or set(values) - set(TRAIN_FIELDS):
        raise ShareError("share.train_damaged")
    source = values.get("source", "preset")
    if source not in ("current", "preset"):
        raise ShareError("share.train_damaged")
    config = {k: v for k, v in values.items() if k not in ("source",)}
    TrainConfig.from_dict(config)  # validated as it is made
    for key, (lo, hi) in FORM_RANGES.items():  # the form's widgets would clamp anything outside silently
        if key in values and not lo <= values[key] <= hi:
            raise ShareError("share.train_range", field=Code(key), value=values[key], lo=lo, hi=hi)
        if isinstance(lo, float) and key in values:
            values = {**values, key: float(values[key])}
    for key, value in values.items():
        st.session_state[f"tr_{key}"] = value


def restore_shared_state() -> None:
    """Once per session: apply the state a share link carries (``?s=...``), or say why not."""
    from core.ml.modules import checked_spec
    from core.ml.spec import ModelSpec, SpecError
    from core.ml.zoo import DEFAULT_PRESET, preset_spec
    from core.safe.share import ShareError, decode_state

    if st.session_state.get("share_restored"):
        return
    st.session_state["share_restored"] = True
    token = st.query_params.get(SHARE_PARAM)
    if token is None:
        return
    del st.query_params[SHARE_PARAM]  # the URL then shows live state; the share control makes a new link
    try:
        state = decode_state(token)
        if "model" in state:
            st.session_state["current_spec"] = checked_spec(ModelSpec.parse(state["model"]))
        if "train" in state:
            _restore_train_form(state["train"])
        extras = {k: v for k, v in state.items() if k not in ("model", "train") and isinstance(k, str)
                  and len(k) <= 40}
        shared_extras().update(extras)
        st.session_state["shared_in"] = extras  # what the link brought, for pages to apply once
    except (ShareError, SpecError, ValueError) as exc:
        st.session_state["share_notice"] = exc  # shown in the page's language by share_control
        st.session_state.setdefault("current_spec", preset_spec(DEFAULT_PRESET))


def share_control() -> None:
    """'Share link' in the sidebar: the full URL of this page and its state, with a copy button."""
    from core.ml.zoo import DEFAULT_PRESET, preset_spec
    from core.safe.share import MAX_URL, ShareError, share_url

    if st.session_state.get("share_notice"):
        st.sidebar.warning(tr("share.ignored", reason=st.session_state.pop("share_notice")))
    with st.sidebar.popover(tr("share.button"), icon=":material/link:", width="stretch"):
        state = dict(shared_extras())
        spec = st.session_state.get("current_spec")
        if spec is not None and spec != preset_spec(DEFAULT_PRESET):
            state["model"] = spec.to_dict()
        if (train := _train_form_state()) is not None:
            state["train"] = train
        # get_all: a multiselect bound to the URL repeats its parameter (?ex_formats=a&ex_formats=b).
        params = {k: st.query_params.get_all(k) for k in st.query_params}
        base = st.context.url or ""
        try:
            url, dropped = share_url(base, params, state)
        except ShareError as exc:
            st.warning(tr("share.too_large", reason=exc))
            url, dropped = share_url(base, params, {})
        st.caption(tr("share.caption"))
        st.code(url, language=None, wrap_lines=True)
        st.caption(tr("share.length", n=len(url)))
        if dropped:
            st.caption(tr("share.dropped", n=MAX_URL, parts=", ".join(tr(f"share.part.{p}") for p in dropped)))
