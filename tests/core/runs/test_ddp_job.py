"""R8: a run with processes = 2 is a DDP job: its executor starts the two ranks (local processes here,
Ray Train workers on a cluster), trains with DistributedDataParallel (gloo on the CPU) and ends where one
process on the whole batch does."""
import pytest

from core.runs.jobs import JobManager
from core.training.config import recipe
from core.training.trainer import Trainer

pytestmark = pytest.mark.slow
TINY = dict(epochs=2, limit_train=512, limit_test=200, val_size=0)


def test_a_ddp_job_of_two_processes_completes_and_matches_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    jobs = JobManager(tmp_path, cap=1)
    config = recipe("r8").replace(**TINY)
    assert config.processes == 2
    run_id = jobs.start(config, name="ddp")  # the config's processes are the run's world size
    assert jobs.store.run(run_id)["world_size"] == 2
    assert jobs.wait(run_id, timeout=600) == "completed", jobs.log_tail(run_id)
    run = jobs.store.run(run_id)
    assert run["config"]["processes"] == 2
    assert "DistributedDataParallel in 2 processes" in jobs.log_tail(run_id, 20_000)
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


def test_the_cli_with_processes_needs_the_store_and_torchrun_must_agree(monkeypatch, capsys):
    import core.runs.cli as cli

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    # processes > 1 is a job of the executor: it needs the run store.
    assert cli.main(["--recipe", "r3", "--processes", "2", "--epochs", "1", "--no-store"]) == 2
    assert "needs the store" in capsys.readouterr().err
    # Under torchrun a config asking for processes itself is refused: torchrun already started them.
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["--recipe", "r3", "--processes", "2", "--no-store"]) == 2
