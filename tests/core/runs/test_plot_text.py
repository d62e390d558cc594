"""User text never becomes markup in a plotly figure (issue 22, item 8): a run renamed
``<a href="https://evil.example/">CLICK</a><b>B</b>`` was a link and bold text in the legends of
Runs → Compare and the Train live view."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from core.ml.plots import class_balance, image_grid, plot_text, value_histograms
from core.runs.view import confusion_figure, curves_figure

EVIL = '<a href="https://evil.example/">CLICK</a><b>B</b>'
TAG = re.compile(r"<\s*/?\s*(a|b)\b", re.I)  # the name's tags, live (plotly's own <extra> is fine)


def strings(fig: go.Figure) -> list[str]:
    """Every string in the figure's JSON, as the browser receives it."""
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(fig.to_json()))
    return found


def no_live_tag(fig: go.Figure) -> None:
    live = [s for s in strings(fig) if TAG.search(s)]
    assert not live, live
    assert any("&lt;a href" in s for s in strings(fig))  # the name is there, as text


def metrics(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame({"name": ["loss"] * n, "value": np.linspace(2, 0.1, n), "step": range(n),
                         "epoch": [i // 10 for i in range(n)], "wall": np.arange(n, dtype=float)})


def test_run_names_in_curves_are_text():
    for smoothing in (0.0, 0.6):
        fig = curves_figure({f"{EVIL} (fp32)": metrics(), "plain": metrics()}, "loss", smoothing=smoothing,
                            labels={"y": EVIL})
        no_live_tag(fig)
    names = [t.name for t in curves_figure({EVIL: metrics()}, "loss").data]
    assert names == [plot_text(EVIL)] and "&lt;b&gt;B&lt;/b&gt;" in names[0]


def test_other_figures_escape_their_text():
    no_live_tag(confusion_figure(np.eye(2, dtype=int), [EVIL, "1"], {"x": EVIL}))
    no_live_tag(image_grid(torch.rand(2, 8, 8), [EVIL, "ok"], cols=2))
    no_live_tag(value_histograms({EVIL: torch.randn(100)}))
    counts = pd.DataFrame({"class": [EVIL, "b"], "train": [3, 4], "test": [1, 2]})
    no_live_tag(class_balance(counts, EVIL, "count"))


def test_plot_text_keeps_plain_text():
    assert plot_text("r1 lr=0.01 (fp32)") == "r1 lr=0.01 (fp32)"
    assert plot_text("a & b < c") == "a &amp; b &lt; c"
