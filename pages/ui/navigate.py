"""One click that opens another view or page: a request the target applies before its widgets are drawn.

Buttons use callbacks (a callback runs before the script, so the click is never lost to a
rerun), and a callback cannot switch pages: it leaves ``lab_goto`` and the page's script
calls ``follow()``. The Runs page applies ``rn_open`` (runs, view, baseline, groups, sweep)
with ``apply_requests()`` at its top.
"""
from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from pages.ui.state import shared_extras

OPEN = "rn_open"  # a request for the Runs page: {"view", "runs", "base", "groups", "sweep"}


def request_open(view: str, runs: Sequence[str] = (), base: str | None = None, groups: Sequence[str] = (),
                 sweep: str | None = None) -> None:
    """Ask the Runs page to show ``view`` with these runs / baseline / groups / sweep on its next run."""
    st.session_state[OPEN] = {"view": view, "runs": list(runs), "base": base, "groups": list(groups),
                              "sweep": sweep}


def apply_requests() -> None:
    """At the top of the Runs page, before its widgets: apply a pending request (one click from
    "compare with its parent", a sweep, a group)."""
    s = st.session_state
    want = s.pop(OPEN, None)
    if not want:
        return
    extras = shared_extras()
    if want.get("runs"):
        s["rn_sel"] = list(want["runs"])[:8]
        s.pop("rn_unknown", None)
    s["rn_view"] = want["view"]
    st.query_params["rn_view"] = want["view"]
    for key, extra in (("rn_base", "base"), ("rn_groups", "groups"), ("rn_sweep", "sweep")):
        s.pop(key, None)  # reseeded from the extras by the views
        extras[extra] = want.get(extra) or ([] if extra == "groups" else None)


def go_to(page: str) -> None:
    """Switch to ``page`` on this run of the script (a callback asked for it: callbacks cannot switch)."""
    st.session_state["lab_goto"] = page


def follow() -> None:
    """Switch page if a callback asked to (call where the page's widgets are drawn, after the request).

    ``st.switch_page`` clears the URL's parameters, and refuses to when some are bound to
    widgets (the sidebar's language and seed); with an empty mapping it replaces them
    without that check, and the bound widgets, whose values the session keeps, write
    themselves back on the new page.
    """
    target = st.session_state.pop("lab_goto", None)
    if target:
        st.switch_page(target, query_params={})
