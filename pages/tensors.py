"""Tensors: create, inspect, operate on tensors; broadcasting; a free-form safe expression box."""
import json

import pandas as pd
import streamlit as st
import torch

from core.errors import Message
from core.lessons.tensor_examples import EXAMPLES, run_example
from core.lessons.tensors import DTYPE_NAMES, KINDS, OPS, apply_op, broadcast_explain, make_tensor
from core.safe.allowlist import ExprError
from core.safe.expr import evaluate
from core.safe.pycode import to_torch_code
from pages.ui.frame import frame
from pages.ui.predict_prompt import page_prompt_box
from pages.ui.state import seed, shared_extras
from pages.ui.tensor_view import show_tensor
from pages.ui.text import tr, tr_message
from pages.ui.widgets import url_choice

frame()
VIEWS = ["examples", "create", "ops", "broadcast", "expr"]
SHARE_MAX = 256  # elements of x or y a share link carries (longer links would pass ~2,000 characters)


def restore_shared_tensors() -> None:
    """x and y from a share link, rebuilt through the safe value parser (never evaluated)."""
    shared = st.session_state.get("shared_in", {}).pop("tensors", None)
    if not isinstance(shared, dict):
        return
    for name in ("x", "y"):
        item = shared.get(name)
        try:
            if not isinstance(item, dict) or item.get("dtype") not in DTYPE_NAMES:
                raise ValueError("damaged")
            t, _ = make_tensor("tensor", (), item["dtype"], json.dumps(item["values"])[:20_000])
            if t.numel() > SHARE_MAX:
                raise ValueError("too large")
            st.session_state[f"ten_{name}"] = t
        except (ValueError, TypeError):
            st.session_state["share_notice"] = tr("tensors.share_bad", name=name)


def share_tensors() -> None:
    """Put small x and y into the share link."""
    out = {}
    for name in ("x", "y"):
        t = st.session_state[f"ten_{name}"]
        if t.numel() <= SHARE_MAX and str(t.dtype).removeprefix("torch.") in DTYPE_NAMES:
            out[name] = {"values": t.detach().cpu().tolist(), "dtype": str(t.dtype).removeprefix("torch.")}
    shared_extras()["tensors"] = out


if "ten_x" not in st.session_state:
    st.session_state["ten_x"] = torch.arange(12.0).reshape(3, 4)
    st.session_state["ten_y"] = torch.ones(4)
restore_shared_tensors()
share_tensors()


