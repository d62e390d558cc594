"""The executor seam: JobManager's mapping of what an executor knows onto run states (with a scripted
executor, no cluster), the executors' settings and errors, the Ray back end's bad-input handling, and a
DDP job of the local executor."""
from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from core.errors import LabError
from core.ml.checkpoint import load_checkpoint
from core.runs import jobs as J
from core.runs.executors import ExecutorError, ExecutorUnavailable, LocalExecutor, open_executor
from core.runs.executors.base import Executor, JobInfo, JobSpec, Resources
from core.runs.store import open_store
from core.settings import load_settings
from core.training.config import TrainConfig, recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KILLED = ("Job entrypoint command failed with exit code 137, last available logs (truncated to 20,000 chars):\n"
          "epoch 1/9 train_loss 2.1\nKilled\n")


class Scripted(Executor):
    """An executor whose jobs never run: the test says what it knows of each."""

    name = "scripted"

    def __init__(self) -> None:
        self.launched: list[JobSpec] = []
        self.answers: dict[str, JobInfo] = {}
        self.cancelled: list[str] = []
        self.killed: list[str] = []
        self.down: ExecutorUnavailable | None = None

    def check(self) -> None:
        if self.down is not None:
            raise self.down

    def launch(self, job: JobSpec) -> str:
        self.check()
        self.launched.append(job)
        return f"job-{len(self.launched)}"

    def status(self, run):
        return self.answers.get(run["job_ref"] or "", JobInfo("unknown"))

    def cancel(self, run) -> None:
        self.cancelled.append(run["id"])

    def kill(self, run) -> None:
        self.killed.append(run["id"])

    def log_tail(self, run, log: Path, max_bytes: int = 4000) -> str:
        return f"output of {run['job_ref']}"

    def run_ranks(self, target, payload, world_size, resources, run_dir) -> int:
        raise NotImplementedError


def r2(**kw) -> TrainConfig:
    return recipe("r2").replace(**kw)


def unreachable() -> ExecutorUnavailable:
    return ExecutorUnavailable("executor.ray_unreachable", address="http://head:8265", seconds=3.0,
                               reason="Connection refused", setting="PYTORCH_LAB_RAY_ADDRESS")


@pytest.fixture
def scripted(tmp_path, store_url):
    executor = Scripted()
    jm = J.JobManager(tmp_path / "home", cap=8, heartbeat_s=0.2, executor=executor, launch_timeout=0.0)
    yield jm, executor
    jm.store.close()


def test_a_job_is_the_terminal_command_with_the_lab_settings(scripted, monkeypatch):
    jm, ex = scripted
    monkeypatch.setenv("PYTORCH_LAB_MAX_EPOCHS", "300")
    run_id = jm.start(r2(epochs=3), name="s", world_size=2)
    run = jm.status(run_id)
    assert run["executor"] == "scripted" and run["job_ref"] == "job-1" and run["world_size"] == 2
    assert run["status"] == "queued" and run["launched"] is not None
    job = ex.launched[0]
    assert job.argv[:4] == ["-m", "core.train", "--run-id", run_id] and job.world_size == 2
    assert job.env["PYTORCH_LAB_HOME"] == str(jm.home) and job.env["PYTORCH_LAB_EXECUTOR"] == "scripted"
    assert job.env["PYTORCH_LAB_MAX_EPOCHS"] == "300"  # the server's settings travel with the job
    assert job.env["PYTORCH_LAB_HEARTBEAT_S"] == "0.2" and job.log == jm.log_path(run_id)
    assert jm.log_tail(run_id) == "output of job-1" and jm.job(run_id).status == "unknown"
    with pytest.raises(ValueError, match="world size"):
        jm.start(r2(), world_size=0)


def test_what_the_executor_knows_settles_the_run(scripted):
    jm, ex = scripted
    killed, stopped, gone, pending = (jm.start(r2()) for _ in range(4))
    for run_id in (killed, stopped):  # their workers claimed them
        jm.store.update_run(run_id, status="running", heartbeat=time.time(), pid=4242)
    ex.answers = {"job-1": JobInfo("failed", KILLED), "job-2": JobInfo("stopped", "Job was intentionally stopped."),
                  "job-3": JobInfo("missing", "Ray has no job job-3"), "job-4": JobInfo("pending")}
    assert sorted(jm.reap()) == sorted([killed, gone])
    run = jm.status(killed)
    assert run["status"] == "failed" and "exit code 137" in run["error"] and "last log line: Killed" in run["error"]
    assert "killed?" in run["error"] and "truncated" not in run["error"]
    assert jm.status(stopped)["status"] == "stopped" and jm.status(stopped)["error"] is None
    assert jm.status(gone)["status"] == "failed" and "is gone" in jm.status(gone)["error"]
    # Waiting for resources is no lost launch, however long it takes (launch_timeout is 0 here).
    assert jm.status(pending)["status"] == "queued" and jm.status(pending)["launched"] is not None
    # A job that ended after its worker finished the run changes nothing.
    jm.store.finish_run(pending, "completed")
    ex.answers["job-4"] = JobInfo("succeeded")
    assert jm.reap() == [] and jm.status(pending)["status"] == "completed"


