"""Train: configure a run, start it as a background job and watch it live; or step one batch."""
import streamlit as st

from core.runs.store import check_run_id
from pages.ui import train_views as W
from pages.ui.frame import frame
from pages.ui.predict_prompt import page_prompt_box
from pages.ui.state import lab_store
from pages.ui.text import tr
from pages.ui.widgets import url_choice

frame()
EXAMPLES = {"R1": "r1", "R2": "r2", "R3": "r3", "R4": None, "R5": None, "R6": None, "R7": None}


def example(ex: str) -> None:
    if EXAMPLES[ex]:
        W.apply_recipe(EXAMPLES[ex])
    elif ex == "R4":
        st.session_state.update(tr_optimizer="sgd", tr_momentum=0.9, tr_lr=0.05)
    elif ex == "R5":
        st.session_state.update(tr_loss="cross_entropy", tr_label_smoothing=0.1)
    st.session_state["tr_view"] = "step" if ex == "R4" else "run"
    st.session_state["tr_note"] = ex


st.title(tr("train.title"))
st.write(tr("train.intro"))
page_prompt_box("train_lr", "tr_pp")
st.markdown(f"**{tr('train.examples')}**")
for col, ex in zip(st.columns(len(EXAMPLES)), EXAMPLES, strict=False):
    col.button(ex, key=f"tr_ex_{ex}", on_click=example, args=(ex,), help=tr(f"train.ex.{ex}"), width="stretch")
if st.session_state.get("tr_note"):
    st.info(tr(f"train.note.{st.session_state['tr_note']}"))

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
    if st.session_state.get("tr_start_error"):
        st.error(tr("error.bad_value", reason=st.session_state.pop("tr_start_error")))
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

        @st.fragment(run_every=1.0 if active else None)
        def live() -> None:
            if st.session_state.pop("tr_full_rerun", False):
                st.rerun()
            W.watch(run_ids)
            W.controls(run_ids[-1])
            if not any((lab_store().get_run(r) or {}).get("status") in ("queued", "running") for r in run_ids) \
                    and active:
                st.rerun()  # the run ended: rerun the page to stop polling and show the evaluation

        live()
        run = lab_store().get_run(run_ids[-1])
        if run and run["status"] in ("completed", "stopped"):
            with st.expander(tr("train.evaluation"), expanded=True):
                W.evaluation(run)
    with st.expander(tr("train.upload_title")):
        W.uploaded_checkpoint()
