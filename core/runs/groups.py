"""Seed groups: runs whose configs differ only in their seed, shown and compared as one.

Training the same config with another seed gives another result; how much is the noise a
learner must see before believing a difference. Runs form a group automatically when their
configs are equal but for ``seed`` (``group_key``). A group's curves are drawn as their mean
with a ± std band or a min/max envelope (``group_figure``); its summary is the mean ± std of
each run's best and final value (``group_summary``); two groups are compared with
``core.runs.stats.verdict``; ``queue_seeds`` fills a group up to N seeds through the job queue.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from core.errors import Code, LabError
from core.runs.stats import Stats, describe, higher_is_better
from core.runs.store import RunRow
from core.runs.view import MAX_POINTS, ema, flat_config, series

if TYPE_CHECKING:
    from core.runs.jobs import JobManager

MAX_SEEDS = 10      # "repeat with N seeds": at most this many seeds in a group
KEY_LEN = 10        # hex digits of a group key (in share links)
Band = Literal["std", "minmax"]
BANDS: tuple[Band, ...] = ("std", "minmax")
SUMMARY_METRICS = ("test_acc", "test_loss", "train_acc", "train_loss")
COLORS = plotly.colors.qualitative.Plotly


def group_key(config: Mapping[str, Any]) -> str:
    """A short stable id of a config without its seed: runs with the same key form a seed group."""
    rest = {k: v for k, v in config.items() if k != "seed"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:KEY_LEN]


def seed_of(run: RunRow) -> int | None:
    seed = (run.get("config") or {}).get("seed")
    return seed if isinstance(seed, int) else None


@dataclass
class SeedGroup:
    """Runs of one config, one per seed (several runs with the same seed stay: they are repeats)."""

    key: str
    runs: list[RunRow] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return sorted({s for r in self.runs if (s := seed_of(r)) is not None})

    @property
    def completed(self) -> list[RunRow]:
        return [r for r in self.runs if r["status"] == "completed"]

    @property
    def config(self) -> dict[str, Any]:
        """The group's config (its first run's, without the seed)."""
        return {k: v for k, v in self.runs[0]["config"].items() if k != "seed"}

    @property
    def name(self) -> str:
        """The name of its first named run (else that run's id)."""
        return next((r["name"] for r in self.runs if r["name"]), self.runs[0]["id"])


def seed_groups(runs: Iterable[RunRow]) -> list[SeedGroup]:
    """Runs grouped by config-but-seed, in order of each group's first run; a group's runs by seed."""
    groups: dict[str, SeedGroup] = {}
    for run in runs:
        key = group_key(run.get("config") or {})
        groups.setdefault(key, SeedGroup(key)).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: (seed_of(r) is None, seed_of(r) or 0, r["created"]))
    return list(groups.values())


def group_labels(groups: Sequence[SeedGroup], limit: int = 60) -> dict[str, str]:
    """A short label per group: the settings that tell it from the others (``lr=0.001 batch_size=64``),
    else its name; the same label twice gets the group key."""
    flats = [flat_config(g.config) for g in groups]
    keys = sorted({k for f in flats for k in f})
    differ = [k for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1]
    labels: dict[str, str] = {}
    for group, flat in zip(groups, flats, strict=True):
        text = " ".join(f"{k}={_short(flat.get(k))}" for k in differ) if differ else group.name
        text = text if len(text) <= limit else text[:limit - 1] + "…"
        labels[group.key] = text
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    return {k: (f"{v} [{k[:6]}]" if seen[v] > 1 else v) for k, v in labels.items()}


