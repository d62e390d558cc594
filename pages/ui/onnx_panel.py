"""The Export page's "Open an ONNX model" view: upload, check, graph, node table and a run on a dataset.
The opened model stays in the session, so Predict can offer it for a drawn digit."""
from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from core.errors import Code, LabError
from core.ml import onnx_view as O
from core.ml.data import MNIST_MEAN, MNIST_STD, find_dataset, load_dataset, normalize
from core.settings import load_settings
from pages.ui import datasets as user_data
from pages.ui.text import tr
from pages.ui.widgets import url_choice

MODEL_KEY = "onnx_model"  # the opened OnnxModel (Predict reads it)
NORMS = ("train", "mnist", "none")


def opened() -> O.OnnxModel | None:
    model = st.session_state.get(MODEL_KEY)
    return model if isinstance(model, O.OnnxModel) else None


def _open(data: bytes) -> O.OnnxModel | None:
    sha = hashlib.sha256(data).hexdigest()[:16]
    model = opened()
    if model is not None and model.sha == sha:
        return model
    st.session_state.pop(MODEL_KEY, None)
    try:
        with st.spinner(tr("onnx.checking")):
            model = O.open_onnx(data)
    except LabError as exc:
        st.error(tr("onnx.refused", reason=exc))
        return None
    st.session_state[MODEL_KEY] = model
    return model


def _io_table(model: O.OnnxModel) -> pd.DataFrame:
    rows = [{tr("onnx.col.kind"): tr(f"onnx.kind.{kind}"), tr("onnx.col.name"): v.name,
             tr("onnx.col.shape"): "(" + ", ".join(map(str, v.shape)) + ")", tr("onnx.col.dtype"): v.dtype}
            for kind, values in (("input", model.inputs), ("output", model.outputs)) for v in values]
    return pd.DataFrame(rows)


def _run_view(model: O.OnnxModel) -> None:
    from pages.ui.train_views import show_evaluation

    candidates = ["digits8k", *user_data.visible()]
    fitting = [k for k in candidates if (info := find_dataset(k)) is not None
               and O.fits(model, info.input_shape, info.outputs)]
    if not fitting:
        st.info(tr("onnx.no_fit", shape=Code(str(model.inputs[0].shape if model.inputs else ()))))
        return
    c = st.columns([2, 2, 1], vertical_alignment="bottom")
    name = url_choice(c[0].selectbox, tr("onnx.dataset"), fitting, "ex_onnx_ds", fitting[0], user_data.label)
    norm = url_choice(c[1].selectbox, tr("onnx.norm"), list(NORMS), "ex_onnx_norm", "train",
                      lambda n: tr(f"onnx.norm.{n}"))
    c[2].button(tr("onnx.run"), type="primary", key="ex_onnx_run", width="stretch",
                on_click=lambda: st.session_state.update(ex_onnx_go=True))
    key = (model.sha, name, norm)
    if st.session_state.pop("ex_onnx_go", False):
        try:
            with st.spinner(tr("onnx.running")):
                data = load_dataset(name, load_settings())
                mean, std = {"train": (data.mean, data.std), "mnist": (MNIST_MEAN, MNIST_STD),
                             "none": (0.0, 1.0)}[norm]
                x = normalize(data.test_images, mean, std)
                result = O.evaluate(model, x, data.test_labels, len(data.classes))
            st.session_state["ex_onnx_result"] = (key, {**result, "x": x[:result["n"]], "y": data.test_labels[
                :result["n"]]})
        except LabError as exc:
            st.error(tr("error.bad_value", reason=exc))
    saved = st.session_state.get("ex_onnx_result")
    if saved and saved[0] == key:
        st.caption(tr("onnx.evaluated", n=saved[1]["n"], dataset=user_data.label(name)))
        show_evaluation(saved[1], prefix="ex_onnx")


def onnx_panel() -> None:
    st.caption(tr("onnx.intro", mb=O.MAX_ONNX_BYTES / 2**20, nodes=O.MAX_NODES))
    upload = st.file_uploader(tr("onnx.upload"), type=["onnx"], key="ex_onnx_file")
    if upload is None:
        return
    model = _open(upload.getvalue())
    if model is None:
        return
    st.success(tr("onnx.checked", producer=model.producer or "?", opset=model.opset or "?", nodes=model.nodes,
                  params=model.params))
    st.dataframe(_io_table(model), hide_index=True)
    st.markdown(f"**{tr('onnx.nodes')}**")
    table = O.node_table(model)
    st.dataframe(table.rename(columns={c: tr(f"onnx.col.{c}") for c in table.columns if c != "#"}),
                 hide_index=True, height=min(500, 38 + 35 * len(table)))
    with st.expander(tr("onnx.graph"), expanded=model.nodes <= 40):  # a long graph stays folded
        st.graphviz_chart(O.graph_dot(model))
    st.markdown(f"**{tr('onnx.run_title')}**")
    _run_view(model)
    if O.fits(model, (1, 28, 28), 10):
        st.caption(tr("onnx.predict_hint"))
