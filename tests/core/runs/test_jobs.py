import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from core.ml.checkpoint import load_checkpoint
from core.runs import jobs as J
from core.runs.cli import main
from core.runs.store import SQLiteRunStore, open_store
from core.settings import ROOT
from core.training.config import TrainConfig, recipe
from core.training.trainer import Trainer

HB = 0.2  # fast heartbeats for the tests


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and stay fast when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def r2(**kw) -> TrainConfig:
    return recipe("r2").replace(**kw)


def cnn(epochs: int) -> TrainConfig:
    """The tutorials' CNN on 1,024 digits: 16 steps an epoch, long enough to stop or kill."""
    return TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0, augment=False,
                         batch_size=64, epochs=epochs, limit_train=1024, limit_test=200)


@pytest.fixture
def manager(tmp_path, store_url):
    """A job manager on each store back end (``store_url`` also sets PYTORCH_LAB_STORE_URL for the workers)."""
    jm = J.JobManager(tmp_path / "home", cap=1, heartbeat_s=HB)
    assert jm.store.url == (store_url or None)
    yield jm
    # End only the workers this test started (each leads its own session).
    for _run_id, proc in list(jm._procs.items()):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    jm.store.close()


def wait_for(predicate, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def test_thread_plan_fits_the_cores():
    assert J.thread_plan(2, 1, environ={}) == (1, 1)
    assert J.thread_plan(8, 1, environ={}) == (1, 7)
    assert J.thread_plan(8, 2, environ={}) == (1, 3)
    assert J.thread_plan(1, 1, environ={}) == (1, 1)
    assert J.thread_plan(2, 1, environ={"PYTORCH_LAB_WORKER_THREADS": "2"}) == (1, 2)
    assert J.default_cap({"PYTORCH_LAB_JOB_CAP": "3"}) == 3
    assert J.default_cap({"PYTORCH_LAB_JOB_CAP": "nan"}) >= 1


def test_configure_server_threads():
    assert J.configure_server_threads(cap=1) == 1 == torch.get_num_threads()


def test_worker_command_is_the_terminal_command(manager):
    cmd = manager.command("r1-abc")
    assert cmd[:3] == [sys.executable, "-m", "core.train"]
    assert cmd[cmd.index("--run-id") + 1] == "r1-abc" and cmd[cmd.index("--home") + 1] == str(manager.home)
    with pytest.raises(ValueError, match="invalid run id"):
        manager.command("../x")


def test_start_refuses_an_invalid_config(manager):
    with pytest.raises(ValueError, match="lr must be a finite number"):
        manager.start(r2(lr=float("nan")))
    assert manager.store.list_runs().empty


@pytest.mark.slow
def test_job_runs_to_completion_and_survives_a_server_restart(manager):
    run_id = manager.start(r2(epochs=5), name="job", tags=["t"])
    assert manager.status(run_id)["status"] in ("queued", "running")
    # A "restarted server": a new manager over the same home sees and finishes the job.
    restarted = J.JobManager(manager.home, cap=1, heartbeat_s=HB)
    assert restarted.wait(run_id, timeout=120) == "completed"
    run = restarted.status(run_id)
    assert run["kind"] == "job" and run["last_metrics"]["epoch"] == 5 and run["error"] is None
    assert run["device"] == "cpu" and run["precision"] == "fp32"
    metrics = restarted.store.metrics(run_id, names=["test_loss"])
    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5]
    ck = load_checkpoint(restarted.store.run_dir(run_id) / "last.pt")
    assert ck["epoch"] == 5 and ck["config"]["epochs"] == 5
    assert "--threads 1" in restarted.log_tail(run_id) or "--threads" in restarted.log_tail(run_id)
    with pytest.raises(ValueError, match="only a stopped or failed run"):
        restarted.resume(run_id)
    restarted.store.close()


@pytest.mark.slow
def test_cap_queues_runs_and_stop_of_a_queued_run(manager):
    a = manager.start(cnn(epochs=50))
    b = manager.start(r2(epochs=3))
    c = manager.start(r2(epochs=3))
    wait_for(lambda: manager.status(a)["status"] == "running")
    manager.poll()
    assert manager.status(b)["status"] == "queued" and manager.status(b)["launched"] is None
    assert manager.stop(c) == "stopped"  # never started: stopped at once
    manager.stop(a)
    # Nobody polls from here on: the finishing worker itself launches the next queued run.
    wait_for(lambda: manager.store.run(a)["status"] == "stopped", timeout=120)
    wait_for(lambda: manager.store.run(b)["status"] == "completed", timeout=120)
    assert manager.status(c)["status"] == "stopped" and manager.status(c)["started"] is None
    assert manager.wait(a, timeout=30) == "stopped"


