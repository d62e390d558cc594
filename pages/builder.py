"""Model Builder: presets, layer editor with shape checking, torchinfo summary, graph, code."""
import pandas as pd
import streamlit as st

from core.lessons.builder import (
    architecture_dot,
    args_label,
    forward_demo,
    human,
    parameters_table,
    summary,
    train_eval_demo,
)
from core.ml.codegen import module_code, sequential_code
from core.ml.modules import ShapeError, build_model, infer_shapes
from core.ml.spec import SequentialLayer, SpecError
from core.ml.zoo import PRESETS, preset_spec
from pages.ui.frame import frame
from pages.ui.model_state import (
    apply_json,
    current_spec,
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
EXAMPLES = {"M1": "linear", "M2": "neural_net", "M3": "mlp_sequential", "M4": "neural_network", "M5": "cnn",
            "M6": "simple_cnn", "M7": "cnn_rgb16", "M8": "resblock_net", "M9": "lstm_seq", "M10": None, "M11": None}
TABS = ["summary", "graph", "code", "forward", "traineval"]


def load_example(example: str) -> None:
    preset = EXAMPLES[example]
    if preset:
        load_spec(preset_spec(preset))
    st.session_state["bld_tab"] = {"M4": "forward", "M8": "graph", "M10": "traineval", "M11": "forward"}.get(
        example, "summary")


st.title(tr("builder.title"))
st.write(tr("builder.intro"))
page_prompt_box("builder_params", "bld_pp", overrides={"model": current_spec()})
st.markdown(f"**{tr('builder.examples')}**")
cols = st.columns(len(EXAMPLES))
for col, example in zip(cols, EXAMPLES, strict=False):
    col.button(example, key=f"bld_ex_{example}", on_click=load_example, args=(example,), width="stretch",
               help=PRESETS[EXAMPLES[example]].title if EXAMPLES[example] else tr(f"builder.example.{example}"))

spec = current_spec()
left, mid, right = st.columns([3, 2, 1], vertical_alignment="bottom")
preset = left.selectbox(tr("builder.preset"), list(PRESETS), key="bld_preset",
                        format_func=lambda k: f"{PRESETS[k].example + ' · ' if PRESETS[k].example else ''}"
                                              f"{PRESETS[k].title}")
mid.button(tr("builder.load"), key="bld_load", width="stretch", on_click=lambda: load_spec(preset_spec(preset)))
right.button(tr("builder.empty"), key="bld_empty", width="stretch",
             on_click=lambda: load_spec(current_spec().edit(name="Model", layers=())))
st.text_input(tr("builder.input_shape"), value=", ".join(map(str, spec.input_shape)), key="bld_shape",
              help=tr("builder.input_help"), on_change=set_input_shape, args=("bld_shape",))
if "bld_error" in st.session_state:
    st.error(tr("error.bad_value", reason=st.session_state["bld_error"]))

# The layer stack with its shapes.
error = None
try:
    shapes = [s.output_shape for s in infer_shapes(spec, batch=1)]
except ShapeError as exc:
    error, shapes = exc, []
rows = [{"#": i, tr("builder.col.name"): layer.name or "", tr("builder.col.type"): layer.type,
         tr("builder.col.args"): f"{len(layer.layers)} layers" if isinstance(layer, SequentialLayer) else
         args_label(layer), tr("builder.col.output"): str(shapes[i]) if i < len(shapes) else
         ("✗" if error is not None and str(i) == error.index else "")} for i, layer in enumerate(spec.layers)]
st.markdown(f"**{tr('builder.stack', name=spec.name, n=len(spec.layers))}**")
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
else:
    st.info(tr("builder.empty_stack"))
if error is not None:
    st.error(tr("builder.shape_error", message=error))
note = next((p.note for p in PRESETS.values() if p.spec.name == spec.name and p.note), "")
if note:
    st.caption(note)

index = layer_choice(spec)
if index is not None:
    layer_editor(spec, index)
stack_controls(spec, index)

with st.expander(tr("builder.json")):
    st.text_area(tr("builder.json_label"), value=spec.to_json(), height=240, key="bld_json")
    c1, c2 = st.columns(2)
    c1.button(tr("builder.json_apply"), key="bld_json_apply", on_click=apply_json, args=("bld_json",))
    c2.download_button(tr("builder.json_download"), spec.to_json(), file_name=f"{spec.name}.json",
                       mime="application/json", key="bld_json_dl")

tab = url_choice(st.segmented_control, tr("builder.view"), TABS, "bld_tab", "summary",
                 lambda v: tr(f"builder.tab.{v}"), required=True)
if error is not None or not spec.layers:
    st.info(tr("builder.fix_first"))
else:
    model = build_model(spec)  # the spec in session state has passed checked_spec (param cap)

    if tab == "summary":
        depth = st.slider(tr("builder.depth"), 1, 5, 3, key="bld_depth", bind="query-params")
        table, totals = st.cache_data(summary, max_entries=32)(spec, depth=depth)
        m = st.columns(5)
        m[0].metric(tr("builder.total_params"), f"{totals['parameters']:,}")
        m[1].metric(tr("builder.trainable"), f"{totals['trainable']:,}")
        m[2].metric("MACs", human(totals["macs"]))
        m[3].metric(tr("builder.param_mb"), f"{totals['param_mb']:.2f}")
        m[4].metric(tr("builder.act_mb"), f"{totals['activation_mb']:.2f}")
        st.dataframe(table.drop(columns="depth"), hide_index=True, width="stretch",
                     column_config={"parameters": st.column_config.NumberColumn(format="localized"),
                                    "mult-adds": st.column_config.NumberColumn(format="localized")})
        st.markdown(f"**{tr('builder.repr')}**")
        st.code(repr(model), language="text")
    elif tab == "graph":
        st.graphviz_chart(architecture_dot(spec))
    elif tab == "code":
        kind = st.radio(tr("builder.code_kind"), ["module", "sequential"], horizontal=True, key="bld_code_kind",
                        format_func=lambda k: tr(f"builder.code.{k}"))
        code = module_code(spec) if kind == "module" else sequential_code(spec)
        st.code(code, language="python")
        st.download_button(tr("builder.code_download"), code, file_name=f"{spec.name.lower()}.py",
                           mime="text/x-python", key="bld_code_dl")
    elif tab == "forward":
        batch = st.number_input(tr("builder.batch"), 1, 1024, 64, key="bld_batch", bind="query-params")
        try:
            result = forward_demo(spec, batch=int(batch), seed=0)
            st.success(tr("builder.forward", inp=result["input_shape"], out=result["output_shape"]))
            st.caption(tr("builder.forward_stats", mean=result["output_mean"], std=result["output_std"]))
        except SpecError as exc:  # a batch too large for this model's activations
            st.error(tr("error.bad_value", reason=exc))
        st.markdown(f"**{tr('builder.params')}**")
        st.dataframe(parameters_table(model), hide_index=True, width="stretch",
                     column_config={"norm": st.column_config.NumberColumn(format="%.4f")})
    elif tab == "traineval":
        st.caption(tr("builder.traineval_caption"))
        st.dataframe(train_eval_demo(), hide_index=True, width="stretch")
        st.code("drop = nn.Dropout(p=0.2); x = torch.randn(32, 100)\n"
                "drop.train(); y_train = drop(x)   # ~20% zeros, the rest scaled by 1/0.8\n"
                "drop.eval();  y_eval = drop(x)    # identity\n"
                "bn = nn.BatchNorm1d(256)  # train: batch statistics; eval: running statistics\n"
                "ln = nn.LayerNorm(256)    # the same in .train() and .eval()", language="python")
