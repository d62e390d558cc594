"""Run charts that state their data: flat series, integer ticks, one colour per run; the ETA after a resume."""
import time

import pandas as pd
import pytest

from core.runs import view as V


def frame(name: str, steps, values, epoch=None, wall0: float = 1000.0) -> pd.DataFrame:
    steps = list(steps)
    return pd.DataFrame({"step": steps, "epoch": epoch or [1 + s // 10 for s in steps], "name": name,
                         "value": list(values), "wall": [wall0 + s for s in steps]})


def test_a_constant_lr_sits_inside_its_axis():
    fig = V.curves_figure({"run": frame("lr", range(1, 101), [0.01] * 100)}, "lr")
    lo, hi = fig.layout.yaxis.range
    assert lo <= 0.0 and 0.015 <= hi <= 0.05 and lo < 0.01 < hi  # not a -1..1 axis where 0.01 looks like 0
    log = V.curves_figure({"run": frame("lr", range(1, 101), [0.01] * 100)}, "lr", log_y=True)
    assert log.layout.yaxis.range[0] < -2 < log.layout.yaxis.range[1]  # log10(0.01) inside
    acc = V.curves_figure({"run": frame("test_acc", [10], [0.92])}, "test_acc", x="epoch")
    assert acc.layout.yaxis.range == (0.0, 1.02)  # one accuracy: on 0..1, not 0..1.84
    varying = V.curves_figure({"run": frame("loss", range(1, 101), [1 / s for s in range(1, 101)])}, "loss")
    assert varying.layout.yaxis.range is None  # plotly's own range for a series that varies


def test_epoch_and_step_axes_tick_on_whole_numbers():
    fig = V.curves_figure({"run": frame("test_loss", [10, 20, 30], [0.5, 0.4, 0.3], epoch=[1, 2, 3])}, "test_loss",
                          x="epoch")
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tick0 == 0
    steps = V.curves_figure({"run": frame("loss", range(1, 41), [1.0] * 40)}, "loss")
    assert steps.layout.xaxis.dtick == 5  # 40 steps: every 5th, never 2.5
    wall = V.curves_figure({"run": frame("loss", range(1, 4), [1.0] * 3)}, "loss", x="wall")
    assert wall.layout.xaxis.dtick is None


def test_each_run_keeps_its_colour_on_every_chart_and_two_runs_differ():
    a = pd.concat([frame("loss", range(1, 11), [1.0] * 10), frame("test_loss", [10], [0.9])])
    b = frame("loss", range(1, 11), [2.0] * 10)  # no test_loss yet
    c = pd.concat([frame("loss", range(1, 11), [3.0] * 10), frame("test_loss", [10], [0.8])])
    runs = {"a": a, "b": b, "c": c}
    colours = {}
    for metric in ("loss", "test_loss"):
        for smoothing in (0.0, 0.6):
            for trace in V.curves_figure(runs, metric, smoothing=smoothing).data:
                colours.setdefault(trace.legendgroup or trace.name.replace(" (raw)", ""), set()).add(trace.line.color)
    assert all(len(c) == 1 for c in colours.values())  # the same colour everywhere, raw and smoothed too
    assert len({next(iter(c)) for c in colours.values()}) == 3
    # Two runs that agree exactly (an A/B pair) are still both visible: different dashes and markers.
    same = V.curves_figure({"fp32": frame("test_loss", [10], [0.5]), "bf16": frame("test_loss", [10], [0.5])},
                           "test_loss")
    assert same.data[0].line.dash != same.data[1].line.dash
    assert (same.data[0].marker.symbol, same.data[0].marker.size) != (same.data[1].marker.symbol,
                                                                        same.data[1].marker.size)
    assert V.run_color(0) != V.run_color(1) and not all(x.startswith("#1f") or x.startswith("#83")
                                                        for x in (V.run_color(0), V.run_color(1)))


def test_the_eta_after_a_resume_counts_only_this_workers_steps():
    now = time.time()
    started = now - 10  # the resumed worker has run 10 s ...
    metrics = pd.DataFrame({"step": [498, 499, 500, 501, 510], "epoch": 5, "name": "loss", "value": 1.0,
                            "wall": [now - 100, now - 90, now - 80, now - 9, now - 1]})
    assert V.first_step_since(metrics, started) == 500  # ... from the checkpoint's step 500
    run = {"step": 510, "started": started, "status": "running"}
    p = V.progress(run, 1000, V.first_step_since(metrics, started))
    assert p["eta_s"] == pytest.approx(10 / 10 * 490, rel=0.05)  # 1 s a step, 490 to go: not "ETA 1 s"
    assert V.progress(run, 1000, None)["eta_s"] is None  # nothing of its own yet: no ETA (not "ETA 0 s")
    assert V.first_step_since(metrics, now) is None


def test_total_steps_count_accumulation_and_processes_as_the_trainer():
    from core.training.config import steps_per_epoch

    assert V.total_steps({"dataset": "digits8k", "batch_size": 64, "epochs": 2, "accum_steps": 4}) == \
        2 * steps_per_epoch(7000, 64, 4, 1)
    assert V.total_steps({"dataset": "digits8k", "batch_size": 64, "epochs": 1, "processes": 2}) == 110


def test_the_runs_table_has_world_size_and_test_loss():
    run = {"id": "r1", "name": "", "status": "completed", "created": 0.0, "started": 1.0, "finished": 2.0,
           "config": {"dataset": "linear", "preset": "linear", "processes": 2}, "device": "cpu", "precision": "fp32",
           "best_metrics": {"test_loss": 0.2}, "last_metrics": {"test_loss": 0.1254, "test_acc": None}, "tags": []}
    row = V.runs_table([run]).iloc[0]
    assert row["processes"] == 2 and row["test loss"] == 0.1254 and pd.isna(row["last acc"])
