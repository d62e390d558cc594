"""The Ray executor on a real Ray cluster (a head node on loopback, ``ray_head``): runs submitted as
Ray Jobs from ``python -m core.train`` and through JobManager complete with their metrics in the
store; a stop saves last.pt; a SIGKILLed worker fails its run; resume finishes it; a DDP run trains
across Ray Train workers."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from functools import partial

import pytest

from core.ml.checkpoint import load_checkpoint
from core.runs.jobs import JobManager
from core.runs.store import open_store
from core.settings import ROOT
from core.training.config import TrainConfig
from tests.core.runs.test_jobs import wait_for as wait_until

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def tiny(epochs: int, limit_train: int = 256) -> TrainConfig:
    """The tutorials' CNN on a few digits: limit_train / 64 steps an epoch."""
    return TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0, augment=False,
                       batch_size=64, epochs=epochs, limit_train=limit_train, limit_test=128, device="cpu")


@pytest.fixture
def ray_home(ray_head, tmp_path, monkeypatch):
    """The lab's settings for the Ray executor on ``ray_head``; runs in SQLite in a home all "hosts" share."""
    home = tmp_path / "home"
    for name, value in {"HOME": str(home), "STORE_URL": "", "EXECUTOR": "ray", "RAY_ADDRESS": ray_head.dashboard,
                        "HEARTBEAT_S": "0.5", "DOWNLOAD": "0", "RAY_CPUS": "1"}.items():
        monkeypatch.setenv(f"PYTORCH_LAB_{name}", value)
    return home


wait_for = partial(wait_until, timeout=180.0, interval=0.2)  # a cluster is slower than one machine


def test_python_m_core_train_submits_a_ray_job(ray_home):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "core.train", "--preset", "cnn", "--optimizer", "adam", "--lr", "1e-3",
                           "--scheduler", "none", "--no-augment", "--batch-size", "64", "--epochs", "2",
                           "--limit-train", "256", "--limit-test", "128", "--device", "cpu", "--name", "from the cli"],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epoch"] == 2 and summary["step"] == 8
    assert "queued for the ray executor (http://127.0.0.1:" in proc.stderr and "epoch 2/2" in proc.stderr
    store = open_store(home=ray_home)
    run = store.run(summary["run_id"])
    assert run["executor"] == "ray" and run["job_ref"].startswith(f"lab-{run['id']}-") and run["kind"] == "job"
    assert run["host"] == socket.gethostname() and run["name"] == "from the cli" and run["error"] is None
    assert len(store.metrics(run["id"], names=["loss"])) == 8 and len(store.metrics(run["id"], names=["test_acc"])) == 2
    jobs = JobManager(store=store)
    deadline = time.monotonic() + 60  # the run is completed in the store a moment before Ray's job ends
    while jobs.job(run["id"]).status == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs.job(run["id"]).status == "succeeded"
    log = jobs.log_tail(run["id"], 100_000)  # Ray's own logs of the job
    assert f"Running entrypoint for job {run['job_ref']}: python -m core.train --run-id {run['id']}" in log
    assert "epoch 2/2" in log
    store.close()


def test_stop_kill_and_resume_a_ray_job(ray_home):
    jobs = JobManager(cap=1, heartbeat_s=0.5)
    assert jobs.executor.name == "ray"
    run_id = jobs.start(tiny(epochs=40, limit_train=512), name="stop, kill, resume")

    def running_past(epoch: int):
        jobs.poll()
        run = jobs.status(run_id)
        assert run["status"] in ("queued", "running"), run["error"]
        return run["status"] == "running" and run["epoch"] > epoch and run

    wait_for(lambda: running_past(0))
    assert jobs.stop(run_id) == "running"
    assert jobs.wait(run_id, timeout=120) == "stopped"
    stopped_at = load_checkpoint(jobs.store.run_dir(run_id) / "last.pt")["epoch"]
    assert 1 <= stopped_at < 40
    wait_for(lambda: jobs.job(run_id).status == "succeeded", timeout=30)  # the job itself ended normally

    jobs.resume(run_id)
    run = wait_for(lambda: running_past(stopped_at))
    os.kill(run["pid"], signal.SIGKILL)  # the worker process on the "node" (this machine)
    assert jobs.wait(run_id, timeout=60) == "failed"
    run = jobs.status(run_id)
    assert "exit code 137" in run["error"] and f"ray job {run['job_ref']} failed" in run["error"], run["error"]

    jobs.resume(run_id)
    assert jobs.wait(run_id, timeout=400) == "completed", jobs.status(run_id)["error"]
    steps = jobs.store.metrics(run_id, names=["loss"])["step"].tolist()
    assert steps == list(range(1, 40 * 8 + 1))  # no gap, no duplicate across the stop, the kill and the resumes
    assert load_checkpoint(jobs.store.run_dir(run_id) / "last.pt")["epoch"] == 40
    assert "resuming run" in jobs.log_tail(run_id, 100_000)
    jobs.store.close()


def test_a_ddp_run_trains_across_ray_train_workers(ray_home, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_RAY_CPUS", "0.5")  # two ranks on the test head's 2 CPUs, with room to spare
    jobs = JobManager(cap=1, heartbeat_s=0.5)
    run_id = jobs.start(tiny(epochs=2), name="ddp on ray", world_size=2)
    status = jobs.wait(run_id, timeout=500)
    log = jobs.log_tail(run_id, 200_000)
    assert status == "completed", (jobs.status(run_id)["error"], log[-3000:])
    assert "DistributedDataParallel in 2 processes (ray executor)" in log
    assert "training worker group of size 2" in log  # Ray Train's own words
    ck = load_checkpoint(jobs.store.run_dir(run_id) / "last.pt")
    assert ck["progress"]["world_size"] == 2 and ck["epoch"] == 2
    assert len(jobs.store.metrics(run_id, names=["loss"])) == 2 * 4  # the global batch of 64: 4 steps an epoch
    jobs.store.close()