@pytest.mark.slow
def test_stop_checkpoints_and_resume_finishes_the_run(manager):
    run_id = manager.start(cnn(epochs=12))
    wait_for(lambda: (manager.status(run_id)["epoch"] or 0) >= 1, timeout=90)
    manager.stop(run_id)
    assert manager.wait(run_id, timeout=60) == "stopped"
    run = manager.status(run_id)
    ck = load_checkpoint(manager.store.run_dir(run_id) / "last.pt")
    assert 1 <= ck["epoch"] < 12 and ck["step"] >= 16 and run["finished"] is not None
    assert not run["stop_requested"]
    manager.resume(run_id)
    assert manager.wait(run_id, timeout=120) == "completed"
    losses = manager.store.metrics(run_id, names=["loss"])
    assert list(losses["step"]) == list(range(1, 12 * 16 + 1))  # no gap, no duplicate after the resume
    assert load_checkpoint(manager.store.run_dir(run_id) / "last.pt")["epoch"] == 12
    assert "resuming run" in manager.log_tail(run_id, 100_000)


@pytest.mark.slow
def test_delete_never_waits_for_a_worker(manager):
    """delete() returns at once: a queued run goes now, a running one when its worker has stopped."""
    active = manager.start(cnn(epochs=50))
    waiting = manager.start(r2(epochs=3))  # cap 1: it waits in the queue
    wait_for(lambda: manager.status(active)["status"] == "running" and manager.status(active)["step"] > 0)
    assert manager.status(waiting)["launched"] is None
    assert manager.delete(waiting) is True and manager.store.get_run(waiting) is None
    run_dir = manager.store.run_dir(active)
    assert run_dir.exists()
    assert manager.delete(active) is False  # asked to stop and marked; nothing waited for the worker
    # Nobody polls from here on: the stopping worker deletes its own run (rows and folder).
    wait_for(lambda: manager.store.get_run(active) is None, timeout=120)
    wait_for(lambda: not run_dir.exists(), timeout=10)
    assert manager.store.metrics(active).empty
    assert manager._procs[active].wait(30) == 0  # it ended normally, as a stopped run
    manager.poll()
    assert manager.store.runs() == []


def test_delete_of_a_finished_run_and_a_run_marked_for_deletion(manager):
    store = manager.store
    done = store.create_run(r2().to_dict(), status="completed", kind="job")
    assert manager.delete(done) is True and store.get_run(done) is None
    # A run whose worker went away after it was marked (no live pid here): the next poll deletes it.
    marked = store.create_run(r2().to_dict(), status="running", kind="job")
    assert not store.delete_or_mark(marked)
    store.finish_run(marked, "stopped")
    with pytest.raises(ValueError, match="being deleted"):
        manager.resume(marked)
    manager.poll()
    assert store.get_run(marked) is None
    with pytest.raises(KeyError, match="no run"):
        manager.delete(marked)


@pytest.mark.slow
def test_sigkilled_worker_is_marked_failed(manager):
    run_id = manager.start(cnn(epochs=50))
    wait_for(lambda: manager.status(run_id)["status"] == "running" and manager.status(run_id)["step"] > 0)
    pid = manager.status(run_id)["pid"]
    proc = manager._procs[run_id]
    assert proc.pid == pid
    os.killpg(pid, signal.SIGKILL)  # the worker this test started leads its own session
    proc.wait(10)
    failed = wait_for(lambda: manager.reap() or None, timeout=10)
    assert failed == [run_id]
    run = manager.status(run_id)
    assert run["status"] == "failed" and "killed" in run["error"]
    # A failed run can be resumed from its last checkpoint.
    manager.resume(run_id)
    assert manager.status(run_id)["status"] in ("queued", "running")
    manager.stop(run_id)
    assert manager.wait(run_id, timeout=60) in ("stopped", "completed")


def test_stale_heartbeat_from_another_host_is_failed(manager):
    store = manager.store
    run_id = store.create_run(r2().to_dict(), status="running", kind="job")
    store.update_run(run_id, host="elsewhere", heartbeat=time.time() - 3600, pid=1)
    assert manager.reap() == [run_id]
    assert "no heartbeat" in store.run(run_id)["error"]
    # A dead local pid of a terminal (cli) run is failed too.
    cli = store.create_run(r2().to_dict(), status="running", kind="cli")
    store.update_run(cli, pid=2**22 + 4321)
    assert manager.reap() == [cli]


