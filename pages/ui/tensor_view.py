"""Showing a tensor: its facts, and its values as a table or a heatmap (2-D slices of N-D)."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st
import torch

from core.lessons.tensors import describe, to_frame, value_text
from pages.ui.text import tr


def show_tensor(t, key: str, title: str | None = None) -> None:
    if title:
        st.markdown(f"**{title}**")
    if not isinstance(t, torch.Tensor):
        text, cut = value_text(t)  # bounded before formatting: a big tuple or list is not all written out
        st.code(text, language="text")
        if cut:
            st.caption(tr("tensors.result_cut", n=len(text) - 2))
        return
    facts = describe(t)
    st.dataframe(pd.DataFrame([{k: str(v) for k, v in facts.items()
                                if k in ("shape", "dtype", "device", "stride", "is_contiguous", "numel", "bytes",
                                         "requires_grad", "grad_fn")}]), hide_index=True, width="stretch")
    index = None
    if t.ndim >= 3:
        cols = st.columns(t.ndim - 2)
        index = [cols[d].number_input(tr("tensors.slice", dim=d), 0, t.shape[d] - 1, 0, key=f"{key}_slice{d}")
                 for d in range(t.ndim - 2)]
        st.caption(tr("tensors.slice_caption", index=", ".join(map(str, index))))
    frame = to_frame(t.detach(), index)
    heat = t.ndim >= 2 and t.dtype != torch.bool and not t.is_complex() and st.toggle(
        tr("tensors.heatmap"), key=f"{key}_heat")
    if heat:
        fig = px.imshow(frame.to_numpy(dtype=float), color_continuous_scale="RdBu_r", aspect="auto",
                        text_auto=".3g" if frame.size <= 144 else False)
        fig.update_layout(height=min(600, 60 + 32 * len(frame)), margin=dict(l=0, r=0, t=10, b=0))
        st.plotly_chart(fig, key=f"{key}_fig")
    else:
        st.dataframe(frame, width="stretch")