def test_silent_jobs_fail_and_hung_ones_are_killed(scripted):
    jm, ex = scripted
    hung, lost = jm.start(r2()), jm.start(r2())
    old = time.time() - 3600
    for run_id in (hung, lost):
        jm.store.update_run(run_id, status="running", heartbeat=old, host="node-7")
    ex.answers = {"job-1": JobInfo("running")}  # job-2: the executor cannot tell (the cluster is down)
    assert sorted(jm.reap()) == sorted([hung, lost])
    assert ex.killed == [hung] and "hung and was killed" in jm.status(hung)["error"]
    assert "no heartbeat from the worker on node-7" in jm.status(lost)["error"]


def test_stop_cancels_a_job_that_waits_for_resources(scripted):
    jm, ex = scripted
    waiting, running = jm.start(r2()), jm.start(r2())
    jm.store.update_run(running, status="running", heartbeat=time.time())
    assert jm.stop(waiting) == "queued" and ex.cancelled == [waiting]
    assert jm.stop(running) == "running" and ex.cancelled == [waiting]  # its worker stops at the flag
    assert jm.status(running)["stop_requested"]
    ex.answers["job-1"] = JobInfo("stopped")
    jm.poll()
    assert jm.status(waiting)["status"] == "stopped"
    # Deleting a job that waits for resources cancels it too.
    third = jm.start(r2())
    assert jm.delete(third) is False and ex.cancelled[-1] == third


def test_an_unreachable_cluster_queues_nothing_and_keeps_the_queue(scripted):
    jm, ex = scripted
    ex.down = unreachable()
    with pytest.raises(ExecutorUnavailable, match="cannot reach the Ray cluster"):
        jm.start(r2())
    assert jm.store.runs() == []
    ex.down = None
    run_id = jm.start(r2())
    jm.store.update_run(run_id, status="failed", finished=time.time())
    ex.down = unreachable()
    jm.resume(run_id)  # queued again; its launch fails: it waits in the queue with the reason
    run = jm.status(run_id)
    assert run["status"] == "queued" and run["launched"] is None and "cannot reach the Ray cluster" in run["error"]
    ex.down = None
    assert jm.poll() == [run_id]
    assert jm.status(run_id)["error"] is None and jm.status(run_id)["job_ref"] == "job-2"


def test_resume_forgets_the_old_job(scripted):
    jm, ex = scripted
    run_id = jm.start(r2())
    jm.store.update_run(run_id, status="running", heartbeat=time.time())
    ex.answers["job-1"] = JobInfo("failed", KILLED)
    jm.poll()
    assert jm.status(run_id)["status"] == "failed"
    jm.resume(run_id)
    run = jm.status(run_id)
    assert run["job_ref"] == "job-2" and run["status"] == "queued" and run["error"] is None


def test_open_executor_and_its_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))  # the JobManager below opens the lab's store
    assert isinstance(open_executor(load_settings({})), LocalExecutor)
    with pytest.raises(ExecutorError) as info:
        open_executor(load_settings({"PYTORCH_LAB_EXECUTOR": "kubernetes"}))
    assert str(info.value) == "PYTORCH_LAB_EXECUTOR must be one of local | ray; got kubernetes"
    s = load_settings({"PYTORCH_LAB_RAY_CPUS": "2.5", "PYTORCH_LAB_RAY_GPUS": "500"})
    assert s.ray_cpus == 2.5 and s.ray_gpus == 64 and s.executor == "local"
    with pytest.raises(ExecutorError) as info:
        J.JobManager(executor="kubernetes")
    assert info.value.code == "executor.unknown" and isinstance(info.value, LabError)
    assert Resources(cpus=0.5).threads == 1 and Resources(cpus=2.5).threads == 3


