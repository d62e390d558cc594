"""Plotly figures the pages show. Pages only pass them to ``st.plotly_chart``.

Plotly renders a small HTML subset in every text it draws (legends, hover labels, titles, axis
titles, annotations): ``<a href>`` becomes a link, ``<b>`` bold. Text a user chose (a run's
name, a class label) goes through :func:`plot_text` first, so it shows literally.
"""
from __future__ import annotations

import base64
import html
import io

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from PIL import Image
from torchvision.utils import make_grid


def plot_text(text: object) -> str:
    """``text`` as plotly shows it literally: ``<``, ``>`` and ``&`` as entities, which plotly
    draws as the characters themselves instead of reading them as markup."""
    return html.escape(str(text), quote=False)


TITLE_PX = 24  # room above each row of an image grid for the labels, in screen pixels


def image_grid(images: torch.Tensor, titles: list[str], cols: int = 8, size: int = 90) -> go.Figure:
    """A grid of grey (N, H, W) or RGB (N, 3, H, W) images in [0, 1] with a title each.

    One PNG (torchvision's ``make_grid`` of the images, each with a transparent band above it for its
    title) in one ``go.Image`` trace, the titles as annotations. ``px.imshow(..., facet_col=...)`` draws
    the same grid as N subplots, and building those cost the server 50-100 ms per grid, several per
    Data page view; this figure costs a few milliseconds and the browser one image to decode.
    """
    imgs = images.detach().float().clamp(0, 1)
    if imgs.ndim == 3:
        imgs = imgs[:, None]
    if imgs.shape[1] == 1:
        imgs = imgs.expand(-1, 3, -1, -1)
    n, _, h, w = imgs.shape
    cols = max(1, min(cols, n))
    scale = size / max(h, w)  # screen pixels per image pixel
    band = max(1, round(TITLE_PX / scale))  # the title band, in image pixels
    gap = max(1, round(4 / scale))
    tiles = torch.cat([imgs, torch.ones_like(imgs[:, :1])], 1)  # RGBA: the bands and gaps stay transparent
    tiles = torch.nn.functional.pad(tiles, (0, 0, band, 0))
    canvas = make_grid(tiles, nrow=cols, padding=gap, pad_value=0.0) if n else torch.zeros(4, 1, 1)
    pixels = (canvas.permute(1, 2, 0) * 255).round().to(torch.uint8).contiguous().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    source = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    notes = [{"x": gap + (i % cols) * (w + gap) + w / 2, "y": gap + (i // cols) * (h + band + gap) + band / 2,
              "text": plot_text(titles[i]) if i < len(titles) else "", "showarrow": False, "font": {"size": 12}}
             for i in range(n)]
    # One layout given whole: plotly validates it once (add_annotation per title took ~5 ms each).
    layout = {"height": round(canvas.shape[1] * scale) + 10, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
              "dragmode": False, "annotations": notes,
              "xaxis": {"visible": False, "range": [0, canvas.shape[2]], "constrain": "domain"},
              "yaxis": {"visible": False, "range": [canvas.shape[1], 0], "scaleanchor": "x", "constrain": "domain"}}
    return go.Figure(data=[go.Image(source=source, hoverinfo="skip")], layout=layout)


def class_balance(counts: pd.DataFrame, split_label: str, count_label: str) -> go.Figure:
    split_label, count_label = plot_text(split_label), plot_text(count_label)
    long = counts.melt(id_vars="class", var_name=split_label, value_name=count_label)
    for column in (split_label, "class"):  # names (strings) are text for plotly too; numbers stay numbers
        long[column] = long[column].map(lambda v: plot_text(v) if isinstance(v, str) else v)
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
        fig.add_trace(go.Bar(x=centers, y=[c if c > 0 else None for c in counts], width=width, name=plot_text(name),
                             opacity=0.6, marker_color=colors[i % len(colors)]))
    fig.update_layout(barmode="overlay", height=300, margin=dict(l=0, r=0, t=10, b=0), yaxis_type="log",
                      xaxis_title=value_label, yaxis_title=count_label,
                      legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    return fig
