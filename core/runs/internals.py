"""A run's training internals as the pages show them: read from its metrics, drawn over time.

The trainer records them (``core.training.internals``) and the worker stores each value as a
metric ``internals/<layer>/<stat>`` (or ``internals/<stat>`` for the batch and the spikes), so
both run stores hold them with no table of their own. ``internals_frame`` turns a run's long
metrics frame into one row per (step, layer, stat); the figure builders draw:

- ``layer_figure``: one statistic of every layer over the steps (a line per layer), e.g. the
  update-to-weight ratio with the healthy 1e-3 marked, the gradient norms, the dead-ReLU share;
- ``band_figure``: one layer's weights, gradients or activations as a band (5th to 95th
  percentile) around the median, over the steps (TensorBoard's distributions);
- ``spikes``: the steps whose gradient norm jumped (the ratio to the recent median).
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from core.ml.plots import plot_text
from core.training.internals import PREFIX

# Per-layer statistics a page offers to draw for every layer, and whether their axis is logarithmic.
LAYER_STATS: dict[str, bool] = {"update_ratio": True, "grad_norm": True, "dead": False, "w_norm": False}
BANDS = ("w", "g", "a")   # weights, |gradients|, activations
HEALTHY_RATIO = 1e-3      # the update-to-weight ratio healthy training sits near
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#7c2d12",
          "#1e40af")


def internals_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """The ``internals/...`` rows of a run's metrics, as columns step, epoch, layer, stat, value
    (``layer`` is "" for the batch's statistics and the spikes). Empty when nothing was recorded."""
    columns = ["step", "epoch", "layer", "stat", "value"]
    if metrics is None or metrics.empty:
        return pd.DataFrame(columns=columns)
    rows = metrics[metrics["name"].str.startswith(PREFIX)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    parts = rows["name"].str.slice(len(PREFIX)).str.rsplit("/", n=1, expand=True)
    if parts.shape[1] == 1:
        parts[1] = parts[0]
        parts[0] = ""
    layer = parts[0].fillna("")
    stat = parts[1].where(parts[1].notna(), parts[0])
    layer = layer.where(parts[1].notna(), "")
    # The batch's statistics are named input/<stat>: "input" is their "layer".
    return pd.DataFrame({"step": rows["step"].astype(int).to_numpy(), "epoch": rows["epoch"].astype(int).to_numpy(),
                         "layer": layer.to_numpy(), "stat": stat.to_numpy(),
                         "value": rows["value"].astype(float).to_numpy()}).sort_values("step", kind="stable")


def layers(frame: pd.DataFrame) -> list[str]:
    """The layers with recorded statistics, in the model's order (weighted layers and activations)."""
    found = frame.loc[~frame["layer"].isin(("", "input")), "layer"].unique().tolist()

    def order(key: str) -> tuple:
        path = key.split(":", 1)[0]
        return tuple(int(p) if p.isdigit() else 10**6 for p in path.split(".")), key

    return sorted(found, key=order)


def series(frame: pd.DataFrame, layer: str, stat: str) -> pd.DataFrame:
    """(step, value) of one statistic of one layer, by step."""
    one = frame[(frame["layer"] == layer) & (frame["stat"] == stat)]
    return one[["step", "value"]].reset_index(drop=True)


def _layout(title: str, x_title: str, log_y: bool, height: int) -> dict:
    return dict(height=height, margin=dict(l=0, r=0, t=30, b=0), title=dict(text=plot_text(title), x=0),
                xaxis=dict(title=dict(text=plot_text(x_title))),
                yaxis={"type": "log", "dtick": 1, "exponentformat": "power"} if log_y else {},
                legend=dict(orientation="h", yanchor="top", y=-80 / max(120, height - 30)))


def layer_figure(frame: pd.DataFrame, stat: str, title: str, x_title: str = "step",
                 healthy_label: str | None = None, height: int = 340) -> go.Figure:
    """``stat`` of every layer that has it, a line per layer; the update ratio's healthy 1e-3 dashed."""
    fig = go.Figure()
    shown = [k for k in layers(frame) if not series(frame, k, stat).empty]
    for i, key in enumerate(shown):
        s = series(frame, key, stat)
        fig.add_trace(go.Scatter(x=s["step"], y=s["value"], name=plot_text(key), mode="lines+markers",
                                 line=dict(color=COLORS[i % len(COLORS)]), marker=dict(size=5)))
    log_y = LAYER_STATS.get(stat, False)
    if stat == "update_ratio" and shown:
        fig.add_hline(y=HEALTHY_RATIO, line=dict(dash="dash", color="#6b7280"),
                      annotation_text=plot_text(healthy_label or "1e-3"), annotation_position="top left")
    fig.update_layout(**_layout(title, x_title, log_y, height))
    if stat == "dead":
        fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    return fig


def band_figure(frame: pd.DataFrame, layer: str, kind: str, title: str, names: Mapping[str, str],
                x_title: str = "step", height: int = 340) -> go.Figure:
    """One layer's ``kind`` (``w``, ``g`` or ``a``) over the steps: the 5th-95th percentile band and the median.
    ``names`` labels the traces: ``band`` and ``median``."""
    low, mid, high = (series(frame, layer, f"{kind}_{q}") for q in ("p05", "p50", "p95"))
    fig = go.Figure()
    if not mid.empty:
        fig.add_trace(go.Scatter(x=high["step"], y=high["value"], mode="lines", line=dict(width=0),
                                 showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=low["step"], y=low["value"], mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor="rgba(37, 99, 235, 0.2)", name=plot_text(names.get("band", "p05-p95"))))
        fig.add_trace(go.Scatter(x=mid["step"], y=mid["value"], mode="lines+markers", name=plot_text(
            names.get("median", "median")), line=dict(color="#2563eb"), marker=dict(size=5)))
    fig.update_layout(**_layout(title, x_title, kind == "g", height))
    return fig


def spikes(frame: pd.DataFrame) -> pd.DataFrame:
    """(step, ratio) of every gradient-norm spike (the step's norm over the median of the 50 before it)."""
    one = frame[(frame["layer"] == "") & (frame["stat"] == "spike")]
    return one[["step", "value"]].rename(columns={"value": "ratio"}).reset_index(drop=True)
