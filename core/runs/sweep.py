"""Small sweeps: vary one or two settings of a config over a grid or random draws, optionally
repeating each setting over seeds, queue the runs through the job queue, and read them back.

A sweep is planned (``plan``: every value parsed by its setting's type and every config
validated by ``TrainConfig``) before anything is queued, so a bad value, an unknown setting
or a sweep over ``MAX_RUNS`` queues nothing. ``queue`` stores each run as a job (the job cap
decides how many train at once) with the sweep's id in the run store's ``sweep`` column.
The Runs page reads a sweep back as a table (``sweep_table``), a parallel-coordinates chart
(``parallel_figure``), metric-vs-setting plots (``param_figure``) and its best setting
(``best_setting``). The terminal command is ``python -m core.sweep`` (core/sweep.py).
"""
from __future__ import annotations

import itertools
import math
import random as _random
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.errors import Code, LabError
from core.runs.groups import best_last, seed_of
from core.runs.stats import describe, higher_is_better
from core.runs.store import RunRow
from core.training.config import FIELDS, TrainConfig

if TYPE_CHECKING:
    from core.runs.jobs import JobManager

MAX_RUNS = 16     # runs one sweep may queue, seeds included (a shared server's queue stays short)
MAX_FIELDS = 2    # settings one sweep varies
MAX_SEEDS = 16
# Scale settings spanning orders of magnitude: random draws are log-uniform (lr 1e-4:1e-2 draws
# 1e-4..1e-3 as often as 1e-3..1e-2); every other number is drawn uniformly.
LOG_UNIFORM = ("lr", "weight_decay")
# Not varied by a sweep: the seed has its own repeat (seeds), a model spec is JSON, not a value, recording
# the internals changes nothing trained.
NOT_SWEPT = ("seed", "model_spec", "internals_every")
SWEEPABLE: tuple[str, ...] = tuple(f for f in FIELDS if f not in NOT_SWEPT)
SCORES = ("val_acc", "test_acc", "val_loss", "test_loss")  # the metric that picks the best setting, in this order


# --------------------------------------------------------------------------- parsing
def kind_of(name: str) -> str:
    """A setting's value type: bool, int, float, choice (a Literal) or text."""
    annotation = TrainConfig.model_fields[name].annotation
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if get_origin(annotation) is Literal:
        return "choice"
    return "text"


def check_field(name: str) -> str:
    name = name.strip()
    if name == "seed":
        raise LabError("sweep.seed")
    if name not in SWEEPABLE:
        raise LabError("sweep.unknown_field", field=Code(name[:40]), fields=Code(", ".join(SWEEPABLE)))
    return name


def parse_value(name: str, text: str) -> Any:
    """``text`` as a value of setting ``name`` (by its type); text that is no such value is passed on
    as it is, so that ``TrainConfig`` refuses it with its own message (``lr must be a number``)."""
    text = text.strip()
    kind = kind_of(name)
    try:
        if kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "yes", "on", "1"):
                return True
            if lowered in ("false", "no", "off", "0"):
                return False
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        return text
    return text


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def setting_text(setting: Mapping[str, Any]) -> str:
    """``lr=0.001 batch_size=64``: a setting as the CLI writes it."""
    return " ".join(f"{k}={_format(v)}" for k, v in setting.items())


@dataclass(frozen=True)
class Axis:
    """One swept setting: a list of values (grid) or a range to draw from (random)."""

    field: str
    values: tuple[Any, ...] = ()                      # grid
    lo: float | None = None                           # random: [lo, hi]
    hi: float | None = None

    @property
    def random(self) -> bool:
        return self.lo is not None

    @property
    def log(self) -> bool:
        return self.random and self.field in LOG_UNIFORM


def _split(arg: str, form: str) -> tuple[str, str]:
    name, sep, rest = arg.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise LabError("sweep.syntax", arg=Code(arg[:80]), form=Code(form))
    return check_field(name), rest


def parse_grid(arg: str) -> Axis:
    """``FIELD=V1,V2,…`` (the CLI's --grid): the values parsed by the setting's type."""
    name, rest = _split(arg, "FIELD=V1,V2,…")
    parts = [p.strip() for p in rest.split(",")]
    if any(not p for p in parts):
        raise LabError("sweep.syntax", arg=Code(arg[:80]), form=Code("FIELD=V1,V2,…"))
    if len(parts) > MAX_RUNS:
        raise LabError("sweep.too_many", n=len(parts), settings=len(parts), seeds=1, cap=MAX_RUNS)
    values = [parse_value(name, p) for p in parts]
    for i, v in enumerate(values):
        if any(v == w and type(v) is type(w) for w in values[:i]):
            raise LabError("sweep.duplicate", field=Code(name), value=Code(_format(v)))
    return Axis(name, tuple(values))


