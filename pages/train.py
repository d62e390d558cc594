"""Train: configure a run, start it as a background job and watch it live; or step one batch."""
import streamlit as st

from core.runs.store import check_run_id
from pages.ui import clone
from pages.ui import internals_views as I
from pages.ui import train_views as W
from pages.ui.frame import frame
from pages.ui.navigate import follow
from pages.ui.predict_prompt import page_prompt_box
from pages.ui.state import lab_store
from pages.ui.sweep_form import sweep_panel
from pages.ui.text import tr
from pages.ui.widgets import url_choice

frame()
# Each example fills the form with a recipe of core.training.config.RECIPES (R6 and R7 use R3's: they are
# about how it runs, A/B precision and Stop/Resume) and opens the view it needs.
EXAMPLES = {"R1": "r1", "R2": "r2", "R3": "r3", "R4": "r4", "R5": "r5", "R6": "r3", "R7": "r3", "R8": "r8",
            "R9": "r9"}
PER_ROW = 5


def example(ex: str) -> None:
    W.apply_recipe(EXAMPLES[ex])
    st.session_state["tr_view"] = "step" if ex in ("R4", "R9") else "run"
    st.session_state["tr_note"] = ex


st.title(tr("train.title"))
st.write(tr("train.intro"))
st.caption(tr("train.honest"))
page_prompt_box("train_lr", "tr_pp")
st.markdown(f"**{tr('train.examples')}**")
names = list(EXAMPLES)
for row in range(0, len(names), PER_ROW):
    for col, ex in zip(st.columns(PER_ROW), names[row:row + PER_ROW], strict=False):
        col.button(tr(f"train.ex_title.{ex}"), key=f"tr_ex_{ex}", on_click=example, args=(ex,),
                   help=tr(f"train.ex.{ex}"), width="stretch")
if st.session_state.get("tr_note"):
    st.info(tr(f"train.note.{st.session_state['tr_note']}"))

follow()  # a button below asked for another page (the Runs page: a sweep, a clone and its parent)
clone.apply_request()  # "clone" on the Runs page: the form opens with that run's config
clone.banner()
W.form_from_run_link()
config = W.form()
view = url_choice(st.segmented_control, tr("train.view"), ["run", "step"], "tr_view", "run",
                  lambda v: tr(f"train.view.{v}"), required=True)

if view == "step":
    if config is not None:
        W.step_mode(config)
else:
    c = st.columns([2, 1, 1], vertical_alignment="bottom")
    c[0].text_input(tr("train.name"), max_chars=60, key="tr_name", placeholder=tr("train.name_hint"))
    c[1].button(tr("train.start"), type="primary", key="tr_start", disabled=config is None, width="stretch",
                on_click=W.on_start)
    reduced = W.fastest_reduced()
    c[2].button(tr("train.ab"), key="tr_ab", disabled=config is None or reduced is None, width="stretch",
                help=tr("train.ab_help") if reduced else tr("train.ab_none"), on_click=W.on_start, args=(True,))
    W.learner_line()
    if st.session_state.get("tr_start_error"):
        st.error(W.start_error(st.session_state.pop("tr_start_error")))
    sweep_panel(config)
    if st.session_state.get("tr_watch"):  # a run just started: watch it, and keep it in the URL
        st.query_params["run"] = st.session_state.pop("tr_watch")

    # The run being watched survives refreshes and page changes through the URL (?run=...).
    wanted = st.query_params.get("run") or st.session_state.get("tr_run", "")
    run_ids = []
    for part in [p.strip() for p in str(wanted).split(",")[:2] if p.strip()]:
        try:
            run_ids.append(check_run_id(part))
        except ValueError:  # e.g. ?run=../../etc/passwd: never used, and said so
            st.warning(tr("train.bad_run", run=part[:80]))
    missing = [r for r in run_ids if lab_store().get_run(r) is None]
    if missing:
        st.warning(tr("train.unknown_run", run=missing[0]))
        run_ids = [r for r in run_ids if r not in missing]
    if run_ids:
        st.query_params["run"] = st.session_state["tr_run"] = ",".join(run_ids)
        st.slider(tr("train.smoothing"), 0.0, 0.99, 0.6, key="tr_smooth")
        active = any((lab_store().get_run(r) or {}).get("status") in ("queued", "running") for r in run_ids)

        # No timer here: the live charts poll the shared feed themselves (pages.ui.live_view) and ask for
        # this fragment to rerun when what it shows changes (a status, a checkpoint); the worker's log,
        # while it is shown, is the one part that reruns each second.
        @st.fragment(run_every=1.0 if active and st.session_state.get("tr_log") else None)
        def live() -> None:
            if st.session_state.pop("tr_full_rerun", False):
                st.rerun()
            W.watch(run_ids)
            W.controls(run_ids[-1])
            if not any((lab_store().get_run(r) or {}).get("status") in ("queued", "running") for r in run_ids) \
                    and active:
                st.rerun()  # the run ended: rerun the page to show the evaluation

        live()
        run = lab_store().get_run(run_ids[-1])
        clone.parent_link(run)
        if run:  # what happens inside the model, and the training doctor's diagnoses (issue 19)
            I.panels(run, "tr", run["status"] in ("queued", "running"))
        if run and run["status"] in ("completed", "stopped"):
            with st.expander(tr("train.evaluation"), expanded=True):
                W.evaluation(run)
    with st.expander(tr("train.upload_title")):
        W.uploaded_checkpoint()
