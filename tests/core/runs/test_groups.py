"""core.runs.groups and core.runs.compare: seed groups, bands, best vs last, values at a step, baselines."""
import numpy as np
import pandas as pd
import pytest

from core.errors import LabError
from core.runs import compare as C
from core.runs import groups as G


def run(run_id, seed=0, status="completed", name="", created=0.0, **config):
    return {"id": run_id, "name": name, "status": status, "created": created,
            "config": {"lr": 0.01, "epochs": 2, "seed": seed, **config}}


def frame(run_id, accs, losses=None, steps_per_epoch=10, wall0=1000.0):
    rows = []
    for e, acc in enumerate(accs, start=1):
        rows.append((run_id, e * steps_per_epoch, e, "test_acc", acc, wall0 + e * 10))
    for s, loss in enumerate(losses or [], start=1):
        rows.append((run_id, s, 1 + (s - 1) // steps_per_epoch, "loss", loss, wall0 + s))
    return pd.DataFrame(rows, columns=["run_id", "step", "epoch", "name", "value", "wall"])


def test_runs_that_differ_only_in_seed_form_a_group():
    runs = [run("a", 0), run("b", 1), run("c", 0, lr=0.1), run("d", 2), run("e", 1, lr=0.1)]
    groups = G.seed_groups(runs)
    assert [[r["id"] for r in g.runs] for g in groups] == [["a", "b", "d"], ["c", "e"]]
    assert groups[0].seeds == [0, 1, 2] and groups[0].key == G.group_key({"lr": 0.01, "epochs": 2, "seed": 9})
    assert G.group_key(runs[0]["config"]) != G.group_key(runs[2]["config"])
    labels = G.group_labels(groups)
    assert labels == {groups[0].key: "lr=0.01", groups[1].key: "lr=0.1"}
    assert G.group_labels(groups[:1]) == {groups[0].key: "a"}  # one group: its first run's id (no name)


def test_group_curve_mean_std_envelope_and_groups_of_one():
    frames = [frame("a", [0.90, 0.95]), frame("b", [0.92, 0.97]), frame("c", [0.94])]  # c stopped after epoch 1
    curve = G.group_curve(frames, "test_acc", "epoch")
    assert curve["x"].tolist() == [1, 2] and curve["n"].tolist() == [3, 2]
    assert curve["mean"].tolist() == pytest.approx([0.92, 0.96])
    assert curve["std"].tolist() == pytest.approx([np.std([0.90, 0.92, 0.94], ddof=1), np.std([0.95, 0.97], ddof=1)])
    assert curve["lo"].tolist() == pytest.approx([0.90, 0.95]) and curve["hi"].tolist() == pytest.approx([0.94, 0.97])
    single = G.group_curve(frames[:1], "test_acc", "epoch")
    assert single["std"].isna().all() and single["mean"].tolist() == pytest.approx([0.90, 0.95])
    fig = G.group_figure({"two": frames[:2], "one": frames[:1]}, "test_acc", "epoch", band="minmax")
    kinds = [(t.name, t.fill) for t in fig.data]
    assert kinds == [("two (minmax)", "toself"), ("two (n=2)", None), ("one (n=1)", None)]  # one run: no band
    band = fig.data[0]
    assert list(band.y) == pytest.approx([0.92, 0.97, 0.95, 0.90])  # upper along x, lower back


def test_group_curve_interpolates_wall_time():
    columns = ["run_id", "step", "epoch", "name", "value", "wall"]
    a = pd.DataFrame([("a", 1, 1, "loss", 1.0, 0.0), ("a", 2, 1, "loss", 3.0, 2.0)], columns=columns)
    b = pd.DataFrame([("b", 1, 1, "loss", 2.0, 0.0), ("b", 2, 1, "loss", 2.0, 1.0)], columns=columns)
    curve = G.group_curve([a, b], "loss", "wall")
    # x = 0, 1, 2: run a is read at x = 1 by interpolation (2.0); run b ends at x = 1
    assert curve["x"].tolist() == [0, 1, 2] and curve["n"].tolist() == [2, 2, 1]
    assert curve["mean"].tolist() == pytest.approx([1.5, 2.0, 3.0])


def test_group_summary_best_and_final_over_completed_runs():
    runs = [run("a", 0), run("b", 1), run("c", 2, status="stopped")]
    metrics = {"a": frame("a", [0.90, 0.95, 0.94]), "b": frame("b", [0.92, 0.96, 0.96]), "c": frame("c", [0.99])}
    (row,) = G.group_summary(G.seed_groups(runs), metrics)
    assert row["runs"] == 3 and row["completed"] == 2 and row["seeds"] == [0, 1, 2]
    assert row["test_acc best"].mean == pytest.approx(0.955) and row["test_acc final"].mean == pytest.approx(0.95)
    assert row["test_acc final"].std == pytest.approx(np.std([0.94, 0.96], ddof=1))
    assert "test_loss best" not in row  # never logged
    assert G.format_stats(row["test_acc final"], "test_acc") == "95.00% ± 1.41"
    assert G.format_stats(G.describe([0.1234]), "test_loss") == "0.1234"  # one seed: no ± part


def test_missing_seeds():
    group = G.SeedGroup("k", [run("a", 0), run("b", 2), run("c", 3, status="failed")])
    assert G.missing_seeds(group, 4) == [1, 3]  # a failed seed is tried again
    assert G.missing_seeds(group, 2) == []
    assert G.missing_seeds(group, 3, start=5) == [5]
    with pytest.raises(LabError) as err:
        G.missing_seeds(group, G.MAX_SEEDS + 1)
    assert err.value.code == "groups.seeds_range"


def test_best_last_table_and_value_at_a_step():
    runs = [run("a", name="A"), run("b", name="B")]
    metrics = {"a": frame("a", [0.95, 0.93], losses=[3, 2, 1] * 10), "b": frame("b", [0.90], losses=[2] * 10)}
    table = C.best_last_table(runs, metrics)
    assert list(table.columns) == ["id", "run", "status", "seed", "test_acc best", "test_acc last"]
    assert table["test_acc best"].tolist() == [0.95, 0.90] and table["test_acc last"].tolist() == [0.93, 0.90]
    full = C.best_last_table(runs, metrics, ["loss"])
    assert full["loss best"].tolist() == [1, 2] and full["loss last"].tolist() == [1, 2]
    # At step 10 both ran an epoch; at step 20 only run a did: b is None there ("not reached").
    at10 = C.at_table(runs, metrics, ["test_acc", "loss"], "step", 10)
    assert at10["test_acc"].tolist() == [0.95, 0.90] and at10["loss"].tolist() == [3, 2]  # losses[9]
    at20 = C.at_table(runs, metrics, ["test_acc"], "step", 20)
    assert at20["test_acc"].tolist()[0] == 0.93 and pd.isna(at20["test_acc"].tolist()[1])
    assert C.value_at(metrics["a"], "test_acc", "step", 15) == 0.95  # the last value at or before the step
    assert C.value_at(metrics["a"], "test_acc", "epoch", 2) == 0.93
    assert C.extent(metrics, "step") == 30 and C.extent(metrics, "epoch", ["test_acc"]) == 2


def test_baseline_deltas_and_a_deleted_baseline():
    runs = [run("a", name="A"), run("b", name="B")]
    metrics = {"a": frame("a", [0.95, 0.93]), "b": frame("b", [0.90, 0.96])}
    table = C.with_deltas(C.best_last_table(runs, metrics), "a", ["test_acc last"])
    assert list(table.columns)[-1] == "Δ test_acc last"
    assert table["Δ test_acc last"].tolist() == pytest.approx([0.0, 0.03])
    assert C.with_deltas(table, None, ["test_acc last"]) is table
    assert C.check_baseline("b", runs)["id"] == "b" and C.check_baseline(None, runs) is None
    with pytest.raises(LabError) as err:
        C.check_baseline("r-deleted", runs)
    assert err.value.code == "runs.baseline_gone" and "r-deleted" in str(err.value)
