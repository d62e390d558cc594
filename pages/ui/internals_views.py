"""A run's training internals over time and the training doctor's diagnoses, on the Train page (live)
and the Runs page (a run's details).

The internals come from the run's metrics (``internals/...``, core.runs.internals), the diagnoses
from core.runs.doctor. "Try the fix" starts a run with the one change a diagnosis suggests, linked to
the diagnosed run (its parent), and opens the Train page on the pair (A: the run as it was, B: the
fix), so the learner sees whether the fix helped.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import Code
from core.runs.doctor import Diagnosis
from core.runs.internals import BANDS, LAYER_STATS, band_figure, internals_frame, layer_figure, layers, spikes
from core.runs.store import RunRow
from core.training.config import TrainConfig
from pages.ui import train_views as W
from pages.ui.navigate import go_to
from pages.ui.state import lab_store
from pages.ui.text import lang, plain, tr

ICONS = {"serious": ":material/error:", "warning": ":material/warning:", "info": ":material/info:"}
BOXES = {"serious": st.error, "warning": st.warning, "info": st.info}


def panels(run: RunRow, prefix: str, active: bool) -> None:
    """The internals charts and the doctor, under a run. While it trains they are redrawn when the live
    feed sees the doctor's findings change (the page reruns then, core.runs.live_feed) and on the
    refresh button: no timer per watching session (BENCHMARKS.md "Classroom")."""
    @st.fragment
    def body() -> None:
        if st.session_state.pop(f"{prefix}_fix_started", False):
            st.rerun()  # the Train page watches the new pair (the Runs page switches to it first)
        fresh = lab_store().get_run(run["id"])
        if fresh is None:
            return
        # read and examined once per few seconds for every session (a class opens the same runs)
        metrics, diagnoses = W.live_feed()[1].examined(fresh)
        serious = any(d.severity == "serious" for d in diagnoses)
        with st.expander(tr("doctor.title", n=len(diagnoses)), expanded=serious or not active):
            doctor(fresh, diagnoses, prefix, active)
        with st.expander(tr("internals.title"), expanded=False):
            if active:
                st.button(tr("internals.refresh", step=fresh.get("step") or 0), key=f"{prefix}_in_refresh",
                          icon=":material/refresh:")
            internals(fresh, metrics, prefix)

    body()


def internals(run: RunRow, metrics, prefix: str) -> None:
    frame = internals_frame(metrics)
    if frame.empty:
        every = int(run["config"].get("internals_every", 0) or 0)  # runs made before the recording have none
        active = run["status"] in ("queued", "running")
        st.info(tr("internals.none_off") if not every else tr("internals.none_yet", n=every) if active
                else tr("internals.none_ended"))
        return
    st.caption(tr("internals.intro", n=int(run["config"].get("internals_every", 50) or 0)))
    step = tr("internals.step")
    c = st.columns([1, 1, 1])
    stats = list(LAYER_STATS)
    stat = c[0].selectbox(tr("internals.stat"), stats, key=f"{prefix}_in_stat",
                          format_func=lambda s: tr(f"internals.stat.{s}"))
    keys = layers(frame)
    kinds = [k for k in BANDS if not frame[frame["stat"] == f"{k}_p50"].empty]
    kind = c[1].selectbox(tr("internals.kind"), kinds, key=f"{prefix}_in_kind",
                          format_func=lambda k: tr(f"internals.kind.{k}"))
    with_kind = [k for k in keys if not frame[(frame["layer"] == k) & (frame["stat"] == f"{kind}_p50")].empty]
    layer = c[2].selectbox(tr("internals.layer"), with_kind, key=f"{prefix}_in_layer")
    c = st.columns([1, 1])
    c[0].plotly_chart(layer_figure(frame, stat, tr(f"internals.stat.{stat}"), step,
                                   healthy_label=tr("internals.healthy")), key=f"{prefix}_in_layers")
    if layer:
        names = {"band": tr("internals.band"), "median": tr("internals.median")}
        c[1].plotly_chart(band_figure(frame, layer, kind, tr(f"internals.kind.{kind}") + f" · {layer}", names, step),
                          key=f"{prefix}_in_band")
    st.caption(tr(f"internals.help.{stat}"))
    jumps = spikes(frame)
    if jumps.empty:
        st.caption(tr("internals.no_spikes"))
    else:
        listed = ", ".join(f"{int(s)} ({r:.1f}×)" for s, r in zip(jumps["step"], jumps["ratio"], strict=False))
        st.caption(tr("internals.spikes", n=len(jumps), steps=listed[:400]))


def doctor(run: RunRow, diagnoses: list[Diagnosis], prefix: str, active: bool) -> None:
    if err := st.session_state.pop(f"{prefix}_fix_error", None):
        st.error(W.start_error(err))
    if not diagnoses:
        st.success(tr("doctor.healthy_running") if active else tr("doctor.healthy"))
        return
    if active:
        st.caption(tr("doctor.so_far"))
    for i, d in enumerate(diagnoses):
        with st.container(border=True, key=f"{prefix}_dx_{i}"):
            where = f" · `{d.layer}`" if d.layer else ""
            st.markdown(f"{ICONS[d.severity]} **{plain(d.title(lang()))}**{where} — "
                        f"{tr('doctor.severity.' + d.severity)}")
            st.markdown(f"{tr('doctor.evidence_label')} {d.evidence(lang())}")
            st.markdown(f"{tr('doctor.fix_label')} {d.fix(lang())}")
            if d.change is not None:
                c = st.columns([1, 3], vertical_alignment="center")
                c[0].button(tr("doctor.try"), key=f"{prefix}_dx_try_{i}", icon=":material/science:",
                            disabled=active, on_click=try_fix, args=(run["id"], change_text(d), d.change, prefix),
                            help=tr("doctor.try_help"))
                c[1].caption(tr("doctor.change", change=Code(change_text(d))))


def change_text(d: Diagnosis) -> str:
    """The one change of a diagnosis's fix, as code: ``lr = 0.5``, ``model_spec: ReLU → LeakyReLU``."""
    change = d.change or {}
    if "model_spec" in change:
        return f"model_spec: {d.params.get('swap', '')}"
    return ", ".join(f"{k} = {v}" for k, v in change.items())


def try_fix(run_id: str, label: str, change: dict[str, Any], prefix: str) -> None:
    """Start the run with the one change, parented to ``run_id``; the Train page watches the pair."""
    s = st.session_state
    run = lab_store().get_run(run_id)
    try:
        if run is None:
            raise KeyError(run_id)
        config = TrainConfig.from_stored(run["config"]).replace(**change)
        name = f"{(run['name'] or run['id'])[:24]} + {label}"[:60]  # e.g. "too fast + lr = 0.5"
        new = W.start(config, name=name, parent=run_id)
    except KeyError:
        s[f"{prefix}_fix_error"] = ValueError(tr("train.unknown_run", run=run_id))
        return
    except ValueError as exc:
        s[f"{prefix}_fix_error"] = exc
        return
    s["tr_watch"] = f"{run_id},{new}"
    s["tr_view"] = "run"
    s[f"{prefix}_fix_started"] = True  # the button sits in a fragment: the body reruns the whole page
    if prefix != "tr":
        go_to("pages/train.py")
