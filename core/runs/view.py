"""What the Train and Runs pages show about runs: progress, curves (smoothed, downsampled),
config differences, summaries, and the evaluation of a trained model (confusion matrix,
per-class accuracy, misclassified digits). Plain data and plotly figures only."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from core.errors import Code, LabError, first_line
from core.ml.activations import eval_batch_size
from core.ml.data import DATASETS
from core.ml.plots import plot_text
from core.runs.store import RunRow
from core.safe.budget import Deadline

MAX_POINTS = 2000  # per series: charts stay responsive with long runs
EPOCH_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds")


def ema(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average with its start-up bias removed."""
    if not 0.0 <= weight < 1.0:
        raise ValueError("smoothing must be in [0, 1)")
    out = np.empty(len(values))
    last, debias = 0.0, 0.0
    for i, v in enumerate(np.asarray(values, dtype=float)):
        if not math.isfinite(v):
            out[i] = v
            continue
        last = last * weight + (1 - weight) * v
        debias = debias * weight + (1 - weight)
        out[i] = last / debias
    return out


def downsample(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row so at most ``max_points`` remain (the last row is always kept)."""
    if len(frame) <= max_points:
        return frame
    k = math.ceil(len(frame) / max_points)
    keep = frame.iloc[::k]
    if keep.index[-1] != frame.index[-1]:
        keep = pd.concat([keep, frame.iloc[[-1]]])
    return keep


def train_samples(config: Mapping[str, Any]) -> int | None:
    """Training samples a run config uses (None for a dataset the lab does not know)."""
    info = DATASETS.get(str(config.get("dataset")))
    if info is None:
        return None
    n = info.train_size
    if config.get("limit_train"):
        n = min(n, int(config["limit_train"]))
    return n


def total_steps(config: Mapping[str, Any]) -> int | None:
    """Optimizer steps a run config takes (None when the dataset size is unknown)."""
    n = train_samples(config)
    if n is None:
        return None
    batch = max(1, int(config.get("batch_size") or 1))
    return -(-n // batch) * int(config.get("epochs") or 1)


def _steps_per_s(started: float, metrics: pd.DataFrame) -> float | None:
    """This worker's speed: steps per second between its first and last metric rows since it
    started (a resumed run's worker starts at its checkpoint's step, not at 0)."""
    rows = metrics[metrics["wall"] >= started] if len(metrics) else metrics
    if len(rows) < 2:
        return None
    first, last = rows.loc[rows["wall"].idxmin()], rows.loc[rows["wall"].idxmax()]
    steps, seconds = float(last["step"] - first["step"]), float(last["wall"] - first["wall"])
    return steps / seconds if steps > 0 and seconds > 0 else None


def progress(run: RunRow, total_steps: int | None, metrics: pd.DataFrame | None = None) -> dict[str, Any]:
    """Fraction done and an ETA from the run's step count.

    With the run's ``metrics`` (long frame with ``step`` and ``wall``), the ETA is the steps left at
    the speed this worker has shown since it started, or None until it has shown one: after a
    Resume the step count is the checkpoint's, and the time since the start covers only the
    steps since then. Without them, the steps done over the time since the start (a run that
    started at step 0).
    """
    step = int(run.get("step") or 0)
    started = run.get("started")
    done = min(1.0, step / total_steps) if total_steps else 0.0
    eta = None
    if started and step and total_steps and run.get("status") == "running":
        if metrics is not None:
            rate = _steps_per_s(started, metrics)
            eta = max(0.0, (total_steps - step) / rate) if rate else None
        else:
            elapsed = time.time() - started
            eta = max(0.0, elapsed / step * (total_steps - step))
    return {"fraction": done, "step": step, "total": total_steps, "eta_s": eta}


def series(metrics: pd.DataFrame, name: str, x: str = "step") -> pd.DataFrame:
    """One metric of a long metrics frame as (x, value), with x = step, epoch or relative wall time."""
    rows = metrics[metrics["name"] == name].sort_values(["step", "wall"])
    if rows.empty:
        return pd.DataFrame(columns=["x", "value"])
    if x == "wall":
        xs = rows["wall"] - metrics["wall"].min()
    elif x == "epoch":
        xs = rows["epoch"] if name in EPOCH_METRICS else rows["epoch"] - 1 + rows.groupby("epoch").cumcount() / \
            rows.groupby("epoch")["step"].transform("count")
    else:
        xs = rows["step"]
    return pd.DataFrame({"x": xs.to_numpy(), "value": rows["value"].to_numpy()})


def curves_figure(runs: dict[str, pd.DataFrame], name: str, x: str = "step", smoothing: float = 0.0,
                  log_y: bool = False, labels: dict | None = None, height: int = 320) -> go.Figure:
    """Overlaid curves of one metric for several runs ({label: long metrics frame}).

    The figure is described as one dict and validated once by ``go.Figure``: about 5x faster
    than ``add_trace`` + ``update_layout`` (each a separate validation pass), which matters
    because the Train page redraws four of these every second while it watches a run
    ("UI cost" in BENCHMARKS.md).
    """
    traces = []
    for raw_label, metrics in runs.items():
        label = plot_text(raw_label)  # a run's name is user text: never markup in the legend or hover
        s = series(metrics, name, x)
        if s.empty:
            continue
        s = downsample(s)
        xs, ys = s["x"].to_numpy(), s["value"].to_numpy(dtype=float)
        if smoothing > 0 and len(s) > 2:
            traces.append(dict(type="scatter", x=xs, y=ys, name=f"{label} (raw)", mode="lines", line=dict(width=1),
                               opacity=0.25, showlegend=False, legendgroup=label))
            traces.append(dict(type="scatter", x=xs, y=ema(ys, smoothing), name=label, mode="lines",
                               legendgroup=label))
        else:
            traces.append(dict(type="scatter", x=xs, y=ys, name=label,
                               mode="lines+markers" if len(s) < 30 else "lines"))
    lab = {"x": {"step": "step", "epoch": "epoch", "wall": "seconds"}[x], "y": name, **(labels or {})}
    lab = {k: plot_text(v) for k, v in lab.items()}
    layout = dict(height=height, margin=dict(l=0, r=0, t=30, b=0), title=dict(text=lab["y"], x=0),
                  xaxis=dict(title=dict(text=lab["x"])), legend=dict(orientation="h", y=-0.25))
    if log_y:
        layout["yaxis"] = dict(type="log")
    return go.Figure(dict(data=traces, layout=layout))


class MetricsFollower:
    """One run's metrics, kept current by reading only the rows logged since the last read.

    The Train page redraws a watched run every second; reading all of a long run's rows each
    time (tens of thousands) would cost more than the whole tick may ("UI cost" in
    BENCHMARKS.md). Everything is read again when the run was (re)started since the last
    read or rows disappeared: a resumed run deletes the metrics after its checkpoint.
    """

    def __init__(self, run_id: str, names: tuple[str, ...] | None = None) -> None:
        self.run_id, self.names = run_id, names
        self._reset(None)

    def _reset(self, started) -> None:
        self.started, self.last, self.frame = started, 0, None

    def update(self, store, started: float | None = None) -> pd.DataFrame:
        """The run's metrics (long frame, as ``RunStore.metrics``); ``started`` is the run's start time."""
        if started != self.started:
            self._reset(started)
        new, last, total = store.metrics_since(self.run_id, self.last, self.names)
        held = 0 if self.frame is None else len(self.frame)
        if held + len(new) != total:  # rows were deleted (or rewritten): read everything again
            self._reset(started)
            new, last, total = store.metrics_since(self.run_id, 0, self.names)
            held = 0
        if self.frame is None or not held:
            self.frame = new
        elif len(new):
            self.frame = pd.concat([self.frame, new], ignore_index=True)
        self.last = last
        return self.frame


def flat_config(config: dict) -> dict:
    """A run config with the model spec reduced to a short, comparable text."""
    out = {k: v for k, v in config.items() if k != "model_spec"}
    if config.get("model_spec"):
        spec = config["model_spec"]
        out["model_spec"] = f"{spec.get('name', 'custom')} ({len(spec.get('layers', []))} layers)"
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in out.items()}


def config_table(runs: list[RunRow], only_differences: bool = False) -> pd.DataFrame:
    """Configs side by side: one row per setting, one column per run."""
    columns = {f"{r['name'] or r['id']}": {k: str(v) for k, v in flat_config(r["config"]).items()} for r in runs}
    table = pd.DataFrame(columns, dtype=object).fillna("—")
    if only_differences and len(runs) > 1:
        table = table[table.nunique(axis=1) > 1]
    return table


def summary_rows(runs: list[RunRow], metrics: dict[str, pd.DataFrame], target_acc: float = 0.98) -> pd.DataFrame:
    """Best/last accuracy, lowest loss, duration and time to a target accuracy for each run."""
    rows = []
    for run in runs:
        m = metrics.get(run["id"], pd.DataFrame(columns=["name", "value", "wall", "step"]))
        acc = m[m["name"] == "test_acc"].sort_values("step")
        loss = m[m["name"] == "test_loss"]
        start = run.get("started") or (m["wall"].min() if len(m) else None)
        reach = acc[acc["value"] >= target_acc]
        rows.append({
            "run": run["name"] or run["id"], "status": run["status"],
            "best acc": acc["value"].max() if len(acc) else None,
            "last acc": acc["value"].iloc[-1] if len(acc) else None,
            "min test loss": loss["value"].min() if len(loss) else None,
            f"s to {target_acc:.1%}": (reach["wall"].iloc[0] - start) if len(reach) and start else None,
            "duration s": ((run.get("finished") or time.time()) - start) if start else None,
        })
    return pd.DataFrame(rows)


def runs_table(runs: list[RunRow]) -> pd.DataFrame:
    """The Runs page's table: one row per run."""
    rows = []
    for r in runs:
        cfg = r.get("config") or {}
        best, last = r.get("best_metrics") or {}, r.get("last_metrics") or {}
        start, end = r.get("started"), r.get("finished") or (time.time() if r["status"] == "running" else None)
        rows.append({
            "id": r["id"], "name": r["name"], "status": r["status"],
            "model": (cfg.get("model_spec") or {}).get("name") or cfg.get("preset"),
            "dataset": cfg.get("dataset"), "precision": r.get("precision") or cfg.get("precision"),
            "device": r.get("device") or cfg.get("device"),
            "best acc": best.get("test_acc"), "last acc": last.get("test_acc"),
            "duration s": round(end - start, 1) if start and end else None,
            "created": pd.to_datetime(r["created"], unit="s").strftime("%Y-%m-%d %H:%M:%S"),
            "tags": ", ".join(r.get("tags") or []),
        })
    return pd.DataFrame(rows, columns=["id", "name", "status", "model", "dataset", "precision", "device",
                                       "best acc", "last acc", "duration s", "created", "tags"])


@torch.no_grad()
def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int = 10,
                   batch_size: int = 1000, memory_bytes: int | None = None, seconds: float | None = None) -> dict:
    """Confusion matrix, per-class accuracy and the misclassified test images (most confident first).

    This runs in the server, for any model a user uploads: batches are sized so their
    activations fit in ``memory_bytes`` (default ``PYTORCH_LAB_BUDGET_MB``; a model that needs
    more for one sample is refused before anything runs), and the whole evaluation stops with
    a message after ``seconds`` (default ``PYTORCH_LAB_BUDGET_S``). Raises ``LabError``.
    """
    model.eval()
    deadline = Deadline(seconds, "budget.evaluation")
    try:
        batch = eval_batch_size(model, tuple(x.shape[1:]), memory_bytes, largest=batch_size)
        parts = []
        for i in range(0, len(x), batch):
            deadline.check()
            parts.append(torch.softmax(model(x[i:i + batch]).float(), dim=1))
        probs = torch.cat(parts)
    except LabError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # torch's refusals: shapes, dtypes
        raise LabError("runs.evaluation_failed", reason=Code(first_line(exc))) from None
    if probs.dim() != 2 or probs.shape[1] > classes:
        raise LabError("runs.evaluation_outputs", shape=Code(str(tuple(probs.shape[1:]))), classes=classes)
    pred = probs.argmax(dim=1)
    confusion = torch.zeros(classes, classes, dtype=torch.int64)
    confusion.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    per_class = confusion.diag().float() / confusion.sum(dim=1).clamp(min=1).float()
    wrong = torch.nonzero(pred != y).flatten()
    conf = probs[wrong, pred[wrong]]
    order = wrong[torch.argsort(conf, descending=True)]
    return {"accuracy": float((pred == y).float().mean()), "confusion": confusion.numpy(),
            "per_class": per_class.numpy(), "wrong": order.numpy(), "pred": pred.numpy(),
            "confidence": probs.max(dim=1).values.numpy()}


def confusion_figure(confusion: np.ndarray, classes: list[str], labels: dict | None = None) -> go.Figure:
    lab = {k: plot_text(v) for k, v in {"x": "predicted", "y": "true", **(labels or {})}.items()}
    classes = [plot_text(c) for c in classes]
    fig = go.Figure(go.Heatmap(z=confusion, x=classes, y=classes, colorscale="Blues", text=confusion,
                               texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0), xaxis_title=lab["x"], yaxis_title=lab["y"])
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig
