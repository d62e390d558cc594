"""What the Train and Runs pages show about runs: progress, curves (smoothed, downsampled),
config differences, summaries, and the evaluation of a trained model (confusion matrix,
per-class accuracy, misclassified digits). Plain data and plotly figures only.

``LiveCharts`` is the live view's process-wide cache: one metrics reader per run and the
figures of a run built once per new metric row, however many sessions watch it."""
from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from core.errors import Code, LabError, first_line
from core.ml.activations import eval_batch_size
from core.ml.data import find_dataset
from core.ml.plots import plot_text
from core.runs.store import RunRow
from core.safe.budget import Deadline
from core.training.config import steps_per_epoch

MAX_POINTS = 2000  # per series: charts stay responsive with long runs
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "epoch_seconds")


def ema(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average with its start-up bias removed; a value
    that is not finite (a diverged step) is kept as it is and skipped by the average.

    The recurrence runs in scipy's ``lfilter`` (C), not a Python loop: the live feed smooths every
    chart on each new step of every watched run."""
    if not 0.0 <= weight < 1.0:
        raise ValueError("smoothing must be in [0, 1)")
    from scipy.signal import lfilter  # imported when first smoothed: the training CLI never needs it

    out = np.array(values, dtype=float)
    finite = np.isfinite(out)
    kept = out[finite]
    if kept.size:
        last = lfilter([1 - weight], [1, -weight], kept)  # last_i = w * last_(i-1) + (1 - w) * v_i
        debias = 1 - weight ** np.arange(1, kept.size + 1)  # the same recurrence of 1s, from 0
        out[finite] = last / debias
    return out


def _every_kth(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """``downsample``'s rows as indices: every k-th of n, at most ``max_points`` and the last one."""
    if n <= max_points:
        return np.arange(n)
    keep = np.arange(0, n, math.ceil(n / max_points))
    return keep if keep[-1] == n - 1 else np.append(keep, n - 1)


def downsample(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row so at most ``max_points`` remain (the last row is always kept)."""
    return frame if len(frame) <= max_points else frame.iloc[_every_kth(len(frame), max_points)]


def train_samples(config: Mapping[str, Any]) -> int | None:
    """Training samples a run config fits on (None for a dataset the lab does not know): the training
    split less the images held out for validation (about ``val_size``: the split rounds per class)."""
    info = find_dataset(str(config.get("dataset")))
    if info is None:
        return None
    n = info.train_size
    if info.image:
        n -= min(int(config.get("val_size") or 0), n - 1)
    if config.get("limit_train"):
        n = min(n, int(config["limit_train"]))
    return n


def total_steps(config: Mapping[str, Any]) -> int | None:
    """Optimizer steps a run config takes, as the trainer counts them (accumulation and processes
    included); None when the dataset size is unknown."""
    n = train_samples(config)
    if n is None:
        return None
    per_epoch = steps_per_epoch(n, max(1, int(config.get("batch_size") or 1)), int(config.get("accum_steps") or 1),
                                int(config.get("processes") or 1), bool(config.get("drop_last")))
    return per_epoch * int(config.get("epochs") or 1)


def first_step_since(metrics: pd.DataFrame, started: float | None) -> int | None:
    """The step this worker started from: one before the first step it logged (None if it logged none yet).

    A resumed run's worker starts at its checkpoint's step, so an ETA must count only the steps since."""
    if started is None or metrics is None or metrics.empty:
        return None
    mine = _named(metrics, "loss") & (metrics["wall"].to_numpy(dtype=float) >= started)
    return int(metrics["step"].to_numpy()[mine].min()) - 1 if mine.any() else None


def progress(run: RunRow, total_steps: int | None, start_step: int | None = 0) -> dict[str, Any]:
    """Fraction done and an ETA: the time per step this worker has taken so far (from ``start_step``,
    the step it started at; None when not known yet) times the steps left; no ETA before it has done
    a step of its own."""
    step = int(run.get("step") or 0)
    started = run.get("started")
    done = min(1.0, step / total_steps) if total_steps else 0.0
    eta = None
    if started and total_steps and start_step is not None and run.get("status") == "running" \
            and step > start_step:
        elapsed = time.time() - started
        eta = max(0.0, elapsed / (step - start_step) * (total_steps - step))
    return {"fraction": done, "step": step, "total": total_steps, "eta_s": eta}


def _named(metrics: pd.DataFrame, name: str) -> np.ndarray:
    """The rows of metric ``name``, as a numpy mask."""
    return np.asarray(metrics["name"] == name, dtype=bool)


def series(metrics: pd.DataFrame, name: str, x: str = "step") -> pd.DataFrame:
    """One metric of a long metrics frame as (x, value), with x = step, epoch or relative wall time."""
    xs, values = _xy(metrics, name, x)
    if not values.size:
        return pd.DataFrame(columns=["x", "value"])
    return pd.DataFrame({"x": xs, "value": values})


def _xy(metrics: pd.DataFrame, name: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """``series`` as two arrays. Filtered and sorted on the columns' numpy arrays: the pandas way (a
    boolean frame index and ``sort_values``) took about 1 ms a series, and the live feed draws several
    per new step."""
    mask = _named(metrics, name) if len(metrics) else np.zeros(0, dtype=bool)
    if not mask.any():
        return np.zeros(0), np.zeros(0)
    step, wall = metrics["step"].to_numpy()[mask], metrics["wall"].to_numpy(dtype=float)[mask]
    order = np.lexsort((wall, step))  # by step, then time: as sort_values(["step", "wall"]), stable
    step, wall = step[order], wall[order]
    value = metrics["value"].to_numpy(dtype=float)[mask][order]
    if x == "wall":
        xs = wall - float(metrics["wall"].min())
    elif x == "epoch":
        epoch = metrics["epoch"].to_numpy()[mask][order]
        if name in EPOCH_METRICS:
            xs = epoch
        else:  # a step metric spread over its epoch: epoch - 1 + (its place in the epoch) / (the epoch's rows)
            groups = pd.Series(epoch).groupby(epoch)
            xs = epoch - 1 + groups.cumcount().to_numpy() / groups.transform("count").to_numpy()
    else:
        xs = step
    return xs, value


# One colour per run, the same on every chart: distinct hues (Category10), never two blues in a row.
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


# ... and a dash per run, so a run drawn exactly over another (an A/B pair that agrees) still shows.
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def run_color(index: int) -> str:
    return RUN_COLORS[index % len(RUN_COLORS)]


def _y_range(values: list[np.ndarray], log_y: bool, name: str = "") -> list[float] | None:
    """A y range that shows a flat series as what it is (0.01 sits in the middle of 0..0.02, not on a
    -1..1 axis where it looks like 0; a flat accuracy on 0..1); None lets plotly choose for a series
    that varies."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if log_y:
        finite = finite[finite > 0]
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if log_y:
        lo, hi = math.log10(lo), math.log10(hi)
        return [lo - 0.5, hi + 0.5] if hi - lo < 1e-9 else None
    if hi - lo > 1e-9 * max(1.0, abs(hi)):
        return None
    if name.endswith("acc") and lo >= 0 and hi <= 1:
        return [0.0, 1.02]
    pad = abs(hi) if hi != 0 else 1.0
    return [0.0, 2 * hi] if hi > 0 else [hi - pad, hi + pad]


def _x_axis(xs: list[np.ndarray], x: str) -> dict[str, Any]:
    """Steps and epochs are whole numbers: ticks on integers only (a 3-epoch run shows 1, 2, 3, not 1.5)."""
    if x == "wall" or not xs:
        return {}
    finite = np.concatenate(xs)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {}
    span = float(finite.max() - finite.min())  # one point (span 0) too: plotly would tick it at 109.5, 110, 110.5
    dtick = max(1, math.ceil(span / 8))  # at most ~8 ticks; plotly picks whole multiples above that
    return {"tick0": 0, "dtick": dtick} if span <= 80 else {"tickformat": ",d"}


def curves_figure(runs: dict[str, pd.DataFrame], name: str | Sequence[str], x: str = "step", smoothing: float = 0.0,
                  log_y: bool = False, labels: dict | None = None, height: int = 320,
                  legend: Mapping[str, str] | None = None, as_dict: bool = False) -> Any:
    """Overlaid curves of one metric for several runs ({label: long metrics frame}); ``name`` may
    be several metrics (e.g. validation and test accuracy), each run's traces then named
    "label · metric" (``legend`` gives a metric's shown name).

    Each run keeps its colour (its place in ``runs``) on every chart, also where another run has
    no points yet; a flat series gets a y range that shows its value; steps and epochs get integer
    ticks. The figure is described as one dict and validated once by ``go.Figure``: about 5x faster
    than ``add_trace`` + ``update_layout`` (each a separate validation pass), which matters
    because the Train page redraws four of these every second while it watches a run
    ("UI cost" in BENCHMARKS.md). ``as_dict``: the figure's plain dict, unvalidated, for plotly.js.
    """
    traces = []
    names = [name] if isinstance(name, str) else list(name)
    ys_all, xs_all = [], []
    pairs = ((index, item, m) for index, item in enumerate(runs.items()) for m in names)
    for index, (raw_label, metrics), metric in pairs:
        run_label = plot_text(raw_label)  # a run's name is user text: never markup in the legend or hover
        xs, ys = _xy(metrics, metric, x)
        if not ys.size:
            continue
        label = run_label if len(names) == 1 else f"{run_label} · {(legend or {}).get(metric, metric)}"
        keep = _every_kth(len(ys))
        xs, ys = xs[keep].astype(float), ys[keep]
        xs_all.append(xs)
        color, dash = run_color(index), RUN_DASHES[index % len(RUN_DASHES)]
        if smoothing > 0 and len(ys) > 2:
            smooth = ema(ys, smoothing)
            traces.append(dict(type="scatter", x=xs, y=ys, name=f"{label} (raw)", mode="lines",
                               line=dict(width=1, color=color), opacity=0.25, showlegend=False, legendgroup=label))
            traces.append(dict(type="scatter", x=xs, y=smooth, name=label, mode="lines",
                               line=dict(color=color, dash=dash), legendgroup=label))
            ys_all += [ys, smooth]
        else:
            few = len(ys) < 30
            traces.append(dict(type="scatter", x=xs, y=ys, name=label, line=dict(color=color, dash=dash),
                               marker=dict(color=color, size=9 - 3 * (index % 2), symbol=index % 4),
                               mode="lines+markers" if few else "lines"))
            ys_all.append(ys)
    lab = {"x": {"step": "step", "epoch": "epoch", "wall": "seconds"}[x], "y": ", ".join(names), **(labels or {})}
    lab = {k: plot_text(v) for k, v in lab.items()}
    yaxis: dict[str, Any] = {"type": "log"} if log_y else {}
    y_range = _y_range(ys_all, log_y, names[0] if len(names) == 1 else "")
    if y_range is not None:
        yaxis["range"] = y_range
    layout = dict(height=height, margin=dict(l=0, r=0, t=30, b=0), title=dict(text=lab["y"], x=0),
                  xaxis=dict(title=dict(text=lab["x"]), **_x_axis(xs_all, x)), yaxis=yaxis,
                  # Below the x-axis title whatever the chart's height (a fraction of the plot area's height).
                  legend=dict(orientation="h", yanchor="top", y=-80 / max(120, height - 30)))
    if as_dict:  # for plotly.js as it is (the live feed): no validation pass, no default template
        return dict(data=traces, layout=layout)
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


class LiveCharts:
    """The Train page's live charts, shared by every session of the server process.

    Each run's metrics are read by one shared ``MetricsFollower`` (at most once per
    ``min_interval`` seconds: ten sessions ticking every second cost about two small queries a
    second, not ten), and a set of charts is built once per key: the runs, the last metric row
    read of each, and the display options. Every session that watches the same run in the same
    state gets the same figures, so N watching browsers cost one build per new data, not N
    ("UI cost" in BENCHMARKS.md). Two small LRUs (runs, chart sets) bound the memory; one lock
    makes a second session wait for the first one's build instead of doing it again. The frames
    and figures handed out are shared: callers must not change them.
    """

    def __init__(self, max_runs: int = 64, max_charts: int = 32, min_interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_runs, self.max_charts, self.min_interval, self.clock = max_runs, max_charts, min_interval, clock
        self._lock = threading.Lock()
        self._followers: OrderedDict[tuple, tuple[MetricsFollower, float]] = OrderedDict()
        self._charts: OrderedDict[Hashable, Any] = OrderedDict()
        self.builds = 0   # chart sets built so far (what the cache saves is visible to tests and the bench)
        self.reads = 0    # store reads so far

    def metrics(self, store, run: Mapping[str, Any], names: tuple[str, ...] | None = None
                ) -> tuple[pd.DataFrame, int]:
        """A run's metrics (long frame) and the last row number read, through the shared reader."""
        key = (str(getattr(store, "home", id(store))), run["id"], names)
        started = run.get("started")
        with self._lock:
            follower, stamp = self._followers.pop(key, (None, -math.inf))
            if follower is None:
                follower = MetricsFollower(run["id"], names)
            if follower.frame is None or started != follower.started or self.clock() - stamp >= self.min_interval:
                follower.update(store, started)
                stamp = self.clock()
                self.reads += 1
            self._followers[key] = (follower, stamp)
            while len(self._followers) > self.max_runs:
                self._followers.popitem(last=False)
            frame = follower.frame if follower.frame is not None else pd.DataFrame()
            return frame, follower.last

    def clear_charts(self) -> None:
        """Forget the built charts (the readers stay): the next request of each key builds again."""
        with self._lock:
            self._charts.clear()

    def charts(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()``'s result for ``key``, built once while the key stays in the cache."""
        with self._lock:
            if key in self._charts:
                self._charts.move_to_end(key)
                return self._charts[key]
            value = build()
            self.builds += 1
            self._charts[key] = value
            while len(self._charts) > self.max_charts:
                self._charts.popitem(last=False)
            return value


def live_figures(metrics: dict[str, pd.DataFrame], smoothing: float, text: Mapping[str, str],
                 as_dict: bool = False) -> dict[str, Any]:
    """The live view's charts of one run or an A/B pair ({label: metrics}): training loss per step,
    validation and test accuracy (or loss, for regression) per epoch, lr and samples/s. ``text``
    holds the shown words (keys: loss, acc, test_acc, test_loss, val, test, lr, speed; step and epoch, the x-axis
    titles, default to those words)."""
    step, epoch = text.get("step", "step"), text.get("epoch", "epoch")
    acc = "acc" if any((m["name"] == "test_acc").any() for m in metrics.values()) else "loss"
    names = (f"val_{acc}", f"test_{acc}")
    return {
        "loss": curves_figure(metrics, "loss", smoothing=smoothing, labels={"y": text["loss"], "x": step},
                              as_dict=as_dict),
        "acc": curves_figure(metrics, names, x="epoch", labels={"y": text[f"test_{acc}"], "x": epoch},
                             legend={names[0]: text["val"], names[1]: text["test"]}, as_dict=as_dict),
        "lr": curves_figure(metrics, "lr", height=240, labels={"y": text.get("lr", "lr"), "x": step},
                            as_dict=as_dict),
        "speed": curves_figure(metrics, "samples_per_s", smoothing=0.8, height=240,
                               labels={"y": text["speed"], "x": step}, as_dict=as_dict),
    }


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
    """For each run: the validation accuracy of the epoch best.pt holds (chosen on validation) and that
    epoch's test accuracy ("best acc"; runs made before the validation split chose on test accuracy),
    the last test accuracy, the lowest test loss, duration and time to a target test accuracy."""
    rows = []
    for run in runs:
        m = metrics.get(run["id"], pd.DataFrame(columns=["name", "value", "wall", "step", "epoch"]))
        acc = m[m["name"] == "test_acc"].sort_values("step")
        val = m[m["name"] == "val_acc"].sort_values("step")
        loss = m[m["name"] == "test_loss"]
        start = run.get("started") or (m["wall"].min() if len(m) else None)
        reach = acc[acc["value"] >= target_acc]
        best_epoch = (run.get("best_metrics") or {}).get("epoch")
        chosen = acc[acc["epoch"] == best_epoch] if best_epoch is not None and "epoch" in acc else acc.iloc[0:0]
        chosen_val = val[val["epoch"] == best_epoch] if best_epoch is not None and "epoch" in val else val.iloc[0:0]
        rows.append({
            "run": run["name"] or run["id"], "status": run["status"],
            "val acc": chosen_val["value"].iloc[-1] if len(chosen_val) else (val["value"].max() if len(val) else None),
            "best acc": chosen["value"].iloc[-1] if len(chosen) else (acc["value"].max() if len(acc) else None),
            "last acc": acc["value"].iloc[-1] if len(acc) else None,
            "min test loss": loss["value"].min() if len(loss) else None,
            f"s to {target_acc:.1%}": (reach["wall"].iloc[0] - start) if len(reach) and start else None,
            "duration s": ((run.get("finished") or time.time()) - start) if start else None,
        })
    return pd.DataFrame(rows)


def runs_table(runs: list[RunRow]) -> pd.DataFrame:
    """The Runs page's table: one row per run. "val acc" and "best acc" are the validation and test
    accuracy of the epoch best.pt holds (chosen on validation), "last acc" the last epoch's test accuracy."""
    rows = []
    for r in runs:
        cfg = r.get("config") or {}
        best, last = r.get("best_metrics") or {}, r.get("last_metrics") or {}
        start, end = r.get("started"), r.get("finished") or (time.time() if r["status"] == "running" else None)
        rows.append({
            "id": r["id"], "name": r["name"], "status": r["status"],
            "model": (cfg.get("model_spec") or {}).get("name") or cfg.get("preset"),
            "dataset": cfg.get("dataset"), "precision": r.get("precision") or cfg.get("precision"),
            "device": r.get("device") or cfg.get("device"), "processes": int(cfg.get("processes") or 1),
            "val acc": best.get("val_acc"), "best acc": best.get("test_acc"), "last acc": last.get("test_acc"),
            "test loss": last.get("test_loss"),
            "duration s": round(end - start, 1) if start and end else None,
            "created": pd.to_datetime(r["created"], unit="s").strftime("%Y-%m-%d %H:%M:%S"),
            "tags": ", ".join(r.get("tags") or []),
        })
    return pd.DataFrame(rows, columns=["id", "name", "status", "model", "dataset", "precision", "device", "processes",
                                       "val acc", "best acc", "last acc", "test loss", "duration s", "created", "tags"])


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
            deadline.check_progress(i, len(x))  # a model far too slow for the budget stops after its first batches
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