def devices() -> list[str]:
    """Devices this machine has: cpu, plus cuda / mps when present."""
    found = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return found + (["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])


def pick_example(example: str) -> None:
    st.session_state["ten_ex"] = example
    st.session_state["ten_view"] = "examples"


def create() -> None:
    s = st.session_state
    try:
        t, code = make_tensor(s["ten_kind"], s["ten_shape"], s["ten_dtype"], s["ten_values"], start=s["ten_start"],
                                end=s["ten_end"], step=s["ten_step"], steps=int(s["ten_steps"]), seed=seed(),
                                requires_grad=s["ten_rg"])
        code = code.replace("x =", f"{s['ten_target']} =", 1)
        if s["ten_device"] != "cpu":
            t = t.to(s["ten_device"])
            code += f"\n{s['ten_target']} = {s['ten_target']}.to({s['ten_device']!r})"
        s[f"ten_{s['ten_target']}"], s["ten_code"], s["ten_err"] = t, code, None
    except (ValueError, RuntimeError) as exc:
        s["ten_err"] = exc  # the exception: shown in the page's language, also after a language switch


st.title(tr("tensors.title"))
st.write(tr("tensors.intro"))
page_prompt_box("tensors_broadcast", "ten_pp")
st.markdown(f"**{tr('tensors.examples')}**")
with st.container(horizontal=True):  # buttons as wide as their titles, wrapping: no title is cut off
    for example in EXAMPLES:
        st.button(tr(f"tensors.ex.{example}"), key=f"ten_ex_{example}", on_click=pick_example, args=(example,))
view = url_choice(st.segmented_control, tr("tensors.view"), VIEWS, "ten_view", "create",
                  lambda v: tr(f"tensors.view.{v}"), required=True)
x, y = st.session_state["ten_x"], st.session_state["ten_y"]

if view == "examples":
    example = url_choice(st.selectbox, tr("tensors.example"), list(EXAMPLES), "ten_ex", "T1",
                         lambda e: tr(f"tensors.ex.{e}"))
    result = run_example(example)
    if result["note"]:
        st.warning(tr_message(result["note"]))
    for step in result["steps"]:
        left, right = st.columns([2, 3])
        left.code(step["code"], language="python")
        if step["error"]:
            right.error(tr("tensors.torch_says"))
            right.code(step["error"], language="text", wrap_lines=True)
        else:
            right.code(step["text"], language="text")
        if step["note"]:
            right.caption(tr_message(step["note"]))
    for key in ("explanation", "note"):
        if isinstance(result["values"].get(key), Message):  # T4's explanation, T7's note on this machine
            st.info(tr_message(result["values"][key]))
    with st.expander(tr("tensors.code")):
        st.code(result["code"], language="python")

elif view == "create":
    c = st.columns(5)
    kind = c[0].selectbox(tr("tensors.kind"), KINDS, key="ten_kind")
    c[4].selectbox(tr("tensors.device"), devices(), key="ten_device")
    c[1].text_input(tr("tensors.shape"), "3, 4", key="ten_shape", help=tr("tensors.shape_help"))
    c[2].selectbox(tr("tensors.dtype"), [None, *DTYPE_NAMES], key="ten_dtype",
                   format_func=lambda d: tr("tensors.default") if d is None else d)
    c[3].radio(tr("tensors.target"), ["x", "y"], horizontal=True, key="ten_target")
    st.text_input(tr("tensors.values"), "[[1, 2, 3], [4, 5, 6]]", key="ten_values", disabled=kind not in
                  ("tensor", "from_numpy"), help=tr("tensors.values_help"))
    c = st.columns(5)
    c[0].number_input("start", value=0.0, key="ten_start", disabled=kind not in ("arange", "linspace"))
    c[1].number_input("end", value=10.0, key="ten_end", disabled=kind not in ("arange", "linspace"))
    c[2].number_input("step", value=1.0, key="ten_step", disabled=kind != "arange")
    c[3].number_input("steps", 2, 10_000, 5, key="ten_steps", disabled=kind != "linspace")
    c[4].checkbox("requires_grad", key="ten_rg")
    st.button(tr("tensors.create"), key="ten_create", on_click=create, type="primary")
    if st.session_state.get("ten_err"):
        st.error(tr("error.bad_value", reason=st.session_state["ten_err"]))
    elif st.session_state.get("ten_code"):
        st.code(st.session_state["ten_code"], language="python")
    left, right = st.columns(2)
    with left:
        show_tensor(x, "ten_show_x", "x")
    with right:
        show_tensor(y, "ten_show_y", "y")

elif view == "ops":
    c = st.columns([2, 3])
    # Bound to the URL (the options are PyTorch's names, not translated), so a share link keeps the operation.
    op = c[0].selectbox(tr("tensors.op"), list(OPS), key="ten_op", bind="query-params")
    params = {}
    with c[1]:
        for name in OPS[op]["params"]:
            if name == "keepdim":
                params[name] = st.checkbox("keepdim", key="ten_p_keepdim", bind="query-params")
            elif name == "other":
                text = st.text_input("other", "y", key="ten_p_other", help=tr("tensors.other_help"),
                                     bind="query-params")
                params[name] = y if text.strip() == "y" else text
            else:
                text = st.text_input(name, {"shape": "4, 3", "dims": "1, 0", "dim1": "1"}.get(name, "0"),
                                     key=f"ten_p_{name}", bind="query-params")
                if text.strip():
                    params[name] = text
    try:
        result, code = apply_op(x, op, **params)
        st.code(code, language="python")
        left, right = st.columns(2)
        with left:
            show_tensor(x, "ten_before", tr("tensors.before"))
        with right:
            show_tensor(result, "ten_after", tr("tensors.after"))
    except ValueError as exc:
        st.error(tr("tensors.op_error", reason=exc))
        if "view size is not compatible" in str(exc):
            st.info(tr("tensors.view_hint"))
        show_tensor(x, "ten_before", "x")

elif view == "broadcast":
    c = st.columns(2)
    a_text = c[0].text_input(tr("tensors.shape_a"), "3, 1", key="ten_ba", bind="query-params")
    b_text = c[1].text_input(tr("tensors.shape_b"), "1, 4", key="ten_bb", bind="query-params")
    try:
        info = broadcast_explain(a_text, b_text)
    except ValueError as exc:
        st.error(tr("error.bad_value", reason=exc))
        info = None
    if info is not None:
        columns = {"dim": "dim", "dim_from_right": "from_right", "a": "a", "b": "b", "result": "result", "rule": "rule"}
        table = [{tr(f"tensors.bc.col.{label}"): tr_message(row[k], markdown=False) if k == "rule" else row[k]
                  for k, label in columns.items()} for row in info["rows"]]
        st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
        if info["ok"]:
            st.success(tr("tensors.broadcast_ok", a=info["shape_a"], b=info["shape_b"], result=info["result"]))
        else:
            st.error(tr("tensors.broadcast_fail", reason=info["error"]))
        st.code(f"a = torch.zeros({tuple(info['shape_a'])})\nb = torch.zeros({tuple(info['shape_b'])})\n"
                f"print((a + b).shape)  # {info['result'] if info['ok'] else 'RuntimeError'}", language="python")

else:  # free-form expression over x and y
    text = st.text_input(tr("tensors.expr"), "x * 2 + sin(x)", key="ten_expr", bind="query-params",
                         help=tr("tensors.expr_help"), max_chars=500)
    try:
        value = evaluate(text, {"x": x, "y": y})
        source, _ = to_torch_code(text, ["x", "y"])
        st.code(f"result = {source}", language="python")
        show_tensor(value, "ten_expr_out", tr("tensors.result"))
    except ExprError as exc:
        st.error(tr("tensors.expr_error", reason=exc))
    with st.expander(tr("tensors.inputs")):
        left, right = st.columns(2)
        with left:
            show_tensor(x, "ten_in_x", "x")
        with right:
            show_tensor(y, "ten_in_y", "y")