def test_worker_refuses_a_finished_or_unknown_run(tmp_path, capsys, store_url):
    store = open_store(home=tmp_path)
    run_id = store.create_run(r2().to_dict(), status="completed", kind="job")
    assert main(["--run-id", run_id, "--home", str(tmp_path)]) == 2
    assert main(["--run-id", "nope", "--home", str(tmp_path)]) == 2
    assert main(["--run-id", "../../etc", "--home", str(tmp_path)]) == 2
    queued = store.create_run(r2().to_dict(), status="queued", kind="job")
    assert main(["--run-id", queued, "--home", str(tmp_path), "--epochs", "3"]) == 2
    assert "cannot change it (got epochs)" in capsys.readouterr().err
    assert store.run(queued)["status"] == "queued"
    bad = store.create_run({**r2().to_dict(), "lr": -1.0}, status="queued", kind="job")
    assert main(["--run-id", bad, "--home", str(tmp_path)]) == 2
    assert "lr must be between" in store.run(bad)["error"] and store.run(bad)["status"] == "failed"
    store.close()


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTORCH_LAB_DOWNLOAD": "0", **extra})
    return env


@pytest.mark.slow
def test_terminal_run_writes_to_the_store(tmp_path, store_url):
    """``python -m core.train`` in a terminal: the run, its metrics and checkpoints land in the lab's store."""
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "core.train", "--recipe", "r2", "--epochs", "2", "--home", str(home), "--quiet",
           "--name", "terminal"]
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(PYTORCH_LAB_STORE_URL=store_url), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    store = open_store(home=home, url=store_url)
    run = store.run(summary["run_id"])
    assert run["status"] == "completed" and run["kind"] == "cli" and run["name"] == "terminal"
    assert store.metrics(run["id"], names=["test_loss"])["epoch"].tolist() == [1, 2]
    assert (store.run_dir(run["id"]) / "last.pt").exists()
    assert (home / "runs.sqlite3").exists() == (not store_url)  # PostgreSQL: no SQLite file at all
    store.close()


@pytest.mark.slow
def test_an_unreachable_store_is_one_line_and_exit_2_on_the_cli(tmp_path):
    """A PostgreSQL nobody listens on: the terminal command and the worker command print one line and
    exit 2 at start, without a traceback and before any training."""
    pytest.importorskip("psycopg")
    from bench.pgserver import free_port

    url = f"postgresql://lab:secret@127.0.0.1:{free_port()}/lab"
    for args in (["--recipe", "r2", "--epochs", "50"], ["--run-id", "r1-abc"]):
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "core.train", *args, "--home", str(tmp_path)], cwd=ROOT,
                              env=child_env(PYTORCH_LAB_STORE_URL=url), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot reach the run store's PostgreSQL"), lines
        assert "lab:***@127.0.0.1" in lines[0] and "secret" not in proc.stderr and "Traceback" not in proc.stderr
        assert time.monotonic() - t0 < 60 and not proc.stdout.strip()
    bad = subprocess.run([sys.executable, "-m", "core.train", "--epochs", "1", "--home", str(tmp_path)], cwd=ROOT,
                         env=child_env(PYTORCH_LAB_STORE_URL="mysql://x@y/z"), capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "must be a PostgreSQL URL" in bad.stderr


@pytest.mark.slow
def test_torchrun_ddp_matches_a_single_process(tmp_path):
    cfg = TrainConfig(preset="cnn", optimizer="adam", lr=2e-3, scheduler="none", weight_decay=0.0, augment=False,
                        batch_size=64, epochs=2, limit_train=1024, limit_test=500, device="cpu")
    single = Trainer(cfg)
    single_acc = [e for e in single.run() if e["kind"] == "epoch"][-1]["test_acc"]
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(cfg.to_json())
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "core.train",
           "--config", str(cfg_file), "--home", str(home), "--quiet", "--name", "ddp"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    store = SQLiteRunStore(home)
    runs = store.list_runs()
    assert len(runs) == 1  # rank 0 alone writes the store
    run = store.run(summary["run_id"])
    assert run["status"] == "completed" and run["last_metrics"]["epoch"] == 2
    steps = store.metrics(run["id"], names=["loss"])["step"].tolist()
    assert steps == list(range(1, 2 * 16 + 1))  # global batch 64 = 2 x 32: same steps per epoch as 1 process
    assert (store.run_dir(run["id"]) / "last.pt").exists()
    ddp_acc = run["last_metrics"]["test_acc"]
    assert single_acc > 0.8 and abs(ddp_acc - single_acc) <= 0.03, (single_acc, ddp_acc)
    store.close()
