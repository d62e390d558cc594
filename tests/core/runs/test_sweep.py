"""core.runs.sweep and python -m core.sweep: parsing, expansion, validation (nothing queued), the CLI."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from core.errors import LabError
from core.runs import sweep as W
from core.runs.jobs import JobManager
from core.runs.store import SQLiteRunStore
from core.settings import ROOT
from core.sweep import main
from core.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0, augment=False,
                   batch_size=64, epochs=1, limit_train=128, limit_test=64)


def code_of(call) -> str:
    with pytest.raises(LabError) as err:
        call()
    return err.value.code


def test_values_are_read_by_the_settings_type():
    assert W.parse_grid("lr=0.001,3e-3").values == (0.001, 0.003)
    assert W.parse_grid("batch_size=64, 128").values == (64, 128)
    assert W.parse_grid("augment=true,no").values == (True, False)
    assert W.parse_grid("optimizer=adam,sgd").values == ("adam", "sgd")
    assert W.parse_grid("batch_size=1.5").values == ("1.5",)  # not a whole number: TrainConfig says so
    axis = W.parse_random("lr=1e-4:1e-2")
    assert axis.random and axis.log and (axis.lo, axis.hi) == (1e-4, 1e-2)
    assert not W.parse_random("momentum=0.5:0.9").log  # uniform: only lr and weight_decay are log-uniform
    assert W.parse_axis("epochs", "1, 2").values == (1, 2) and W.parse_axis("lr", "0.001:0.01").random


@pytest.mark.parametrize("arg, code", [
    ("nope=1,2", "sweep.unknown_field"), ("model_spec=1", "sweep.unknown_field"), ("seed=1,2", "sweep.seed"),
    ("lr", "sweep.syntax"), ("lr=", "sweep.syntax"), ("lr=0.1,,0.2", "sweep.syntax"),
    ("lr=0.1,0.1", "sweep.duplicate"), ("lr=" + ",".join(str(i / 100) for i in range(1, 19)), "sweep.too_many"),
])
def test_bad_grids(arg, code):
    assert code_of(lambda: W.parse_grid(arg)) == code


@pytest.mark.parametrize("arg, code", [
    ("optimizer=a:b", "sweep.random_type"), ("lr=0.1:0.01", "sweep.range"), ("weight_decay=0:0.1", "sweep.log_range"),
    ("lr=x:1", "sweep.syntax"), ("lr=0.1", "sweep.syntax"), ("lr=nan:1", "sweep.syntax"),
])
def test_bad_ranges(arg, code):
    assert code_of(lambda: W.parse_random(arg)) == code


def test_a_grid_times_seeds():
    plan = W.plan(TINY, [W.parse_grid("lr=0.001,0.003"), W.parse_grid("batch_size=64,128")], seeds=2)
    assert len(plan.runs) == 8 and plan.fields == ("lr", "batch_size")
    assert plan.settings == [{"lr": 0.001, "batch_size": 64}, {"lr": 0.001, "batch_size": 128},
                             {"lr": 0.003, "batch_size": 64}, {"lr": 0.003, "batch_size": 128}]
    assert [p.seed for p in plan.runs[:2]] == [0, 1]
    first = plan.runs[1].config
    assert (first.lr, first.batch_size, first.seed, first.limit_train) == (0.001, 64, 1, 128)  # the rest is TINY's


def test_random_draws_are_reproducible_and_in_range():
    axes = [W.parse_random("lr=1e-4:1e-2"), W.parse_random("momentum=0.5:0.9")]
    one = W.plan(TINY, axes, trials=6)
    assert one.settings == W.plan(TINY, axes, trials=6).settings  # draw seed 0: the same draws
    assert one.settings != W.plan(TINY, axes, trials=6, draw_seed=1).settings
    assert len(one.runs) == 6
    for s in one.settings:
        assert 1e-4 <= s["lr"] <= 1e-2 and 0.5 <= s["momentum"] <= 0.9
    ints = W.plan(TINY, [W.parse_random("epochs=1:3")], trials=8).settings
    assert all(isinstance(s["epochs"], int) and 1 <= s["epochs"] <= 3 for s in ints)
    assert len(ints) <= 3  # repeated draws of a small range are queued once


def test_bad_sweeps_queue_nothing(tmp_path):
    grid = W.parse_grid
    cases = {
        "sweep.empty": lambda: W.plan(TINY, []),
        "sweep.twice": lambda: W.plan(TINY, [grid("lr=0.1"), grid("lr=0.2")]),
        "sweep.too_many_fields": lambda: W.plan(TINY, [grid("lr=0.1"), grid("epochs=1"), grid("momentum=0.5")]),
        "sweep.too_many": lambda: W.plan(TINY, [grid("lr=0.001,0.003,0.01"), grid("batch_size=32,64,128")], seeds=2),
        "sweep.trials": lambda: W.plan(TINY, [W.parse_random("lr=0.001:0.01")]),
        "sweep.trials_unused": lambda: W.plan(TINY, [grid("lr=0.001")], trials=3),
        "sweep.seeds": lambda: W.plan(TINY, [grid("lr=0.001")], seeds=0),
    }
    for code, call in cases.items():
        assert code_of(call) == code, code
    with pytest.raises(LabError) as err:  # a value outside its range: named, with the config's own reason
        W.plan(TINY, [grid("lr=0.001,20")])
    assert err.value.code == "sweep.value" and "lr=20" in str(err.value) and "between" in str(err.value)
    assert err.value.params["error"].code == "config.float_range"
    with pytest.raises(LabError, match=r"batch_size=1\.5"):
        W.plan(TINY, [grid("batch_size=1.5")])
    assert code_of(lambda: W.plan(TINY, [grid("optimizer=adam,lbfgs")])) == "sweep.value"
    # The CLI: each of these exits 2 with the message and leaves the store empty.
    for argv in (["--grid", "nope=1"], ["--grid", "lr=0.1,20"], ["--grid", "lr=0.1", "--lr", "0.2"],
                 ["--grid", "lr=" + ",".join(f"0.0{i}" for i in range(1, 10)), "--seeds", "2"],
                 ["--from-run", "r-deleted", "--grid", "lr=0.1"]):
        assert main([*argv, "--home", str(tmp_path)]) == 2
    assert SQLiteRunStore(tmp_path).runs() == []


class FakeJobs:
    """JobManager.start / poll recorded, no workers (the CLI test below runs real ones)."""

    def __init__(self, store):
        self.store, self.polls = store, 0

    def start(self, config, name="", tags=(), parent=None, sweep=None, poll=True):
        return self.store.create_run(config.to_dict(), name=name, kind="job", parent=parent, sweep=sweep)

    def poll(self):
        self.polls += 1


def test_queue_links_the_runs_by_sweep_id(tmp_path):
    store = SQLiteRunStore(tmp_path)
    jobs = FakeJobs(store)
    plan = W.plan(TINY, [W.parse_grid("lr=0.001,0.003")], seeds=2)
    sweep_id, ids = W.queue(jobs, plan, name="try")
    runs = store.runs()
    assert len(ids) == 4 and {r["sweep"] for r in runs} == {sweep_id} and jobs.polls == 1
    assert store.run(ids[1])["name"] == "try lr=0.001 seed 1"
    assert W.sweeps(runs) == {sweep_id: runs} and W.swept_fields(runs) == ["lr"]
    # Reading it back: the best setting by test accuracy (no validation metric logged), mean over seeds.
    finals = dict(zip(ids, [0.90, 0.92, 0.95, 0.93], strict=True))
    for run_id, acc in finals.items():
        store.log_metrics(run_id, [(2, 1, "test_acc", acc)])
        store.finish_run(run_id, "completed")
    runs = store.runs()
    metrics = {r["id"]: store.metrics(r["id"]) for r in runs}
    assert W.score_metric(metrics) == "test_acc"
    table = W.sweep_table(runs, metrics, ["lr"], "test_acc")
    assert table["lr"].tolist() == [0.001, 0.001, 0.003, 0.003] and table["seed"].tolist() == [0, 1, 0, 1]
    best = W.best_setting(table, ["lr"], "test_acc")
    assert best.setting == {"lr": 0.003} and best.mean == pytest.approx(0.94) and best.n == 2
    metrics[ids[0]] = pd.concat([metrics[ids[0]], pd.DataFrame(
        [(ids[0], 2, 1, "val_acc", 0.5, 0.0)], columns=metrics[ids[0]].columns)])
    assert W.score_metric(metrics) == "val_acc"  # validation accuracy wins when logged
    fig = W.parallel_figure(table, ["lr"], "test_acc")
    dims = fig.data[0].dimensions
    assert [d.label for d in dims] == ["lr (log)", "test_acc"] and list(dims[1].values) == list(table["final"])
    assert W.param_figure(table, "lr", "test_acc").layout.xaxis.type == "log"


def test_a_failed_store_withdraws_the_queued_runs(tmp_path):
    store = SQLiteRunStore(tmp_path)

    class Failing(FakeJobs):
        def start(self, config, **kw):
            if len(self.store.runs()) == 2:
                raise OSError("disk full")
            return super().start(config, **kw)

    with pytest.raises(OSError):
        W.queue(Failing(store), W.plan(TINY, [W.parse_grid("lr=0.001,0.002,0.003")]))
    assert store.runs() == []


@pytest.mark.slow
def test_cli_sweep_waits_for_its_runs(tmp_path):
    """python -m core.sweep --wait: a tiny 2-run sweep queued through the job cap, one line per run."""
    cmd = [sys.executable, "-m", "core.sweep", "--home", str(tmp_path), "--preset", "cnn", "--optimizer", "adam",
           "--scheduler", "none", "--no-augment", "--limit-train", "128", "--limit-test", "64", "--epochs", "1",
           "--batch-size", "64", "--grid", "lr=0.001,0.003", "--wait", "--timeout", "240"]
    env = {"PYTORCH_LAB_JOB_CAP": "1", "PYTORCH_LAB_DOWNLOAD": "0", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("sweep s") and "2 run(s) queued" in lines[0] and "job cap 1" in lines[0]
    ended = [line for line in lines if ": completed test_acc" in line]
    assert len(ended) == 2 and any("lr=0.001" in line for line in ended)
    assert lines[-1].startswith("best setting: lr=") and "final val_acc" in lines[-1]  # chosen on validation
    store = SQLiteRunStore(tmp_path)
    runs = store.runs()
    assert len(runs) == 2 and {r["status"] for r in runs} == {"completed"} and len({r["sweep"] for r in runs}) == 1
    assert sorted(r["config"]["lr"] for r in runs) == [0.001, 0.003] and {r["kind"] for r in runs} == {"job"}
    assert json.dumps(runs[0]["config"])  # stored as the lab stores any run


def test_cli_dry_run_and_from_run(tmp_path, capsys):
    store = SQLiteRunStore(tmp_path)
    parent = store.create_run(TINY.replace(lr=0.002).to_dict(), name="p")
    assert main(["--home", str(tmp_path), "--from-run", parent, "--grid", "batch_size=32,64", "--seeds", "2",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["batch_size=32 seed 0", "batch_size=32 seed 1"] and out[-1].startswith("4 run(s); nothing")
    assert len(store.runs()) == 1
    assert main(["--from-run", parent, "--recipe", "r1", "--grid", "lr=0.1", "--home", str(tmp_path)]) == 2
    jobs = JobManager(tmp_path)
    from core.sweep import build_parser, make_plan

    plan = make_plan(build_parser().parse_args(["--from-run", parent, "--grid", "batch_size=32", "--epochs", "2"]),
                     jobs)
    first = plan.runs[0].config
    assert first.lr == 0.002 and first.epochs == 2 and first.limit_train == 128  # the run's config, --epochs on top
