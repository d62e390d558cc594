"""Comparing selected runs honestly: best and last values side by side, values at one chosen step
(or epoch, or wall time) for every run, and differences to a pinned baseline run.

A run's last value hides a better epoch before it; its best value flatters a run that got
lucky once. ``best_last_table`` shows both for each metric. Comparing runs of different
lengths at their ends compares different amounts of training; ``at_table`` reads every run
at the same x instead. ``with_deltas`` adds each run's difference to the baseline.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from core.errors import Code, LabError
from core.runs.groups import best_last, seed_of
from core.runs.store import RunRow
from core.runs.view import EPOCH_METRICS, ema, series

COMPARED = ("test_acc", "test_loss", "train_acc", "train_loss")  # the summary's metrics, when logged
AXES = ("step", "epoch", "wall")


def label_of(run: RunRow) -> str:
    return run["name"] or run["id"]


def present(metrics: Mapping[str, pd.DataFrame], names: Sequence[str] = COMPARED) -> list[str]:
    """The metrics of ``names`` that at least one run logged."""
    return [n for n in names if any((m["name"] == n).any() for m in metrics.values())]


def check_baseline(baseline: str | None, runs: Sequence[RunRow]) -> RunRow | None:
    """The baseline run among ``runs``; a baseline that no longer exists (deleted) is a clear LabError."""
    if not baseline:
        return None
    for run in runs:
        if run["id"] == baseline:
            return run
    raise LabError("runs.baseline_gone", run=Code(str(baseline)[:64]))


def best_last_table(runs: Sequence[RunRow], metrics: Mapping[str, pd.DataFrame],
                    names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run: its id, label, status, seed and, for each metric, its best and its last value.

    Best is the maximum of an accuracy and the minimum of anything else. Columns
    ``<name> best`` and ``<name> last``; None where a run logged no value.
    """
    names = list(names) if names is not None else present(metrics)
    rows = []
    for run in runs:
        frame = metrics.get(run["id"])
        row: dict = {"id": run["id"], "run": label_of(run), "status": run["status"], "seed": seed_of(run)}
        for name in names:
            best, last = best_last(frame, name) if frame is not None else (None, None)
            row[f"{name} best"], row[f"{name} last"] = best, last
        rows.append(row)
    columns = ["id", "run", "status", "seed", *[f"{n} {k}" for n in names for k in ("best", "last")]]
    return pd.DataFrame(rows, columns=columns)


def extent(metrics: Mapping[str, pd.DataFrame], x: str, names: Sequence[str] | None = None) -> float:
    """The largest x (step, epoch or seconds since the run's first metric) any run reached; 0 for none."""
    top = 0.0
    for frame in metrics.values():
        for name in names if names is not None else frame["name"].unique():
            s = series(frame, name, x)
            if len(s):
                top = max(top, float(np.nanmax(s["x"].to_numpy(dtype=float))))
    return top


def value_at(frame: pd.DataFrame, name: str, x: str, at: float, smoothing: float = 0.0) -> float | None:
    """The metric's value at ``at`` on axis ``x``: the last value logged at or before it.

    None when the run never got there (its last point is before ``at``: comparing its final
    value with others' at ``at`` would compare different amounts of training) or logged no
    value up to it. With ``smoothing`` the EMA the charts draw is read, so the number matches
    the curve.
    """
    s = series(frame, name, x)
    if s.empty:
        return None
    xs, ys = s["x"].to_numpy(dtype=float), s["value"].to_numpy(dtype=float)
    ok = np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    if not len(xs) or xs.max() < at - 1e-9:
        return None
    if smoothing > 0 and len(ys) > 2:
        ys = ema(ys, smoothing)
    upto = np.nonzero(xs <= at + 1e-9)[0]
    return float(ys[upto[-1]]) if len(upto) else None


def at_table(runs: Sequence[RunRow], metrics: Mapping[str, pd.DataFrame], names: Sequence[str], x: str,
             at: float, smoothing: float = 0.0) -> pd.DataFrame:
    """One row per run: each metric's value at ``at`` (``value_at``). Step metrics (loss, lr, …) are
    read with the chart's smoothing; epoch metrics are one value per epoch and read as they are."""
    if x not in AXES:
        raise ValueError(f"x must be one of {', '.join(AXES)}")
    rows = []
    for run in runs:
        frame = metrics.get(run["id"])
        row: dict = {"id": run["id"], "run": label_of(run)}
        for name in names:
            smooth = 0.0 if name in EPOCH_METRICS else smoothing
            row[name] = value_at(frame, name, x, at, smooth) if frame is not None else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["id", "run", *names])


def with_deltas(table: pd.DataFrame, baseline: str | None, columns: Sequence[str]) -> pd.DataFrame:
    """``table`` (with an ``id`` column) plus ``Δ <column>``: each run's value minus the baseline run's.

    The baseline's own row gets 0; a value either side does not have gives NaN. Without a
    baseline (or when it is not in the table) the table is returned as it is.
    """
    if not baseline or baseline not in set(table["id"]):
        return table
    base = table.set_index("id").loc[baseline]
    out = table.copy()
    for col in columns:
        ref = base[col]
        values = pd.to_numeric(out[col], errors="coerce")
        delta = values - (float(ref) if ref is not None and pd.notna(ref) else np.nan)
        out.insert(int(out.columns.get_loc(col)) + 1, f"Δ {col}", delta.astype(float))
    return out
