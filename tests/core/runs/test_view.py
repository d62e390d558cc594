import numpy as np
import pandas as pd
import pytest
import torch

from core.runs import view as V


def test_ema_is_debiased_like_tensorboard():
    values = [10.0] * 5
    assert np.allclose(V.ema(values, 0.9), 10.0)  # no pull towards 0 at the start
    out = V.ema([0.0, 10.0], 0.5)
    assert out[0] == 0.0 and out[1] == pytest.approx(10 * 0.5 / 0.75)
    assert np.allclose(V.ema([1, 2, 3], 0.0), [1, 2, 3])
    with pytest.raises(ValueError):
        V.ema([1], 1.0)


def test_ema_skips_values_that_are_not_finite():
    def reference(values, w):  # the recurrence, one value at a time
        out, last, debias = [], 0.0, 0.0
        for v in values:
            if not np.isfinite(v):
                out.append(v)
                continue
            last, debias = last * w + (1 - w) * v, debias * w + (1 - w)
            out.append(last / debias)
        return out

    values = [3.0, float("nan"), 1.0, float("inf"), 2.0, 5.0, *np.linspace(1, 0, 500)]
    for w in (0.0, 0.6, 0.99):
        assert np.allclose(V.ema(values, w), reference(values, w), equal_nan=True)
    assert V.ema([], 0.5).size == 0 and np.isnan(V.ema([float("nan")], 0.5)[0])


def test_series_sorts_by_step_then_time_and_spreads_steps_over_their_epoch():
    frame = pd.DataFrame([(3, 1, "loss", 0.3, 103.0), (1, 1, "loss", 0.1, 101.0), (2, 1, "lr", 9.0, 100.0),
                          (2, 1, "loss", 0.2, 105.0), (2, 1, "loss", 0.25, 104.0), (4, 2, "loss", 0.4, 106.0)],
                         columns=["step", "epoch", "name", "value", "wall"])
    assert V.series(frame, "loss")["value"].tolist() == [0.1, 0.25, 0.2, 0.3, 0.4]
    assert V.series(frame, "loss", "wall")["x"].tolist() == [1.0, 4.0, 5.0, 3.0, 6.0]
    assert V.series(frame, "loss", "epoch")["x"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert V.series(frame, "acc").empty and V.series(frame.iloc[:0], "loss").empty
    assert V.first_step_since(frame, 102.5) == 1 and V.first_step_since(frame, 200.0) is None


def test_downsample_keeps_last_point():
    frame = pd.DataFrame({"x": range(10_001), "value": range(10_001)})
    small = V.downsample(frame, 2000)
    assert len(small) <= 2001 and small["x"].iloc[-1] == 10_000


def _metrics(run_id, n=50):
    rows = [(run_id, s, 1 + s // 25, "loss", 2.0 / (s + 1), 1000.0 + s) for s in range(1, n + 1)]
    rows += [(run_id, 25, 1, "test_acc", 0.95, 1025.0), (run_id, 50, 2, "test_acc", 0.985, 1050.0)]
    return pd.DataFrame(rows, columns=["run_id", "step", "epoch", "name", "value", "wall"])


def test_curves_and_summary():
    metrics = {"a": _metrics("a"), "b": _metrics("b", 30)}
    fig = V.curves_figure(metrics, "loss", x="wall", smoothing=0.6, log_y=True)
    assert len(fig.data) == 4 and fig.layout.yaxis.type == "log"
    assert V.series(metrics["a"], "test_acc", "epoch")["x"].tolist() == [1, 2]
    runs = [{"id": "a", "name": "A", "status": "finished", "started": 1000.0, "finished": 1060.0}]
    summary = V.summary_rows(runs, metrics, target_acc=0.98).iloc[0]
    assert summary["best acc"] == 0.985 and summary["s to 98.0%"] == 50.0 and summary["duration s"] == 60.0


def test_config_table_only_differences():
    runs = [{"id": "a", "name": "A", "config": {"lr": 0.1, "epochs": 2, "model_spec": None}},
            {"id": "b", "name": "B", "config": {"lr": 0.01, "epochs": 2, "model_spec": {"name": "X", "layers": [1]}}}]
    full = V.config_table(runs)
    diff = V.config_table(runs, only_differences=True)
    assert "epochs" in full.index and "epochs" not in diff.index
    assert set(diff.index) == {"lr", "model_spec"}


def test_evaluate_model_confusion():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3, 4) * 10)
        model[1].bias.zero_()
    x = torch.eye(4)[[0, 1, 2, 0]].view(4, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 1])
    result = V.evaluate_model(model, x, y, classes=3)
    assert result["accuracy"] == 0.75
    assert result["confusion"].tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert result["wrong"].tolist() == [3]
    assert len(V.confusion_figure(result["confusion"], ["0", "1", "2"]).data) == 1


