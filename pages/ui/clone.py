"""Clone → tweak → enqueue: the Train form opens with a stored run's config, shows which settings
now differ from it (highlighted), and the run it starts is linked to that run (its parent), so
the Runs page compares the two with one click.

A clone keeps every setting of its parent that the form does not show (the seed, the sample
limits, the schedule's details, …): the form's values are laid over the parent's config.
State: ``tr_clone`` = {"parent", "name", "config"}; a share link carries the parent's id
(``shared_extras()["clone"]``) next to the form's values.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import Code, LabError
from core.runs.store import RunRow
from core.training.config import field_default
from pages.ui.state import lab_store, shared_extras
from pages.ui.text import tr, tr_error
from pages.ui.train_form import FIELDS, RANGES

CLONE = "tr_clone"
REQUEST = "tr_clone_request"
HIGHLIGHT = ("outline: 2px solid #f59e0b; outline-offset: 3px; border-radius: 0.5rem; "
             "background: rgba(245, 158, 11, 0.08);")


def request(run_id: str) -> None:
    """Ask the Train page to open ``run_id`` as a clone on its next run (the Runs page's button)."""
    st.session_state[REQUEST] = run_id


class _OutOfForm(ValueError):
    """A stored value the form's widget cannot hold (the message is the page's text)."""


def _form_state(config: dict[str, Any]) -> dict[str, Any]:
    """The Train form's widget values for a config; _OutOfForm naming a value the form cannot hold."""
    from core.ml.spec import ModelSpec

    state: dict[str, Any] = {}
    for name in FIELDS:
        value = config.get(name, field_default(name))
        if name in RANGES:
            lo, hi = RANGES[name]
            if not lo <= value <= hi:
                raise _OutOfForm(tr("train.clone.range", field=Code(name), value=value, lo=lo, hi=hi))
            value = float(value) if isinstance(lo, float) else int(value)
        state[f"tr_{name}"] = value
    if config.get("model_spec"):
        state["current_spec"] = ModelSpec.parse(config["model_spec"])
        state["tr_source"] = "current"
    else:
        state["tr_source"] = "preset"
        state["tr_preset"] = config.get("preset", field_default("preset"))
    return state


def apply_request() -> None:
    """At the top of the Train page, before the form: open a requested clone (or one a link carries)."""
    s = st.session_state
    run_id, from_link = s.pop(REQUEST, None), False
    shared_in = s.get("shared_in") or {}
    if run_id is None and CLONE not in s and isinstance(shared_in.get("clone"), str):
        run_id, from_link = shared_in.pop("clone"), True  # the form's values came with the link
    if not run_id:
        return
    run = lab_store().get_run(run_id) if isinstance(run_id, str) and len(run_id) <= 64 else None
    try:
        if run is None:
            raise LabError("runs.parent_gone", run=Code(str(run_id)[:64]))
        if not from_link:
            s.update(_form_state(run["config"]))
    except _OutOfForm as exc:  # nothing is changed: the form would clamp the value silently
        s["tr_clone_error"] = str(exc)
        return
    except LabError as exc:
        s["tr_clone_error"] = tr_error(exc)
        return
    s[CLONE] = {"parent": run["id"], "name": run["name"] or run["id"], "config": run["config"]}
    shared_extras()["clone"] = run["id"]
    s["tr_view"] = "run"


def stop() -> None:
    st.session_state.pop(CLONE, None)
    shared_extras().pop("clone", None)


def changed(clone: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, parent's value, form's value) for every form setting that now differs from the parent."""
    s, parent = st.session_state, clone["config"]
    out = []
    for name in FIELDS:
        mine, theirs = s.get(f"tr_{name}", field_default(name)), parent.get(name, field_default(name))
        if mine != theirs:
            out.append((name, theirs, mine))
    source = "current" if parent.get("model_spec") else "preset"
    if s.get("tr_source") != source:
        out.append(("source", source, s.get("tr_source")))
    elif source == "preset" and s.get("tr_preset") != parent.get("preset"):
        out.append(("preset", parent.get("preset"), s.get("tr_preset")))
    return out


def _shown(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def banner() -> None:
    """What is being cloned, what changed (highlighted in the form), what is kept; "stop cloning"."""
    s = st.session_state
    if s.get("tr_clone_error") is not None:
        st.error(s.pop("tr_clone_error"))
    clone = s.get(CLONE)
    if not clone:
        return
    diff = changed(clone)
    with st.container(border=True, key="tr_clone_box"):
        c = st.columns([5, 1], vertical_alignment="center")
        c[0].markdown(tr("train.clone.banner", run=clone["name"]))
        c[1].button(tr("train.clone.stop"), key="tr_clone_stop", on_click=stop, width="stretch")
        if diff:
            parts = [tr("train.clone.change", field=Code(n), old=Code(_shown(a)), new=Code(_shown(b)))
                     for n, a, b in diff]
            st.markdown(tr("train.clone.changed") + " " + "; ".join(parts))  # each part rendered (and escaped) once
        else:
            st.caption(tr("train.clone.unchanged"))
        kept = [f"{k}={_shown(v)}" for k, v in clone["config"].items()
                if k not in FIELDS and k not in ("model_spec", "preset") and v != field_default(k)]
        if kept:
            st.caption(tr("train.clone.kept", settings=Code(", ".join(kept))))
    keys = [f"tr_{n}" for n, _, _ in diff]  # tr_source and tr_preset are the model widgets' keys too
    if keys:  # the changed settings stand out in the form (Streamlit gives a keyed widget the class st-key-<key>)
        st.html("<style>" + " ".join(f".st-key-{k} {{{HIGHLIGHT}}}" for k in keys) + "</style>")


def values(values: dict[str, Any]) -> dict[str, Any]:
    """The config values of the form laid over the parent's config (a clone keeps what the form lacks)."""
    clone = st.session_state.get(CLONE)
    if not clone:
        return values
    merged = {**clone["config"], **values}
    if "model_spec" not in values:
        merged["model_spec"] = None  # the form picked a preset
    merged["seed"] = clone["config"].get("seed", values.get("seed", 0))  # the parent's seed: one change at a time
    return merged


def parent_for_start() -> str | None:
    """The parent of a run started now; a parent deleted meanwhile is a LabError, and nothing is queued."""
    clone = st.session_state.get(CLONE)
    if not clone:
        return None
    if lab_store().get_run(clone["parent"]) is None:
        raise LabError("runs.parent_gone", run=Code(clone["parent"]))
    return clone["parent"]


def parent_link(run: RunRow | None) -> None:
    """Under a watched run that is a clone: compare it with its parent, in one click."""
    if not run or not run.get("parent"):
        return
    parent = lab_store().get_run(str(run["parent"]))
    if parent is None:
        st.caption(tr("runs.actions.parent_gone", run=run["parent"]))
        return
    st.button(tr("runs.actions.vs_parent"), key="tr_vs_parent", icon=":material/compare_arrows:",
              on_click=_vs_parent, args=(parent["id"], run["id"]))


def _vs_parent(parent: str, run_id: str) -> None:
    from pages.ui.navigate import go_to, request_open

    request_open("compare", runs=[parent, run_id], base=parent)
    go_to("pages/runs.py")
