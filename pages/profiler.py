"""Profiler: torch.profiler on the current model or a trained run, with results as data."""
import streamlit as st

from core.ml.env import env_facts
from core.ml.modules import check_batch
from core.ml.profile_advice import advise
from core.ml.profiling import ProfileConfig, ProfilingError, breakdown_figure, p1_example, profile_model, top_ops_figure
from pages.ui.frame import frame
from pages.ui.model_state import pick_model
from pages.ui.text import lang, tr, tr_error
from pages.ui.widgets import url_choice

frame()
MODES = ["inference", "train_step", "train_steps"]


def run_profile(config: ProfileConfig) -> None:
    chosen = st.session_state.get("pf_chosen")
    try:
        model, spec, _ = chosen
        check_batch(spec, config.batch_size, config.forward_passes)  # activations and work, counted first
        result = profile_model(model, spec.input_shape, config)
        # Rule-based advice with measured evidence (convolution-heavy models: layouts and bf16 timed here).
        result["advice"] = advise(result, model, spec.input_shape, fast_bf16=env_facts().fast_bf16)
        st.session_state["pf_result"] = result
        st.session_state.pop("pf_error", None)
    except (ValueError, ProfilingError) as exc:
        st.session_state["pf_error"] = exc  # the exception: shown in the page's language when drawn


st.title(tr("profiler.title"))
st.write(tr("profiler.intro"))
chosen = pick_model("pf_model")
if chosen is not None:
    st.session_state["pf_chosen"] = chosen
    st.button(tr("profiler.p1"), key="pf_p1", help=tr("profiler.p1_help"),
              on_click=lambda: st.session_state.update(pf_p1_show=True))
    if st.session_state.get("pf_p1_show"):
        example = p1_example(chosen[0], chosen[1].input_shape)
        st.code(example["code"], language="python")
        st.caption(tr(f"profiler.p1_sort.{example['sort_by']}"))
        st.dataframe(example["table"], hide_index=True, width="stretch")
    mode = url_choice(st.segmented_control, tr("profiler.mode"), MODES, "pf_mode", "inference",
                      lambda m: tr(f"profiler.mode.{m}"), required=True)
    c = st.columns(5)
    batch = c[0].number_input(tr("profiler.batch"), 1, 1024, 32, key="pf_batch", bind="query-params")
    steps = c[1].number_input(tr("profiler.steps"), 1, 50, 5, key="pf_steps", bind="query-params",
                              disabled=mode != "train_steps")
    wait = c[2].number_input("wait", 0, 10, 1, key="pf_wait", bind="query-params", disabled=mode != "train_steps")
    warmup = c[3].number_input("warmup", 0, 10, 1, key="pf_warmup", bind="query-params", disabled=mode != "train_steps")
    active = c[4].number_input("active", 1, 50, 3, key="pf_active", bind="query-params", disabled=mode != "train_steps")
    c = st.columns(4)
    shapes = c[0].checkbox(tr("profiler.shapes"), key="pf_shapes", bind="query-params")
    memory = c[1].checkbox(tr("profiler.memory"), key="pf_memory", bind="query-params")
    stack = c[2].checkbox(tr("profiler.stack"), key="pf_stack", bind="query-params")
    group = c[3].checkbox(tr("profiler.group"), key="pf_group", bind="query-params", disabled=not shapes)
    try:
        config = ProfileConfig(mode=mode, steps=int(steps), wait=int(wait), warmup=int(warmup), active=int(active),
                                 batch_size=int(batch), record_shapes=shapes, profile_memory=memory,
                                 with_stack=stack, group_by_input_shape=group and shapes)
    except ValueError as exc:
        st.error(tr("error.bad_value", reason=exc))
        config = None
    st.button(tr("profiler.run"), type="primary", key="pf_run", disabled=config is None,
              on_click=run_profile, args=(config,))
    if st.session_state.get("pf_error"):
        st.error(tr("error.bad_value", reason=st.session_state.pop("pf_error")))
    result = st.session_state.get("pf_result")
    if result:
        st.caption(tr("profiler.done", mode=tr(f"profiler.mode.{result['mode']}"), steps=result["steps"],
                      device=result["device"], s=result["wall_seconds"]))
        left, right = st.columns(2)
        left.plotly_chart(top_ops_figure(result["top"], title=tr("profiler.top")), key="pf_top")
        right.plotly_chart(breakdown_figure(result["breakdown"], title=tr("profiler.breakdown"),
                                            y_title=tr("profiler.ms_per_step"), x_title=tr("profiler.phase")),
                           key="pf_bd")
        st.markdown(f"**{tr('profiler.advice.title')}**")
        advice = result.get("advice") or []
        if advice:
            st.caption(tr("profiler.advice.intro"))
        else:
            st.caption(tr("profiler.advice.none"))
        for i, item in enumerate(advice):
            with st.container(border=True, key=f"pf_advice_{i}"):
                st.markdown(f":material/lightbulb: {item.evidence(lang())}  \n→ {item.fix(lang())}")
        st.markdown(f"**{tr('profiler.table')}**")
        st.dataframe(result["table"], hide_index=True, width="stretch")
        if result.get("memory") is not None:
            st.markdown(f"**{tr('profiler.memory_by_op')}**")
            st.dataframe(result["memory"], hide_index=True, width="stretch")
        if result.get("trace") is not None:
            st.download_button(tr("profiler.trace"), result["trace"], file_name="trace.json", mime="application/json",
                               key="pf_trace")
            st.caption(tr("profiler.trace_help", mb=result["trace_size"] / 1e6))
        elif result.get("trace_failure") is not None:
            st.warning(tr_error(result["trace_failure"]))
