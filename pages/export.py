"""Export: the current model or a trained run to state_dict, checkpoint, TorchScript, ONNX and
torch.export files, each verified against eager before it is offered for download."""
import streamlit as st

from core.errors import Code
from core.ml.export import (
    FORMATS,
    ONNX_OPSETS,
    TORCHSCRIPT_DEPRECATED_IN,
    export_model,
    results_table,
    saving_examples_code,
    speed_table,
    torchscript_warning,
)
from pages.ui.frame import frame
from pages.ui.model_state import pick_model
from pages.ui.onnx_panel import onnx_panel
from pages.ui.text import lang, plain, tr, tr_error, tr_message
from pages.ui.widgets import url_choice

frame()
st.title(tr("export.title"))
st.write(tr("export.intro"))
mode = url_choice(st.segmented_control, tr("export.mode"), ["export", "open"], "ex_mode", "export",
                  lambda m: tr(f"export.mode.{m}"), required=True)
if mode == "open":  # an ONNX file someone else exported: checked, drawn, tabulated, run
    onnx_panel()
    st.stop()
chosen = pick_model("ex_model")


if chosen is not None:
    model, spec, name = chosen
    # Both bound to the URL natively: the format labels are not translated, and the opset's
    # only translated label ("exporter default") is its default, which never goes into the URL.
    formats = st.multiselect(tr("export.formats"), list(FORMATS), default=list(FORMATS), key="ex_formats",
                             format_func=lambda k: FORMATS[k].label, bind="query-params")
    c = st.columns(3, vertical_alignment="bottom")
    opset = c[0].selectbox(tr("export.opset"), [None, *ONNX_OPSETS], key="ex_opset", bind="query-params",
                           format_func=lambda o: tr("export.default") if o is None else str(o))
    c[1].text_input(tr("export.names"), "input, output", key="ex_names", bind="query-params",
                    help=tr("export.names_help"))
    dynamic = c[2].checkbox(tr("export.dynamic"), value=True, key="ex_dynamic", bind="query-params")
    st.button(tr("export.run"), type="primary", key="ex_run", on_click=lambda: st.session_state.update(ex_go=True))
    key = (name, repr(spec), tuple(formats), opset, dynamic, st.session_state.get("ex_names"))
    if st.session_state.pop("ex_go", False):
        names = [n.strip() for n in st.session_state.get("ex_names", "").split(",") if n.strip()]
        try:
            with st.spinner(tr("export.working")):
                results = [export_model(model, spec.input_shape, f, name=name, opset=opset,
                                          dynamic_batch=dynamic, input_names=names[:1] or ("input",),
                                          output_names=names[1:2] or ("output",)) for f in formats]
            st.session_state["ex_results"] = (key, results)
        except ValueError as exc:
            st.error(tr("error.bad_value", reason=exc))
    saved = st.session_state.get("ex_results")
    if saved and saved[0] == key:
        results = saved[1]
        table = results_table(results)  # the error column in the page's language (None when it worked)
        table["error"] = [r.failure.message(lang()) if r.failure is not None else (r.error or None) for r in results]
        st.dataframe(table, hide_index=True, width="stretch")
        cols = st.columns(3)
        for i, result in enumerate(results):
            with cols[i % 3].container(border=True):
                st.markdown(f"**{result.label}**")
                if result.ok:
                    diff = "—" if result.max_abs_diff is None else f"{result.max_abs_diff:.1e}"
                    st.caption(tr("export.verified", diff=diff, kb=result.size_bytes / 1024, s=result.seconds))
                    st.download_button(tr("export.download", file=result.filename), result.data,
                                       file_name=result.filename, mime=FORMATS[result.format].mime,
                                       key=f"ex_dl_{result.format}", width="stretch")
                    if result.format == "onnx":
                        st.caption(tr("export.onnx_info", exporter=result.info.get("exporter"),
                                      opset=result.info.get("opset"), nodes=result.info.get("nodes")))
                else:  # why, in the page's language (the table's error column is the English text)
                    st.error(tr_error(result.failure) if result.failure is not None else plain(result.error))
        with st.expander(tr("export.speed")):
            if st.toggle(tr("export.measure"), key="ex_speed"):
                speed = speed_table(model, spec.input_shape, results)
                speed["note"] = [tr_message(n, markdown=False) if n is not None else "" for n in speed["note"]]
                st.dataframe(speed, hide_index=True, width="stretch")
    view = url_choice(st.segmented_control, tr("export.examples"), ["E1", "E2", "E3"], "ex_example", "E1",
                      lambda e: tr(f"export.ex.{e}"), required=True)
    st.code(saving_examples_code(spec.input_shape, name)[view], language="python")
    if view == "E1":
        st.info(tr("export.e1_note"))
    elif view == "E2":  # what this PyTorch itself says when torch.jit.trace runs
        warning = torchscript_warning()
        st.warning(tr("export.e2_note", version=TORCHSCRIPT_DEPRECATED_IN)
                   + (" " + tr("export.e2_says", warning=Code(warning)) if warning else ""))
