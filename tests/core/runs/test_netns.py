"""Hosts without hosts: the lab across three "machines" on one machine.

Network namespaces joined by a bridge in the root namespace (veth pairs, 10.77.<n>.0/24; the
traffic never leaves this machine) stand in for hosts:

    root namespace   the lab: JobManager, the pages' MetricsFollower      10.77.<n>.1 (the bridge)
    <db>             PostgreSQL, the run store                            10.77.<n>.2
    <head>           a Ray head (GCS, dashboard, Jobs API)                10.77.<n>.3
    <worker>         a Ray worker node, host name lab-worker-<id>,       10.77.<n>.4
                     the only node with the custom resource lab_worker

The lab submits a run with PYTORCH_LAB_STORE_URL at <db> and PYTORCH_LAB_EXECUTOR=ray at
<head>'s dashboard, PYTORCH_LAB_RAY_RESOURCES={"lab_worker": 1}; the test checks that it trains
on the worker "host" (the run's host column, Ray's node id, the worker process's network
namespace), that its metrics stream to the store while it runs (what the Train page reads), and
that it can be stopped (last.pt in the shared home) and resumed to the end.

It needs root and iproute2 (``ip netns``, ``unshare``), PostgreSQL and Ray: without them it is
skipped, with ``LAB_REQUIRE_NETNS=1`` (CI) it fails. Namespaces, links and processes are removed
even when it fails. It takes about a minute on a quiet 2-core machine (two Ray nodes start).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from functools import partial

import pytest

from core.ml.checkpoint import load_checkpoint
from core.runs.jobs import JobManager
from core.runs.view import MetricsFollower
from core.training.config import TrainConfig
from tests.conftest import require_or_skip
from tests.core.runs.test_jobs import wait_for as wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
HOSTS = {"db": 2, "head": 3, "worker": 4}


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


class Network:
    """A bridge and one network namespace per host (see the module doc); ``remove()`` undoes all of it."""

    def __init__(self) -> None:
        self.id = secrets.token_hex(2)
        self.subnet = f"10.77.{int(self.id, 16) % 250}"
        self.bridge = f"lbr{self.id}"
        self.names = {host: f"lab-{host}-{self.id}" for host in HOSTS}
        self.made: list[tuple[str, str]] = []  # what exists, to remove: ("netns", name), ("link", name)

    def address(self, host: str) -> str:
        return f"{self.subnet}.{HOSTS[host]}"

    def exec(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[host]]

    def create(self) -> Network:
        ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host, name in self.names.items():
            ip("netns", "add", name)
            self.made.append(("netns", name))
            outside, inside = f"lv{host[0]}{self.id}", f"lp{host[0]}{self.id}"
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self.made.append(("link", outside))
            ip("link", "set", inside, "netns", name)
            ip("link", "set", outside, "master", self.bridge)
            ip("link", "set", outside, "up")
            ip("-n", name, "link", "set", "lo", "up")
            ip("-n", name, "link", "set", inside, "name", "eth0")
            ip("-n", name, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
        return self

    def remove(self) -> None:
        for kind, name in reversed(self.made):
            if kind == "netns":
                pids = ip("netns", "pids", name, check=False).stdout.split()
                for pid in pids:  # whatever a failed test left running in our namespace
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                ip("netns", "del", name, check=False)
            else:
                ip("link", "del", name, check=False)
        self.made.clear()


def netns_missing() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"needs {tool} (iproute2, util-linux)"
    probe = f"lab-probe-{secrets.token_hex(2)}"
    made = ip("netns", "add", probe, check=False)
    ip("netns", "del", probe, check=False)
    return None if made.returncode == 0 else f"cannot create a network namespace: {made.stderr.strip()}"


@pytest.fixture
def hosts(tmp_path):
    """PostgreSQL, a Ray head and a Ray worker, each in its own namespace; everything removed afterwards."""
    why = netns_missing()
    if why:
        require_or_skip("LAB_REQUIRE_NETNS", "no network namespaces for the netns test", why)
    from bench.pgserver import PostgresServer, PostgresUnavailable
    from bench.raycluster import RayNode, RayUnavailable

    net = Network()
    started: list = []
    try:
        net.create()
        head = RayNode.head_node(node_ip=net.address("head"), num_cpus=1, prefix=net.exec("head"), own_host=True)
        started.append(head.start())
        try:  # PostgreSQL starts while the Ray head does
            db = PostgresServer({"fsync": "off", "synchronous_commit": "off"}, host=net.address("db"), port=5432,
                                prefix=net.exec("db"), clients=(f"{net.subnet}.0/24",)).start()
        except PostgresUnavailable as exc:
            require_or_skip("LAB_REQUIRE_NETNS", "no PostgreSQL for the netns test", str(exc))
        started.append(db)
        head.wait_ready()
        # The worker "host": its own network, host name and Ray folder (at the head's path, as on a real host).
        hostname = f"lab-worker-{net.id}"
        own = f'mount --bind {{folder}} {head.folder} && hostname {hostname} && exec "$@"'
        worker = RayNode.worker_node(
            head.gcs_address, node_ip=net.address("worker"), num_cpus=1, resources={"lab_worker": 1}, own_host=True,
            temp_dir=str(head.folder), prefix=[*net.exec("worker"), "unshare", "--uts", "--mount", "--", "sh", "-c",
                                                own, "sh"])
        started.append(worker.start())
        worker.wait_ready(head=head)
        yield {"net": net, "db": db, "head": head, "worker": worker, "hostname": hostname, "home": tmp_path / "home"}
    except RayUnavailable as exc:
        require_or_skip("LAB_REQUIRE_NETNS", "no Ray for the netns test", str(exc))
    finally:
        for thing in reversed(started):
            with contextlib.suppress(Exception):
                thing.stop()
        net.remove()


def tiny(epochs: int) -> TrainConfig:
    return TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0, augment=False,
                       batch_size=64, epochs=epochs, limit_train=512, limit_test=128, device="cpu")


wait_for = partial(wait_until, timeout=180.0, interval=0.2)  # a cluster is slower than one machine


def test_a_run_trains_on_the_worker_host_streams_metrics_and_stops_and_resumes(hosts, monkeypatch):
    net, head, worker = hosts["net"], hosts["head"], hosts["worker"]
    url = hosts["db"].database()
    for name, value in {"HOME": str(hosts["home"]), "STORE_URL": url, "EXECUTOR": "ray",
                        "RAY_ADDRESS": head.dashboard, "RAY_RESOURCES": json.dumps({"lab_worker": 1}),
                        "RAY_CPUS": "1", "HEARTBEAT_S": "0.5", "DOWNLOAD": "0"}.items():
        monkeypatch.setenv(f"PYTORCH_LAB_{name}", value)
    jobs = JobManager(cap=1, heartbeat_s=0.5)  # the lab, in the root namespace
    assert jobs.store.url == url and jobs.executor.name == "ray"
    run_id = jobs.start(tiny(epochs=12), name="across hosts")

    def running_past(epoch: int):
        jobs.poll()
        run = jobs.status(run_id)
        assert run["status"] in ("queued", "running"), run["error"]
        return run["status"] == "running" and run["epoch"] >= epoch and run

    run = wait_for(lambda: running_past(0))
    # It trains on the worker "host": its host name, its Ray node, its network namespace.
    assert run["host"] == hosts["hostname"]
    assert jobs.job(run_id).node == worker.node_id(head)
    assert ip("netns", "identify", str(run["pid"])).stdout.strip() == net.names["worker"]
    # Its metrics stream to the store while it runs: the Train page's follower sees them grow.
    follower = MetricsFollower(run_id, ("loss", "test_acc"))
    first = len(follower.update(jobs.store, run["started"]))
    grown = wait_for(lambda: len(follower.update(jobs.store, run["started"])) > first and
                     jobs.status(run_id)["status"] == "running", timeout=60)
    assert grown and jobs.status(run_id)["epoch"] < 12

    assert jobs.stop(run_id) == "running"
    assert jobs.wait(run_id, timeout=120) == "stopped"
    stopped_at = load_checkpoint(jobs.store.run_dir(run_id) / "last.pt")["epoch"]  # in the home all hosts share
    assert 1 <= stopped_at < 12
    jobs.resume(run_id)
    assert jobs.wait(run_id, timeout=300) == "completed", jobs.status(run_id)["error"]
    run = jobs.status(run_id)
    assert run["host"] == hosts["hostname"] and run["epoch"] == 12
    steps = jobs.store.metrics(run_id, names=["loss"])["step"].tolist()
    assert steps == list(range(1, 12 * 8 + 1))
    frame = follower.update(jobs.store, run["started"])  # the resumed run's rows, read again in full
    assert frame[frame["name"] == "loss"]["step"].tolist() == steps
    assert "resuming run" in jobs.log_tail(run_id, 100_000)
    jobs.store.close()