def test_ray_settings_are_checked_before_any_network():
    from core.runs.executors.ray import RayExecutor, normalize_address, parse_resources

    assert normalize_address("head:8265") == "http://head:8265"
    assert normalize_address(" https://head:8265/ ") == "https://head:8265"
    for bad, code in (("", "executor.ray_no_address"), ("ray://head:10001", "executor.ray_bad_address"),
                      ("http://", "executor.ray_bad_address")):
        with pytest.raises(ExecutorError) as info:
            normalize_address(bad)
        assert info.value.code == code
    assert parse_resources('{"lab_worker": 1, "big": 0.5}') == {"lab_worker": 1.0, "big": 0.5}
    assert parse_resources("") == {}
    for bad in ("{lab_worker: 1}", '{"CPU": 1}', '{"x": -1}', '["x"]', '{"x": true}', '{"x": NaN}'):
        with pytest.raises(ExecutorError, match="PYTORCH_LAB_RAY_RESOURCES must be a JSON object"):
            parse_resources(bad)
    ex = RayExecutor("head:8265", cpus=2, resources='{"lab_worker": 1}')
    assert ex.resources("cuda") == Resources(cpus=2.0, gpus=1.0, custom={"lab_worker": 1.0})
    assert ex.resources("auto").gpus == 0.0 and RayExecutor("h", gpus=0.5).resources("cuda").gpus == 0.5
    with pytest.raises(ExecutorError, match="PYTORCH_LAB_RAY_RESOURCES"):
        open_executor(load_settings({"PYTORCH_LAB_EXECUTOR": "ray", "PYTORCH_LAB_RAY_RESOURCES": "{oops"}))


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (the slow kind of unreachable)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    yield silent.getsockname()[1]
    silent.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["silent", "closed"])
def test_an_unreachable_ray_address_is_said_within_seconds(kind, silent_port):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-scale.txt)")
    from core.runs.executors.ray import RayExecutor

    port = silent_port if kind == "silent" else closed_port()
    ex = RayExecutor(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(ExecutorUnavailable) as info:
        ex.check()
    assert time.monotonic() - t0 < 15
    assert info.value.code == "executor.ray_unreachable"
    assert f"cannot reach the Ray cluster at http://127.0.0.1:{port}" in str(info.value)
    assert "PYTORCH_LAB_RAY_ADDRESS" in str(info.value)
    assert info.value.message("zh").startswith(f"无法连接位于 http://127.0.0.1:{port} 的 Ray 集群")
    # While it is down, it is not asked again for a while: a page's poll never waits for it.
    t0 = time.monotonic()
    with pytest.raises(ExecutorUnavailable):
        ex.client()
    assert time.monotonic() - t0 < 0.5
    run = {"id": "r1", "job_ref": "lab-r1-abc", "status": "running"}
    assert ex.status(run).status == "unknown"  # type: ignore[arg-type]


def test_an_address_that_is_no_ray_dashboard_is_said():
    pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-scale.txt)")
    from core.runs.executors.ray import RayExecutor

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ExecutorError) as info:
            RayExecutor(f"http://127.0.0.1:{server.server_address[1]}").check()
        assert info.value.code == "executor.ray_not_ray" and "not the cluster's port 6379" in str(info.value)
    finally:
        server.shutdown()


@pytest.mark.slow
def test_a_ddp_job_on_the_local_executor(tmp_path):
    """world_size 2: the job's worker starts two processes (gloo on CPU); rank 0 writes the run."""
    jm = J.JobManager(tmp_path / "home", cap=1, heartbeat_s=0.5, executor="local")
    config = TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", augment=False, batch_size=64,
                         epochs=2, limit_train=256, limit_test=128, device="cpu")
    run_id = jm.start(config, name="ddp", world_size=2)
    assert jm.wait(run_id, timeout=300) == "completed", jm.status(run_id)["error"]
    run = jm.status(run_id)
    assert run["world_size"] == 2 and run["executor"] == "local" and run["epoch"] == 2
    ck = load_checkpoint(jm.store.run_dir(run_id) / "last.pt")
    assert ck["epoch"] == 2 and ck["progress"]["world_size"] == 2
    assert len(jm.store.metrics(run_id, names=["loss"])) == 2 * 4  # 256 samples, global batch 64: 4 steps
    assert "DistributedDataParallel in 2 processes (local executor)" in jm.log_tail(run_id, 100_000)
    jm.store.close()


def test_the_cli_says_an_unreachable_ray_address_in_one_line(tmp_path, monkeypatch, capsys, silent_port):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-scale.txt)")
    from core.runs.cli import main

    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("PYTORCH_LAB_STORE_URL", "")
    monkeypatch.setenv("PYTORCH_LAB_RAY_ADDRESS", f"127.0.0.1:{silent_port}")
    t0 = time.monotonic()
    assert main(["--executor", "ray", "--recipe", "r1", "--epochs", "2"]) == 2
    assert time.monotonic() - t0 < 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot reach the Ray cluster at http://127.0.0.1:{silent_port}")
    assert open_store(home=tmp_path).runs() == []  # nothing queued
    monkeypatch.setenv("PYTORCH_LAB_EXECUTOR", "ray")  # the setting instead of the flag; --no-store cannot be a job
    assert main(["--recipe", "r1", "--no-store"]) == 2
    assert "--no-store trains in this process" in capsys.readouterr().err
    monkeypatch.setenv("PYTORCH_LAB_EXECUTOR", "nomad")
    assert main(["--recipe", "r1"]) == 2
    assert capsys.readouterr().err == "error: PYTORCH_LAB_EXECUTOR must be one of local | ray; got nomad\n"
