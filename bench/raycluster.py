"""A throwaway Ray cluster on this machine, for the Ray executor's tests.

``RayNode.head(...)`` starts ``ray start --head --block`` in its own session, with its own
temporary folder and free ports (GCS, dashboard, client server, dashboard agent), usage
statistics off; ``RayNode.worker(head, ...)`` adds a worker node. ``wait_ready()`` waits
until the dashboard's Jobs API answers (and, for a worker, until the head lists it);
``stop()`` ends the node and everything it started: first ``ray start``'s own shutdown
(SIGTERM), then SIGKILL for any process left in its session, and for the job commands Ray
ran in sessions of their own (they carry the cluster's address in their environment).
Nothing else on the machine is touched (no ``ray stop``, which ends every Ray process of the
user).

``prefix`` runs the node inside something (``["ip", "netns", "exec", "ns1"]``, a network
namespace; ``unshare --uts`` with a host name): the namespace test builds a cluster of
"hosts" on one machine that way. ``{folder}`` in it is replaced by the node's own folder, and
``temp_dir`` is the path Ray is told (default: that folder): a worker "host" that bind-mounts
its folder over the head's path in a mount namespace of its own has, like a real host, the
same Ray temp path as the head but its own files (Ray's agents read job logs by that path).

``python`` is the interpreter whose ``ray`` runs the node; its folder goes first on the
node's ``PATH``, so a Ray Job's ``python -m core.train ...`` runs the lab's environment.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


class RayUnavailable(RuntimeError):
    """Ray is not installed for this Python, or a node did not start."""


def ray_installed(python: str = sys.executable) -> bool:
    return (Path(python).parent / "ray").exists()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _sessions_and_env(sid: int | None, needles: tuple[bytes, ...]) -> list[int]:
    """Pids in session ``sid`` or whose environment holds one of ``needles`` (this user's processes only)."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            if sid is not None and os.getsid(pid) == sid:
                found.append(pid)
                continue
            if needles:
                env = (entry / "environ").read_bytes()
                if any(n in env for n in needles):
                    found.append(pid)
        except (OSError, ProcessLookupError):
            continue
    return found


class RayNode:
    """One ``ray start --block`` process (a head or a worker node) and its clean-up (see the module doc)."""

    def __init__(self, *, head: bool, node_ip: str = "127.0.0.1", gcs_address: str | None = None,
                 num_cpus: float = 1, resources: dict[str, float] | None = None, prefix: list[str] | None = None,
                 python: str = sys.executable, object_store_mb: int = 100, extra_env: dict[str, str] | None = None,
                 own_host: bool = False, temp_dir: str | None = None) -> None:
        if not ray_installed(python):
            raise RayUnavailable(f"Ray is not installed for {python}: pip install -r requirements-scale.txt")
        self.is_head = head
        self.node_ip = node_ip
        self.python = python
        self.prefix = list(prefix or [])
        self.folder = Path(tempfile.mkdtemp(prefix="lab-ray-", dir="/tmp"))  # short: Ray's socket paths
        # A node that is a host of its own (in its own network namespace) has Ray's usual ports;
        # nodes that share this machine's network take free ones.
        def port(usual: int) -> int:
            return usual if own_host else free_port(node_ip)

        self.gcs_port = port(6379) if head else 0
        self.dashboard_port = port(8265) if head else 0
        self.gcs_address = f"{node_ip}:{self.gcs_port}" if head else gcs_address
        self.dashboard = f"http://{node_ip}:{self.dashboard_port}" if head else None
        cmd = [str(Path(python).parent / "ray"), "start", "--block", "--disable-usage-stats",
               f"--node-ip-address={node_ip}", f"--temp-dir={temp_dir or self.folder}", f"--num-cpus={num_cpus}",
               "--num-gpus=0",
               f"--object-store-memory={object_store_mb * 1024 * 1024}",
               f"--dashboard-agent-listen-port={port(52365)}"]
        if head:
            cmd += ["--head", f"--port={self.gcs_port}", f"--dashboard-host={node_ip}",
                    f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={port(10001)}"]
        else:
            assert gcs_address, "a worker node needs the head's address"
            cmd += [f"--address={gcs_address}"]
        if resources:
            cmd.append(f"--resources={json.dumps(resources)}")
        self.command = [*(part.replace("{folder}", str(self.folder)) for part in self.prefix), *cmd]
        self.env = dict(os.environ)
        path = f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env.update({"RAY_USAGE_STATS_ENABLED": "0", "PATH": path, "PYTHONUNBUFFERED": "1", **(extra_env or {})})
        for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "VIRTUAL_ENV"):
            self.env.pop(key, None)
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "ray-start.log"

    @classmethod
    def head_node(cls, **kwargs) -> RayNode:
        return cls(head=True, **kwargs)

    @classmethod
    def worker_node(cls, gcs_address: str, **kwargs) -> RayNode:
        return cls(head=False, gcs_address=gcs_address, **kwargs)

    # ---------------------------------------------------------------- life cycle
    def start(self) -> RayNode:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
        return self

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _get(self, path: str, timeout: float = 3.0) -> object:
        assert self.dashboard is not None
        with urllib.request.urlopen(self.dashboard + path, timeout=timeout) as answer:
            return json.loads(answer.read())

    def wait_ready(self, timeout: float = 180.0, head: RayNode | None = None) -> RayNode:
        """Until the head's Jobs API answers (a worker: until the head lists this node alive)."""
        deadline = time.monotonic() + timeout
        watch = self if self.is_head else head
        assert watch is not None and self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise RayUnavailable(f"ray start ended with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.is_head:
                    watch._get("/api/version")
                    watch._get("/api/jobs/")
                    return self
                if self.node_id(watch) is not None:
                    return self
            except (OSError, ValueError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RayUnavailable(f"the Ray {'head' if self.is_head else 'worker'} did not get ready in "
                                     f"{timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def node_id(self, head: RayNode) -> str | None:
        """This node's id as the head lists it (alive), or None."""
        answer = head._get("/nodes?view=summary")
        summary = answer.get("data", {}).get("summary", []) if isinstance(answer, dict) else []
        for node in summary:
            raylet = node.get("raylet", {})
            if node.get("ip") == self.node_ip and raylet.get("state") == "ALIVE":
                return raylet.get("nodeId")
        return None

    def stop(self, timeout: float = 20.0) -> None:
        """End the node and what it started (see the module doc), then remove its folder."""
        proc, self.proc = self.proc, None
        if proc is not None:
            sid = proc.pid
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)  # ray start --block stops its node's processes
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            needles = (f"RAY_ADDRESS={self.gcs_address}\0".encode(),) if self.gcs_address else ()
            for _ in range(3):
                left = _sessions_and_env(sid, needles)
                if not left:
                    break
                for pid in left:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RayNode:
        return self.start().wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()
