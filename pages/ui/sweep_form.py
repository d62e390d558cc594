"""The Train page's sweep panel: vary one or two settings of the form's config (a list of values for a
grid, ``LO:HI`` for random draws), optionally over seeds, and queue the runs (core.runs.sweep)."""
from __future__ import annotations

import streamlit as st

from core.errors import LabError
from core.runs import sweep as W
from core.training.config import TrainConfig
from pages.ui.text import tr, tr_error


def _plan(config: TrainConfig) -> W.SweepPlan | None:
    """The sweep the panel describes (None while the first values box is empty); LabError if it is wrong."""
    s = st.session_state
    text1, field2, text2 = s.get("tr_sw_v1", ""), s.get("tr_sw_f2", ""), s.get("tr_sw_v2", "")
    if not str(text1).strip():
        return None
    axes = [W.parse_axis(s.get("tr_sw_f1", "lr"), text1)]
    if field2 and str(text2).strip():
        axes.append(W.parse_axis(field2, text2))
    trials = int(s.get("tr_sw_trials", 4)) if any(a.random for a in axes) else None
    return W.plan(config, axes, trials=trials, seeds=int(s.get("tr_sw_seeds", 1)))


def on_queue() -> None:
    """Queue the sweep (button callback); the outcome is shown on the next run."""
    from pages.ui import clone
    from pages.ui import train_views as TV

    s = st.session_state
    try:
        config = TV.config_from_state()  # the form as it is now
        plan = _plan(config)
        if plan is None:
            raise LabError("sweep.empty")
        sweep_id, ids = W.queue(TV.lab_jobs(), plan, name=s.get("tr_name", ""), parent=clone.parent_for_start())
    except ValueError as exc:
        s["tr_sw_result"] = ("error", tr_error(exc))
        return
    s["tr_sw_result"] = ("success", tr("train.sweep.queued", sweep=sweep_id, n=len(ids)), sweep_id)


def sweep_panel(config: TrainConfig | None) -> None:
    """A compact expander under the Start button."""
    s = st.session_state
    result = s.get("tr_sw_result")
    with st.expander(tr("train.sweep.title"), icon=":material/tune:", expanded=result is not None):
        st.caption(tr("train.sweep.help", log=", ".join(W.LOG_UNIFORM), cap=W.MAX_RUNS))
        c = st.columns([2, 3, 2, 3])
        c[0].selectbox(tr("train.sweep.field"), W.SWEEPABLE, index=W.SWEEPABLE.index("lr"), key="tr_sw_f1")
        c[1].text_input(tr("train.sweep.values"), key="tr_sw_v1", placeholder="0.001, 0.003  |  0.0001:0.01")
        second = c[2].selectbox(tr("train.sweep.field2"), ["", *W.SWEEPABLE], key="tr_sw_f2",
                                format_func=lambda f: f or tr("train.sweep.none"))
        c[3].text_input(tr("train.sweep.values2"), key="tr_sw_v2", disabled=not second, placeholder="64, 128")
        c = st.columns([1, 1, 2, 2], vertical_alignment="bottom")
        c[0].number_input(tr("train.sweep.seeds"), 1, W.MAX_SEEDS, 1, key="tr_sw_seeds")
        ranged = ":" in str(s.get("tr_sw_v1", "")) or (bool(second) and ":" in str(s.get("tr_sw_v2", "")))
        c[1].number_input(tr("train.sweep.trials"), 1, W.MAX_RUNS, 4, key="tr_sw_trials", disabled=not ranged,
                          help=tr("train.sweep.trials_help"))
        plan, error = None, None
        if config is not None:
            try:
                plan = _plan(config)
            except ValueError as exc:
                error = exc
        if plan is not None:
            c[2].caption(tr("train.sweep.preview", n=len(plan.runs), settings=len(plan.settings), seeds=plan.seeds))
        c[3].button(tr("train.sweep.queue", n=len(plan.runs) if plan else 0), key="tr_sw_go", width="stretch",
                    disabled=plan is None, on_click=on_queue, icon=":material/playlist_add:")
        if error is not None:
            st.error(tr_error(error))
        if result is not None:
            getattr(st, result[0])(result[1])
            if result[0] == "error":
                s.pop("tr_sw_result", None)
            if result[0] == "success":
                st.button(tr("train.sweep.open"), key="tr_sw_open", icon=":material/monitoring:", on_click=_open,
                          args=(result[2],))


def _open(sweep_id: str) -> None:
    from pages.ui.navigate import go_to, request_open

    st.session_state.pop("tr_sw_result", None)
    request_open("sweep", sweep=sweep_id)
    go_to("pages/runs.py")