def test_total_steps_come_from_the_dataset_registry():
    from core.ml.data import DATASETS

    assert V.train_samples({"dataset": "mnist"}) == DATASETS["mnist"].train_size == 60_000
    assert V.train_samples({"dataset": "digits8k", "limit_train": 512}) == 512
    assert V.total_steps({"dataset": "digits8k", "batch_size": 128, "epochs": 2}) == 2 * 55  # 7,000 / 128 -> 55
    assert V.total_steps({"dataset": "synthetic", "batch_size": 64, "epochs": 1}) == 7  # 448 / 64
    assert V.total_steps({"dataset": "unknown"}) is None and V.train_samples({}) is None


def test_progress_eta():
    import time

    run = {"step": 50, "started": time.time() - 10, "status": "running"}
    p = V.progress(run, 100)
    assert p["fraction"] == 0.5 and 8 < p["eta_s"] < 12


def test_metrics_follower_reads_only_new_rows_and_rereads_after_a_resume(tmp_path, monkeypatch):
    from core.runs.store import SQLiteRunStore

    store = SQLiteRunStore(tmp_path)
    run_id = store.create_run({"dataset": "digits8k"}, status="running")
    names = ("loss", "test_acc")
    store.log_metrics(run_id, [(s, 1, n, s / 10) for s in range(1, 6) for n in ("loss", "grad_norm")])
    follower = V.MetricsFollower(run_id, names)
    first = follower.update(store, started=1.0)
    assert first["step"].tolist() == [1, 2, 3, 4, 5] and set(first["name"]) == {"loss"}
    # A later tick asks only for the rows after the last one it holds.
    store.log_metrics(run_id, [(6, 1, "loss", 0.6), (6, 1, "test_acc", 0.9), (6, 1, "grad_norm", 1.0)])
    asked, since = [], store.metrics_since
    monkeypatch.setattr(store, "metrics_since", lambda rid, after, n: asked.append(after) or since(rid, after, n))
    held = follower.last
    second = follower.update(store, started=1.0)
    assert asked == [held] and held > 0
    pd.testing.assert_frame_equal(second, store.metrics(run_id, names))
    assert follower.update(store, started=1.0) is second  # nothing new: the same frame
    # A resume deletes the rows after its checkpoint and logs those steps again: the follower
    # notices (fewer rows than it holds + the new ones) and reads everything again.
    store.truncate_metrics(run_id, 3)
    store.log_metrics(run_id, [(4, 1, "loss", 0.04)])
    asked.clear()
    again = follower.update(store, started=1.0)
    assert len(asked) == 2 and asked[0] > 0 and asked[1] == 0
    assert again["value"].tolist() == [0.1, 0.2, 0.3, 0.04]
    pd.testing.assert_frame_equal(again, store.metrics(run_id, names))
    # A new start time (the worker restarted) also starts over.
    asked.clear()
    follower.update(store, started=2.0)
    assert asked == [0]
    store.close()


