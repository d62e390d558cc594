"""R8: a background job with processes = 2 runs the same torchrun command a terminal user types, trains
with DistributedDataParallel (gloo on the CPU) and ends where one process on the whole batch does."""
import sys

import pytest

from core.runs.jobs import JobManager
from core.training.config import recipe
from core.training.trainer import Trainer

pytestmark = pytest.mark.slow
TINY = dict(epochs=2, limit_train=512, limit_test=200)


def test_the_job_command_is_torchrun_for_more_than_one_process(tmp_path):
    jobs = JobManager(tmp_path, cap=1)
    run_id = "r20250101-000000-abcdef"
    single = jobs.command(run_id)
    assert single[1:3] == ["-m", "core.train"] and "--run-id" in single
    ddp = jobs.command(run_id, processes=2)
    assert ddp[:6] == [jobs.python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert ddp[6] == "core.train" and ddp[7:9] == ["--run-id", run_id] and ddp[9:11] == ["--home", str(tmp_path)]


def test_a_ddp_job_of_two_processes_completes_and_matches_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    jobs = JobManager(tmp_path, cap=1)
    config = recipe("r8").replace(**TINY)
    assert config.processes == 2
    run_id = jobs.start(config, name="ddp")
    assert jobs.wait(run_id, timeout=600) == "completed", jobs.log_tail(run_id)
    run = jobs.store.run(run_id)
    assert run["config"]["processes"] == 2
    log = jobs.log_tail(run_id, 20_000)
    assert "torch.distributed.run" in log and "--nproc_per_node=2" in log and "world size 2" in log
    # Each process takes half of every batch of 64 and DDP averages the gradients: the same updates as one
    # process on the whole batch, so the same losses (up to float summation order).
    single = Trainer(recipe("r3").replace(**TINY))
    for _ in single.run():
        pass
    last = run["last_metrics"]
    assert last["step"] == single.global_step == 16
    assert last["train_loss"] == pytest.approx(single.history[-1]["train_loss"], abs=1e-4)
    assert last["test_loss"] == pytest.approx(single.history[-1]["test_loss"], abs=1e-4)
    assert last["test_acc"] == pytest.approx(single.history[-1]["test_acc"], abs=0.006)


def test_the_cli_runs_a_config_with_processes_under_torchrun(monkeypatch):
    import core.runs.cli as cli

    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command: calls.append(command) or 0)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["--recipe", "r3", "--processes", "2", "--epochs", "1", "--no-store"]) == 0
    assert calls == [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                      "core.train", "--recipe", "r3", "--processes", "2", "--epochs", "1", "--no-store"]]
    # Under torchrun a config asking for another number of processes is refused.
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["--recipe", "r3", "--processes", "2", "--no-store"]) == 2


def test_a_worker_started_with_the_wrong_number_of_processes_leaves_the_run_alone(tmp_path, monkeypatch, capsys):
    from core.runs.worker import run_stored

    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    jobs = JobManager(tmp_path, cap=1)
    run_id = jobs.store.create_run(recipe("r8").replace(**TINY).to_dict(), status="queued", kind="job")
    args = type("Args", (), {"run_id": run_id, "home": str(tmp_path), "resume": False, "job_cap": 1,
                             "quiet": True})()
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert run_stored(args) == 2
    assert "--nproc_per_node=2" in capsys.readouterr().err
    assert jobs.store.run(run_id)["status"] == "queued"
