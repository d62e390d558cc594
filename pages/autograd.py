"""Autograd: derivatives of f(x), gradients of g(w), the computation graph, and teaching demos."""
import pandas as pd
import streamlit as st

from core.lessons.autograd import (
    EXAMPLES,
    a3_note,
    activation_figure,
    activations,
    contour_figure,
    demo_accumulation,
    demo_anomaly,
    demo_no_grad,
    derivative_figure,
    derivatives,
    gradient,
)
from core.lessons.graph import trace_expression
from core.safe.allowlist import ExprError
from pages.ui.frame import frame
from pages.ui.predict_prompt import page_prompt_box
from pages.ui.text import tr, tr_message
from pages.ui.widgets import url_choice

frame()
VIEWS = ["derivative", "gradient", "graph", "demos", "activations"]
EXAMPLE_VIEW = {"A1": "derivative", "A2": "derivative", "A3": "gradient", "A4": "demos", "A5": "demos",
                "A6": "demos", "A7": "activations"}


def pick_example(example: str) -> None:
    info, s = EXAMPLES[example], st.session_state
    s["ag_view"], s["ag_example"] = EXAMPLE_VIEW[example], example
    if example in ("A1", "A2"):
        s["ag_f"], s["ag_x0"] = info["expr"], float(info["point"])
    elif example == "A3":
        s["ag_g"], s["ag_w"] = info["expr"], ", ".join(map(str, info["values"]))
    elif example in ("A4", "A5", "A6"):
        s["ag_demo"] = example


def labels(*keys: str) -> dict:
    return {k: tr(f"autograd.label.{k}") for k in keys}


st.title(tr("autograd.title"))
st.write(tr("autograd.intro"))
page_prompt_box("autograd_sign", "ag_pp")
st.markdown(f"**{tr('autograd.examples')}**")
with st.container(horizontal=True):  # buttons as wide as their titles, wrapping: no title is cut off
    for example in EXAMPLES:
        st.button(tr(f"autograd.ex.{example}"), key=f"ag_ex_{example}", on_click=pick_example, args=(example,),
                  help=tr(f"autograd.ex_help.{example}"))
view = url_choice(st.segmented_control, tr("autograd.view"), VIEWS, "ag_view", "derivative",
                  lambda v: tr(f"autograd.view.{v}"), required=True)
try:
    if view == "derivative":
        f = st.text_input("f(x)", "x**3 + 5*x", key="ag_f", bind="query-params", max_chars=500,
                          help=tr("autograd.expr_help"))
        c = st.columns(3)
        x0 = c[0].number_input("x₀", -1e6, 1e6, 2.0, key="ag_x0", bind="query-params")
        lo = c[1].number_input(tr("autograd.lo"), -1e6, 1e6, -3.0, key="ag_lo", bind="query-params")
        hi = c[2].number_input(tr("autograd.hi"), -1e6, 1e6, 3.0, key="ag_hi", bind="query-params")
        result = derivatives(f, x0, min(lo, x0 - 1e-3), max(hi, x0 + 1e-3))
        m = st.columns(3)
        m[0].metric("f(x₀)", f"{result['value']:.6g}")
        m[1].metric("f′(x₀)", f"{result['d1']:.6g}")
        m[2].metric("f″(x₀)", f"{result['d2']:.6g}")
        st.plotly_chart(derivative_figure(result, labels("f", "df", "d2f", "tangent", "point", "x", "y")))
        st.code(result["code"], language="python")

    elif view == "gradient":
        g = st.text_input("g(w)", "2*w0*w1 + w1*cos(w0)", key="ag_g", bind="query-params", max_chars=500,
                          help=tr("autograd.w_help"))
        w_text = st.text_input("w", "3.14, 1", key="ag_w", bind="query-params", help=tr("autograd.w_values"))
        result = gradient(g, w_text)
        if (note := a3_note(result)) is not None:  # A3's function at A3's point: what the tutorial gets wrong
            st.warning(tr_message(note))
        st.dataframe(pd.DataFrame({"w": result["names"], tr("autograd.value"): result["w"],
                                   "∂g/∂w": result["grad"]}), hide_index=True)
        st.metric("g(w)", f"{result['value']:.6g}")
        if len(result["names"]) == 2:
            span = st.slider(tr("autograd.span"), 0.5, 10.0, 2.0, key="ag_span", bind="query-params")
            st.plotly_chart(contour_figure(g, result["w"], span, labels={**labels("g", "gradient"), "point": "w"}))
            st.caption(tr("autograd.contour_caption"))
        st.code(result["code"], language="python")

    elif view == "graph":
        expr = st.text_input(tr("autograd.graph_expr"), "(x * w).sum() + sin(x).mean()", key="ag_expr",
                             bind="query-params", max_chars=500, help=tr("autograd.expr_help"))
        c = st.columns([3, 1, 3, 1])
        x_text = c[0].text_input("x", "1, 2, 3", key="ag_xv", bind="query-params")
        x_rg = c[1].checkbox("requires_grad", True, key="ag_xrg")
        w_text = c[2].text_input("w", "0.5, -1, 2", key="ag_wv", bind="query-params")
        w_rg = c[3].checkbox("requires_grad ", True, key="ag_wrg")
        saved = st.toggle(tr("autograd.saved"), key="ag_saved")
        traced = trace_expression(expr, {"x": (x_text, x_rg), "w": (w_text, w_rg)}, show_saved=saved)
        st.graphviz_chart(traced["dot"])
        grads = [{"leaf": name, "grad": "—" if g is None else str(g.tolist())} for name, g in traced["grads"].items()]
        st.dataframe(pd.DataFrame(grads), hide_index=True)
        st.caption(tr("autograd.graph_caption", backward=traced["backward"] or "—"))
        st.code(traced["code"], language="python")

    elif view == "demos":
        demo = url_choice(st.radio, tr("autograd.demo"), ["A4", "A5", "A6"], "ag_demo", "A4",
                          lambda d: tr(f"autograd.ex.{d}"), horizontal=True)
        if demo == "A4":
            result = demo_accumulation()
            st.dataframe(pd.DataFrame([{tr("autograd.col.code"): s["code"], tr("autograd.col.grad"): s["grad"],
                                        tr("autograd.col.note"): tr_message(s["note"], markdown=False)}
                                       for s in result["steps"]]), hide_index=True)
            st.info(tr("autograd.a4", first=result["first"], second=result["second"]))
        elif demo == "A5":
            result = demo_no_grad()
            st.dataframe(pd.DataFrame(result["rows"]).astype(str), hide_index=True)
            st.info(tr("autograd.a5"))
        else:
            result = demo_anomaly()
            st.metric(tr("autograd.plain_grad"), str(result["grad_plain"]))
            if result["error"]:
                st.error(tr("autograd.torch_says"))
                st.code(result["error"], language="text", wrap_lines=True)
            st.info(tr("autograd.a6", op=result["op"], forward=result["forward_op"]))
        st.code(result["code"], language="python")

    else:
        result = activations()
        st.plotly_chart(activation_figure(result, labels("function", "derivative")))
        st.caption(tr("autograd.a7"))
        st.code(result["code"], language="python")
except (ExprError, ValueError) as exc:
    st.error(tr("autograd.error", reason=exc))
