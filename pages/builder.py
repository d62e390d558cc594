"""Model Builder: presets, layer editor with shape checking, torchinfo summary, graph, code, snippets."""
import streamlit as st

from core.lessons.builder import (
    EXAMPLES,
    GRAPH_WORDS,
    SNIPPETS,
    TABS,
    architecture_dot,
    args_label,
    human,
    summary,
)
from core.ml.codegen import function_call, module_code, sequential_code
from core.ml.modules import ShapeError, build_model, infer_shapes
from core.ml.spec import SequentialLayer
from core.ml.zoo import PRESETS, preset_spec
from pages.ui import datasets as user_data
from pages.ui.builder_views import forward_view, snippet_view, table, train_eval_view
from pages.ui.frame import frame
from pages.ui.model_state import (
    apply_json,
    current_spec,
    follow_spec,
    layer_choice,
    layer_editor,
    load_spec,
    set_input_shape,
    stack_controls,
)
from pages.ui.predict_prompt import page_prompt_box
from pages.ui.text import tr
from pages.ui.widgets import url_choice

frame()


def load_example(example: str) -> None:
    ex = EXAMPLES[example]
    if ex.preset:
        load_spec(preset_spec(ex.preset))
    st.session_state["bld_tab"] = ex.tab
    if ex.snippet:
        st.session_state["bld_snippet"] = ex.snippet


st.title(tr("builder.title"))
st.write(tr("builder.intro"))
page_prompt_box("builder_params", "bld_pp", overrides={"model": current_spec()})
st.markdown(f"**{tr('builder.examples')}**")
with st.container(horizontal=True, gap="small"):  # buttons as wide as their titles, wrapping into rows
    for example in EXAMPLES:
        st.button(f"{example} · {tr(f'builder.ex.{example}')}", key=f"bld_ex_{example}", on_click=load_example,
                  args=(example,), help=tr(f"builder.ex_help.{example}"))

spec = current_spec()
follow_spec(spec)  # before the widgets that show the model render
left, mid, right = st.columns([3, 2, 1], vertical_alignment="bottom")
# Labels made now, in the page's language (a format function may be called after the run).
preset_labels = {k: f"{p.example + ' · ' if p.example else ''}{tr(f'zoo.title.{k}')}" for k, p in PRESETS.items()}
preset = left.selectbox(tr("builder.preset"), list(PRESETS), key="bld_preset", format_func=preset_labels.__getitem__)
mid.button(tr("builder.load"), key="bld_load", width="stretch", on_click=lambda: load_spec(preset_spec(preset)))
right.button(tr("builder.empty"), key="bld_empty", width="stretch",
             on_click=lambda: load_spec(current_spec().edit(name="Model", layers=())))
st.text_input(tr("builder.input_shape"), key="bld_shape", help=tr("builder.input_help"), on_change=set_input_shape,
              args=("bld_shape",))
user_data.builder_controls()  # the input shape (or a small CNN) of the learner's own dataset
if "bld_error" in st.session_state:
    st.error(tr("error.bad_value", reason=st.session_state["bld_error"]))

# The layer stack with its shapes.
error = None
try:
    shapes = [s.output_shape for s in infer_shapes(spec, batch=1)]
except ShapeError as exc:
    error, shapes = exc, []


def _name(layer) -> str:
    return function_call(layer) if layer.functional else layer.name or ""


def _type(layer) -> str:
    return tr("builder.functional_type", kind=layer.type) if layer.functional else layer.type


rows = [{"#": i, tr("builder.col.name"): _name(layer), tr("builder.col.type"): _type(layer),
         tr("builder.col.args"): tr("builder.n_layers", n=len(layer.layers)) if isinstance(layer, SequentialLayer)
         else args_label(layer), tr("builder.col.output"): str(shapes[i]) if i < len(shapes) else
         ("✗" if error is not None and str(i) == error.index else "")} for i, layer in enumerate(spec.layers)]
st.markdown(f"**{tr('builder.stack', name=spec.name, n=len(spec.layers))}**")
if rows:
    table(rows)
else:
    st.info(tr("builder.empty_stack"))
if error is not None:
    st.error(tr("builder.shape_error", message=error))
note = next((p.note for p in PRESETS.values() if p.spec.name == spec.name and p.note), "")
if note:
    st.caption(tr(note))

index = layer_choice(spec)
if index is not None:
    layer_editor(spec, index)
stack_controls(spec, index)

with st.expander(tr("builder.json")):
    st.text_area(tr("builder.json_label"), height=240, key="bld_json")
    c1, c2 = st.columns(2)
    c1.button(tr("builder.json_apply"), key="bld_json_apply", on_click=apply_json, args=("bld_json",))
    c2.download_button(tr("builder.json_download"), spec.to_json(), file_name=f"{spec.name}.json",
                       mime="application/json", key="bld_json_dl")

tab = url_choice(st.segmented_control, tr("builder.view"), list(TABS), "bld_tab", "summary",
                 {v: tr(f"builder.tab.{v}") for v in TABS}.__getitem__, required=True)
if error is not None or not spec.layers:
    st.info(tr("builder.fix_first"))
elif tab == "summary":
    model = build_model(spec)  # the spec in session state has passed checked_spec (param cap)
    depth = st.slider(tr("builder.depth"), 1, 5, 3, key="bld_depth", bind="query-params")
    frame_, totals = st.cache_data(summary, max_entries=32)(spec, depth=depth)
    m = st.columns(5)
    m[0].metric(tr("builder.total_params"), f"{totals['parameters']:,}")
    m[1].metric(tr("builder.trainable"), f"{totals['trainable']:,}")
    m[2].metric("MACs", human(totals["macs"]))
    m[3].metric(tr("builder.param_mb"), f"{totals['param_mb']:.2f}")
    m[4].metric(tr("builder.act_mb"), f"{totals['activation_mb']:.2f}")
    trainable = {"True": tr("builder.yes"), "False": tr("builder.no"), "Partial": tr("builder.partly")}
    frame_ = frame_.drop(columns="depth").assign(trainable=frame_["trainable"].map(lambda v: trainable.get(str(v), v)))
    table(frame_, prefix="builder.sum.", localized=("parameters", "mult-adds"))
    st.markdown(f"**{tr('builder.repr')}**")
    st.code(repr(model), language="text")
elif tab == "graph":
    # The graph's words in the page's language ("{n} layers" stays a template the engine fills).
    st.graphviz_chart(architecture_dot(spec, {word: tr(f"builder.graph.{word}") for word in GRAPH_WORDS}))
elif tab == "code":
    kinds = {k: tr(f"builder.code.{k}") for k in ("module", "sequential")}
    kind = st.radio(tr("builder.code_kind"), list(kinds), horizontal=True, key="bld_code_kind",
                    format_func=kinds.__getitem__)
    st.caption(tr(f"builder.code_note.{kind}"))
    code = module_code(spec) if kind == "module" else sequential_code(spec)
    st.code(code, language="python")
    st.download_button(tr("builder.code_download"), code, file_name=f"{spec.name.lower()}.py",
                       mime="text/x-python", key="bld_code_dl")
elif tab == "forward":
    forward_view(spec)
elif tab == "traineval":
    train_eval_view(spec)
else:
    snippet = url_choice(st.segmented_control, tr("builder.snippet"), list(SNIPPETS), "bld_snippet", SNIPPETS[0],
                         {v: tr(f"builder.snippet.{v}") for v in SNIPPETS}.__getitem__, required=True)
    snippet_view(spec, snippet)