def _short(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- values per run
def best_last(frame: pd.DataFrame, name: str) -> tuple[float | None, float | None]:
    """A run's best (max for accuracy, min otherwise) and last finite value of a metric."""
    rows = frame[frame["name"] == name].sort_values(["step", "wall"])
    values = rows["value"].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    best = values.max() if higher_is_better(name) else values.min()
    return float(best), float(values[-1])


def final_values(group: SeedGroup, metrics: Mapping[str, pd.DataFrame], name: str) -> list[float]:
    """The last value of ``name`` of each completed run of the group (the sample a verdict compares)."""
    out = []
    for run in group.completed:
        _, last = best_last(metrics.get(run["id"], _EMPTY), name)
        if last is not None:
            out.append(last)
    return out


_EMPTY = pd.DataFrame(columns=["run_id", "step", "epoch", "name", "value", "wall"])


def group_summary(groups: Sequence[SeedGroup], metrics: Mapping[str, pd.DataFrame],
                  names: Sequence[str] = SUMMARY_METRICS) -> list[dict[str, Any]]:
    """Per group: its runs, seeds and, for each metric, ``Stats`` of the runs' best and final values.

    Only completed runs count (a stopped or running run's last value is from another epoch);
    metrics no run logged are left out. Rows: {"key", "runs", "completed", "seeds",
    "<name> best": Stats, "<name> final": Stats, ...}.
    """
    present = [n for n in names if any((m["name"] == n).any() for m in metrics.values())]
    rows = []
    for group in groups:
        row: dict[str, Any] = {"key": group.key, "runs": len(group.runs), "completed": len(group.completed),
                               "seeds": group.seeds}
        for name in present:
            pairs = [best_last(metrics.get(r["id"], _EMPTY), name) for r in group.completed]
            row[f"{name} best"] = describe(p[0] for p in pairs)
            row[f"{name} final"] = describe(p[1] for p in pairs)
        rows.append(row)
    return rows


def format_stats(stats: Stats, metric: str) -> str:
    """``97.12% ± 0.21`` (accuracy, in percent points) or ``0.0912 ± 0.0031``; one value alone; "—" for none."""
    if stats.mean is None:
        return "—"
    pct = metric.endswith("acc")
    scale, unit, digits = (100.0, "%", 2) if pct else (1.0, "", 4)
    text = f"{stats.mean * scale:.{digits}f}{unit}"
    if stats.std is not None:
        text += f" ± {stats.std * scale:.{digits}f}"
    return text


# --------------------------------------------------------------------------- curves
def group_curve(frames: Sequence[pd.DataFrame], name: str, x: str = "step", smoothing: float = 0.0,
                max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Mean, sample std, min, max and count of a metric over a group's runs at each x.

    Each run's series (EMA-smoothed first when ``smoothing`` > 0) is read at every x any run
    logged; runs of one config log at the same steps and epochs, so those are exact; wall
    times differ, so there each run is interpolated linearly between its own points. A run
    counts only inside its own range of x (a shorter run leaves the mean to the others).
    Columns: x, mean, std (NaN where fewer than 2 runs), lo, hi, n.
    """
    runs = []
    for frame in frames:
        s = series(frame, name, x)
        xs, ys = s["x"].to_numpy(dtype=float), s["value"].to_numpy(dtype=float)
        ok = np.isfinite(ys) & np.isfinite(xs)
        xs, ys = xs[ok], ys[ok]
        if not len(xs):
            continue
        order = np.argsort(xs, kind="stable")
        xs, ys = xs[order], ys[order]
        if smoothing > 0 and len(ys) > 2:
            ys = ema(ys, smoothing)
        runs.append((xs, ys))
    if not runs:
        return pd.DataFrame(columns=["x", "mean", "std", "lo", "hi", "n"])
    grid = np.unique(np.concatenate([xs for xs, _ in runs]))
    if len(grid) > max_points:
        grid = np.unique(np.concatenate([grid[:: -(-len(grid) // max_points)], grid[-1:]]))
    table = np.full((len(runs), len(grid)), np.nan)
    for i, (xs, ys) in enumerate(runs):
        inside = (grid >= xs[0]) & (grid <= xs[-1])
        table[i, inside] = np.interp(grid[inside], xs, ys)
    n = np.isfinite(table).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns with fewer than 2 values: NaN, as meant
        mean = np.nanmean(table, axis=0)
        std = np.where(n >= 2, np.nanstd(table, axis=0, ddof=1), np.nan)
        lo, hi = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
    keep = n > 0
    return pd.DataFrame({"x": grid[keep], "mean": mean[keep], "std": std[keep], "lo": lo[keep], "hi": hi[keep],
                         "n": n[keep]})


def _rgba(color: str, alpha: float) -> str:
    r, g, b = plotly.colors.hex_to_rgb(color) if color.startswith("#") else plotly.colors.unlabel_rgb(color)
    return f"rgba({int(r)}, {int(g)}, {int(b)}, {alpha})"


def group_figure(groups: Mapping[str, Sequence[pd.DataFrame]], name: str, x: str = "step", band: Band = "std",
                 smoothing: float = 0.0, log_y: bool = False, labels: dict | None = None,
                 height: int = 420) -> go.Figure:
    """Each group's mean curve of one metric with a ± std band or a min/max envelope ({label: run frames}).

    Where fewer than two runs of a group have a value, there is no band (one run says nothing
    of the noise); the mean line is drawn alone. Built as one dict, like ``curves_figure``.
    """
    traces: list[dict] = []
    for i, (label, frames) in enumerate(groups.items()):
        curve = group_curve(frames, name, x, smoothing)
        if curve.empty:
            continue
        color = COLORS[i % len(COLORS)]
        xs, mean = curve["x"].to_numpy(), curve["mean"].to_numpy()
        if band == "std":
            spread = np.nan_to_num(curve["std"].to_numpy(), nan=0.0)
            lower, upper = mean - spread, mean + spread
        else:
            lower, upper = curve["lo"].to_numpy(), curve["hi"].to_numpy()
        if (curve["n"] >= 2).any():
            traces.append(dict(type="scatter", x=np.concatenate([xs, xs[::-1]]),
                               y=np.concatenate([upper, lower[::-1]]), mode="lines", fill="toself",
                               fillcolor=_rgba(color, 0.2),
                               line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=label,
                               name=f"{label} ({band})"))
        n_max = int(curve["n"].max())
        traces.append(dict(type="scatter", x=xs, y=mean, name=f"{label} (n={n_max})", legendgroup=label,
                           mode="lines+markers" if len(xs) < 30 else "lines", line=dict(color=color),
                           customdata=curve["n"].to_numpy(),
                           hovertemplate="%{y:.4g} (n=%{customdata})<extra>" + label.replace("<", "‹") + "</extra>"))
    lab = {"x": {"step": "step", "epoch": "epoch", "wall": "seconds"}[x], "y": name, **(labels or {})}
    layout: dict[str, Any] = dict(height=height, margin=dict(l=0, r=0, t=30, b=0), title=dict(text=lab["y"], x=0),
                                  xaxis=dict(title=dict(text=lab["x"])), legend=dict(orientation="h", y=-0.25))
    if log_y:
        layout["yaxis"] = dict(type="log")
    return go.Figure(dict(data=traces, layout=layout))


# --------------------------------------------------------------------------- repeat with N seeds
def missing_seeds(group: SeedGroup, n: int, start: int = 0) -> list[int]:
    """The seeds to add so the group has ``n`` distinct seeds: the lowest free ones from ``start`` on.

    Failed runs do not count (their seed is tried again); queued, running, stopped and
    completed ones do.
    """
    if not 1 <= n <= MAX_SEEDS:
        raise LabError("groups.seeds_range", n=n, lo=1, hi=MAX_SEEDS)
    have = {s for r in group.runs if r["status"] != "failed" and (s := seed_of(r)) is not None}
    out: list[int] = []
    seed = start
    while len(have) + len(out) < n:
        if seed not in have:
            out.append(seed)
        seed += 1
    return out


def queue_seeds(jobs: JobManager, run_id: str, n: int) -> list[str]:
    """Queue the missing seeds of ``run_id``'s group so it has ``n`` seeds; returns the new run ids.

    The run is read again first: one deleted meanwhile (say, by another session) is a clear
    ``LabError`` and nothing is queued. Each new run is the run's config with another seed,
    named after the run, and linked to it as its parent.
    """
    from core.training.config import TrainConfig

    run = jobs.store.get_run(run_id)
    if run is None:
        raise LabError("groups.run_gone", run=Code(run_id))
    key = group_key(run["config"])
    group = SeedGroup(key, [r for r in jobs.store.runs() if group_key(r["config"]) == key])
    seeds = missing_seeds(group, n, start=seed_of(run) or 0)
    base = TrainConfig.from_dict(run["config"])  # the stored config, checked again under today's caps
    configs = [base.replace(seed=s) for s in seeds]  # all validated before any is queued
    stem = (run["name"] or run["id"]).removesuffix(f" seed {seed_of(run)}")
    ids = [jobs.start(c, name=f"{stem} seed {c.seed}"[:200], parent=run_id, poll=False) for c in configs]
    if ids:
        jobs.poll()
    return ids

