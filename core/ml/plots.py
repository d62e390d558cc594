"""Plotly figures the pages show. Pages only pass them to ``st.plotly_chart``."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch


def image_grid(images: torch.Tensor, titles: list[str], cols: int = 8, size: int = 90) -> go.Figure:
    """A grid of grey (N, H, W) or RGB (N, 3, H, W) images in [0, 1] with a title each."""
    imgs = images.detach().float().clamp(0, 1)
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]
    if imgs.ndim == 4:  # (N, 3, H, W) -> (N, H, W, 3) as plotly expects
        imgs = imgs.permute(0, 2, 3, 1)
    n = len(imgs)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    title_px = 24  # room above each row for the labels
    height = rows * (size + title_px) + 10
    fig = px.imshow((imgs * 255).round().to(torch.uint8).numpy(), facet_col=0, facet_col_wrap=cols,
                    binary_string=True, facet_row_spacing=min(0.3, title_px / height) if rows > 1 else 0.0,
                    facet_col_spacing=0.01)
    for annotation in fig.layout.annotations:
        i = int(annotation.text.split("=")[-1])
        annotation.text = titles[i] if i < len(titles) else ""
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=title_px, b=0))
    return fig


def class_balance(counts: pd.DataFrame, split_label: str, count_label: str) -> go.Figure:
    long = counts.melt(id_vars="class", var_name=split_label, value_name=count_label)
    fig = px.bar(long, x="class", y=count_label, color=split_label, barmode="group")
    fig.update_layout(height=320, margin=dict(l=0, r=0, t=10, b=0), xaxis_type="category")
    return fig


def value_histograms(series: dict[str, torch.Tensor], bins: int = 60, count_label: str = "count",
                     value_label: str = "value") -> go.Figure:
    """Overlaid histograms of the values of each tensor (log-scale counts), binned here on the server.

    Each series is counted into the same ``bins`` bins over the range of all values (``torch.histc``),
    so the browser receives ``bins`` bars per series instead of every raw value (millions for a few
    thousand images, which took the browser half a minute to bin).
    """
    flat = {name: x.detach().flatten().float() for name, x in series.items()}
    lo = min((float(x.min()) for x in flat.values() if x.numel()), default=0.0)
    hi = max((float(x.max()) for x in flat.values() if x.numel()), default=1.0)
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    centers = [lo + (i + 0.5) * width for i in range(bins)]
    fig = go.Figure()
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]  # one clearly different colour each
    for i, (name, x) in enumerate(flat.items()):
        counts = torch.histc(x, bins=bins, min=lo, max=hi).tolist()
        fig.add_trace(go.Bar(x=centers, y=[c if c > 0 else None for c in counts], width=width, name=name,
                             opacity=0.6, marker_color=colors[i % len(colors)]))
    fig.update_layout(barmode="overlay", height=300, margin=dict(l=0, r=0, t=10, b=0), yaxis_type="log",
                      xaxis_title=value_label, yaxis_title=count_label,
                      legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    return fig