def parse_random(arg: str) -> Axis:
    """``FIELD=LO:HI`` (the CLI's --random): a numeric setting's range; lr-like ones are drawn log-uniformly."""
    name, rest = _split(arg, "FIELD=LO:HI")
    if kind_of(name) not in ("int", "float"):
        raise LabError("sweep.random_type", field=Code(name))
    lo_text, sep, hi_text = rest.partition(":")
    lo, hi = parse_value(name, lo_text), parse_value(name, hi_text)
    if not sep or isinstance(lo, str) or isinstance(hi, str) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise LabError("sweep.syntax", arg=Code(arg[:80]), form=Code("FIELD=LO:HI"))
    if lo >= hi:
        raise LabError("sweep.range", field=Code(name), lo=lo, hi=hi)
    if name in LOG_UNIFORM and lo <= 0:
        raise LabError("sweep.log_range", field=Code(name), lo=lo)
    return Axis(name, lo=lo, hi=hi)


def parse_axis(name: str, text: str) -> Axis:
    """The Train page's box: ``V1, V2, …`` for a grid or ``LO:HI`` for random draws of ``name``."""
    arg = f"{name}={text.strip()}"
    return parse_random(arg) if ":" in text else parse_grid(arg)


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Planned:
    setting: dict[str, Any]   # the swept values
    seed: int
    config: TrainConfig       # validated


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: every run it will queue, in order (setting by setting, seeds inside)."""

    base: TrainConfig
    axes: tuple[Axis, ...]
    runs: tuple[Planned, ...]
    seeds: int
    trials: int | None = None
    fields: tuple[str, ...] = field(default=())

    @property
    def settings(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for p in self.runs:
            if p.setting not in out:
                out.append(p.setting)
        return out


def _draw(axis: Axis, rng: _random.Random) -> Any:
    assert axis.lo is not None and axis.hi is not None
    if kind_of(axis.field) == "int":  # whole numbers: uniform (LOG_UNIFORM holds float settings only)
        return rng.randint(int(axis.lo), int(axis.hi))
    value = math.exp(rng.uniform(math.log(axis.lo), math.log(axis.hi))) if axis.log else rng.uniform(axis.lo, axis.hi)
    return min(axis.hi, max(axis.lo, float(f"{value:.3g}")))  # 3 significant digits: readable, still in range


def _checked(base: TrainConfig, setting: Mapping[str, Any], seed: int) -> TrainConfig:
    try:
        return base.replace(**setting, seed=seed)
    except LabError as exc:
        raise LabError("sweep.value", setting=Code(setting_text(setting)), error=exc) from None


def plan(base: TrainConfig, axes: Sequence[Axis], trials: int | None = None, seeds: int = 1,
         draw_seed: int = 0) -> SweepPlan:
    """Check and expand a sweep: grid axes form a product, random axes are drawn ``trials`` times
    (``random.Random(draw_seed)``: the same command draws the same values), each setting × ``seeds``
    seeds from the base config's seed on. Everything is validated here; nothing is queued."""
    axes = list(axes)
    if not axes:
        raise LabError("sweep.empty")
    names = [a.field for a in axes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise LabError("sweep.twice", field=Code(name))
    if len(axes) > MAX_FIELDS:
        raise LabError("sweep.too_many_fields", n=len(axes), cap=MAX_FIELDS, fields=Code(", ".join(names)))
    randoms = [a for a in axes if a.random]
    if randoms and (trials is None or not 1 <= trials <= MAX_RUNS):
        raise LabError("sweep.trials", got=Code(str(trials)), hi=MAX_RUNS)
    if not randoms and trials is not None:
        raise LabError("sweep.trials_unused")
    if not 1 <= seeds <= MAX_SEEDS:
        raise LabError("sweep.seeds", n=seeds, hi=MAX_SEEDS)
    grid = [a for a in axes if not a.random]
    for axis in grid:  # each value alone first, so the message names the value at fault
        for value in axis.values:
            _checked(base, {axis.field: value}, base.seed)
    rng = _random.Random(draw_seed)
    draws = [{a.field: _draw(a, rng) for a in randoms} for _ in range(trials or 1)] if randoms else [{}]
    settings: list[dict[str, Any]] = []
    for combo in itertools.product(*[a.values for a in grid]):
        for draw in draws:
            setting = {**dict(zip([a.field for a in grid], combo, strict=True)), **draw}
            setting = {n: setting[n] for n in names}  # in the order given
            if setting not in settings:
                settings.append(setting)
    total = len(settings) * seeds
    if total > MAX_RUNS:
        raise LabError("sweep.too_many", n=total, settings=len(settings), seeds=seeds, cap=MAX_RUNS)
    runs = tuple(Planned(s, base.seed + i, _checked(base, s, base.seed + i)) for s in settings for i in range(seeds))
    return SweepPlan(base, tuple(axes), runs, seeds, trials, tuple(names))


def new_sweep_id() -> str:
    """``s`` + UTC time + 6 hex digits (the run store's id pattern)."""
    return "s" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def queue(jobs: JobManager, sweep: SweepPlan, name: str = "", parent: str | None = None) -> tuple[str, list[str]]:
    """Queue every run of a planned sweep under one sweep id; returns (sweep id, run ids).

    The job queue starts them as its cap allows. Should storing one fail, those already
    queued are withdrawn again: a sweep is queued whole or not at all.
    """
    sweep_id = new_sweep_id()
    ids: list[str] = []
    stem = name.strip()
    try:
        for p in sweep.runs:
            label = f"{stem + ' ' if stem else ''}{setting_text(p.setting)}"
            if sweep.seeds > 1:
                label += f" seed {p.seed}"
            ids.append(jobs.start(p.config, name=label[:200], sweep=sweep_id, parent=parent, poll=False))
    except BaseException:
        for run_id in ids:
            jobs.store.delete_or_mark(run_id)
        raise
    jobs.poll()
    return sweep_id, ids


# --------------------------------------------------------------------------- reading a sweep back
def sweeps(runs: Iterable[RunRow]) -> dict[str, list[RunRow]]:
    """The sweeps among ``runs``: {sweep id: its runs}, newest sweep first (runs come newest first)."""
    out: dict[str, list[RunRow]] = {}
    for run in runs:
        if run.get("sweep"):
            out.setdefault(str(run["sweep"]), []).append(run)
    return dict(sorted(out.items(), key=lambda kv: -max(r["created"] for r in kv[1])))


def swept_fields(runs: Sequence[RunRow]) -> list[str]:
    """The settings (not the seed) whose values differ between a sweep's runs, in the config's order."""
    out = []
    for name in FIELDS:
        if name in NOT_SWEPT:
            continue
        values = {repr(r["config"].get(name)) for r in runs}
        if len(values) > 1:
            out.append(name)
    return out


def score_metric(metrics: Mapping[str, pd.DataFrame]) -> str | None:
    """The metric that ranks a sweep's settings: validation accuracy when the runs log it, else test
    accuracy, else validation or test loss; None when no run logged any of them."""
    for name in SCORES:
        if any((m["name"] == name).any() for m in metrics.values()):
            return name
    return None


def sweep_table(runs: Sequence[RunRow], metrics: Mapping[str, pd.DataFrame], params: Sequence[str],
                score: str | None) -> pd.DataFrame:
    """One row per run: id, run, status, seed, the swept settings, and the score's final and best value."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {"id": run["id"], "run": run["name"] or run["id"], "status": run["status"],
                               "seed": seed_of(run)}
        row.update({p: run["config"].get(p) for p in params})
        best, last = best_last(metrics[run["id"]], score) if score and run["id"] in metrics else (None, None)
        row["final"], row["best"] = last, best
        rows.append(row)
    table = pd.DataFrame(rows, columns=["id", "run", "status", "seed", *params, "final", "best"])
    return table.sort_values([*params, "seed"], kind="stable", key=_sort_key).reset_index(drop=True) \
        if params and len(table) else table


def _sort_key(column: pd.Series) -> pd.Series:
    return column.map(lambda v: (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool)
                      else (1, 0, str(v)))


@dataclass(frozen=True)
class Best:
    setting: dict[str, Any]
    metric: str
    mean: float
    std: float | None   # over the setting's seeds (None for one seed)
    n: int


def best_setting(table: pd.DataFrame, params: Sequence[str], score: str | None) -> Best | None:
    """The setting whose completed runs have the best mean final score (max for accuracy, min for loss)."""
    if score is None or not params:
        return None
    done = table[(table["status"] == "completed") & table["final"].notna()]
    if done.empty:
        return None
    groups: dict[tuple, list[float]] = {}
    for _, row in done.iterrows():
        groups.setdefault(tuple(row[p] for p in params), []).append(float(row["final"]))
    up = higher_is_better(score)
    key = max(groups, key=lambda k: np.mean(groups[k]) if up else -np.mean(groups[k]))
    stats = describe(groups[key])
    assert stats.mean is not None
    return Best({p: _plain(v) for p, v in zip(params, key, strict=True)}, score, stats.mean, stats.std, stats.n)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
               for v in values)


def _log_axis(param: str, values: Sequence[Any]) -> bool:
    return param in LOG_UNIFORM and _numeric(values) and all(v > 0 for v in values)


def _dimension(param: str, values: Sequence[Any]) -> dict[str, Any]:
    if _numeric(values):
        nums = np.asarray(values, dtype=float)
        unique = np.unique(nums)
        if _log_axis(param, values):
            ticks = unique if len(unique) <= 8 else np.geomspace(unique[0], unique[-1], 5)
            return dict(label=f"{param} (log)", values=np.log10(nums), tickvals=np.log10(ticks),
                        ticktext=[format(float(t), ".3g") for t in ticks])
        if len(unique) <= 8:  # a grid: ticks at its values only
            return dict(label=param, values=nums, tickvals=unique, ticktext=[format(float(t), "g") for t in unique])
        return dict(label=param, values=nums)
    texts = [_format(v) for v in values]
    order = sorted(set(texts))
    return dict(label=param, values=[order.index(t) for t in texts], tickvals=list(range(len(order))),
                ticktext=order)


def parallel_figure(table: pd.DataFrame, params: Sequence[str], score: str, height: int = 380) -> go.Figure:
    """Parallel coordinates: an axis per swept setting and one for the score, a line per finished run
    coloured by its score (lr-like settings on a log axis, choices as categories)."""
    done = table[table["final"].notna()]
    dims = [_dimension(p, list(done[p])) for p in params]
    values = done["final"].to_numpy(dtype=float)
    dims.append(dict(label=score, values=values, tickformat=".2%" if score.endswith("acc") else ".4g"))
    data = [dict(type="parcoords", dimensions=dims,
                 line=dict(color=values, colorscale="Viridis", showscale=True,
                           reversescale=not higher_is_better(score),
                           colorbar=dict(title=dict(text=score), tickformat=".1%" if score.endswith("acc") else None)))]
    layout = dict(height=height, margin=dict(l=60, r=40, t=50, b=20))
    return go.Figure(dict(data=data, layout=layout))


def param_figure(table: pd.DataFrame, param: str, score: str, height: int = 300) -> go.Figure:
    """The score of every finished run against one swept setting (a dot per seed), with the mean per value."""
    done = table[table["final"].notna()]
    xs = list(done[param])
    numeric = _numeric(xs)
    shown = xs if numeric else [_format(v) for v in xs]
    traces: list[dict[str, Any]] = [dict(type="scatter", x=shown, y=done["final"].to_numpy(dtype=float),
                                         mode="markers", name="runs", marker=dict(size=9, opacity=0.6, color="#636EFA"),
                                         text=list(done["run"]), hovertemplate="%{text}: %{y:.4g}<extra></extra>")]
    if len(done):
        means = done.assign(_x=shown).groupby("_x", sort=True)["final"].mean()
        traces.append(dict(type="scatter", x=list(means.index), y=means.to_numpy(dtype=float), mode="lines+markers",
                           name="mean", line=dict(width=2, color="#EF553B"),
                           marker=dict(symbol="diamond", size=10, color="#EF553B")))
    xaxis: dict[str, Any] = dict(title=dict(text=param))
    if numeric and _log_axis(param, xs):
        xaxis["type"] = "log"
    elif not numeric:
        xaxis["type"] = "category"
    unique = sorted(set(shown), key=str) if not numeric else sorted(set(xs))
    if numeric and len(unique) <= 8:  # a grid: ticks at its values only
        xaxis.update(tickvals=unique, ticktext=[_format(v) for v in unique])
    yaxis: dict[str, Any] = dict(title=dict(text=score))
    if score.endswith("acc"):
        yaxis["tickformat"] = ".1%"
    layout = dict(height=height, margin=dict(l=0, r=0, t=30, b=0), title=dict(text=f"{score} vs {param}", x=0),
                  xaxis=xaxis, yaxis=yaxis, showlegend=True, legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return go.Figure(dict(data=traces, layout=layout))


def get_args_of(name: str) -> tuple[str, ...]:
    """The choices of a Literal setting (for the Train page's hint), else ()."""
    annotation = TrainConfig.model_fields[name].annotation
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else ()