def test_steps_and_samples_count_the_validation_split_and_dropped_batches():
    from core.training.config import TrainConfig, recipe

    cfg = TrainConfig().to_dict()
    assert V.train_samples(cfg) == 6500 and V.total_steps(cfg) == 6500 // 128 * 12
    assert V.total_steps({**cfg, "drop_last": False, "val_size": 0}) == -(-7000 // 128) * 12
    assert V.train_samples(recipe("r1").to_dict()) == 3  # regression data: no validation split


def test_summary_and_table_report_the_epoch_chosen_on_validation():
    metrics = _metrics("a")
    metrics = pd.concat([metrics, pd.DataFrame(
        [("a", 25, 1, "val_acc", 0.97, 1025.0), ("a", 50, 2, "val_acc", 0.96, 1050.0)], columns=metrics.columns)])
    run = {"id": "a", "name": "A", "status": "completed", "started": 1000.0, "finished": 1060.0,
           "best_metrics": {"epoch": 1, "val_acc": 0.97, "test_acc": 0.95}, "last_metrics": {"test_acc": 0.985},
           "config": {"preset": "lab_fast", "dataset": "digits8k"}, "created": 1000.0}
    row = V.summary_rows([run], {"a": metrics}).iloc[0]
    assert (row["val acc"], row["best acc"], row["last acc"]) == (0.97, 0.95, 0.985)  # not the best test epoch
    table = V.runs_table([run]).iloc[0]
    assert (table["val acc"], table["best acc"], table["last acc"]) == (0.97, 0.95, 0.985)


def test_curves_of_two_metrics_name_each_trace():
    metrics = _metrics("a")
    metrics = pd.concat([metrics, pd.DataFrame([("a", 25, 1, "val_acc", 0.97, 1025.0)], columns=metrics.columns)])
    fig = V.curves_figure({"run": metrics}, ("val_acc", "test_acc"), x="epoch",
                          legend={"val_acc": "validation", "test_acc": "test"})
    assert [t.name for t in fig.data] == ["run · validation", "run · test"]


class _Store:
    """A stand-in store whose metrics grow on demand, counting reads."""

    home = "/nowhere"

    def __init__(self) -> None:
        self.rows = _metrics("r1", 10)
        self.reads = 0

    def metrics_since(self, run_id, after, names):
        self.reads += 1
        new = self.rows.iloc[after:]
        return new, len(self.rows), len(self.rows)


def test_live_charts_are_built_once_per_new_row_however_many_sessions_watch():
    now = [0.0]
    charts = V.LiveCharts(min_interval=0.5, clock=lambda: now[0])
    store, run = _Store(), {"id": "r1", "started": 1.0}
    text = {"loss": "loss", "test_acc": "acc", "test_loss": "l", "val": "val", "test": "test", "speed": "s/s"}

    def tick():  # what one session's live fragment does
        frame, last = charts.metrics(store, run, ("loss", "test_acc"))
        return charts.charts(((run["id"], last), 0.6), lambda: V.live_figures({"r": frame}, 0.6, text)), last

    first = [tick() for _ in range(5)]  # five sessions in the same tick
    assert charts.builds == 1 and store.reads == 1 and all(f[0] is first[0][0] for f in first)
    held = len(store.rows)
    store.rows = pd.concat([store.rows, _metrics("r1", 12).iloc[10:]], ignore_index=True)
    now[0] = 0.2
    assert tick()[1] == held and charts.builds == 1  # within min_interval: no read, the same figures
    now[0] = 1.0
    figures, last = tick()
    assert last == len(store.rows) and charts.builds == 2 and figures is not first[0][0]
    assert [tick()[0] for _ in range(3)] == [figures] * 3 and charts.builds == 2
    assert set(figures) == {"loss", "acc", "lr", "speed"}


def test_a_resumed_worker_reports_its_checkpoint_step_at_once(tmp_path):
    """The run's row holds the dead worker's step until the new worker's first heartbeat; that beat
    comes when the worker starts, not a heartbeat interval later."""
    from core.runs.store import SQLiteRunStore
    from core.runs.worker import _Worker

    store = SQLiteRunStore(tmp_path)
    run_id = store.create_run({"dataset": "digits8k"}, status="running")
    store.heartbeat(run_id, epoch=3, step=730)  # where the killed worker got to
    worker = _Worker(store, run_id, heartbeat_s=60)
    worker.epoch, worker.step = 2, 600  # the checkpoint it continues from
    worker.start()
    try:
        assert (store.run(run_id)["step"], store.run(run_id)["epoch"]) == (600, 2)
    finally:
        worker.close()
