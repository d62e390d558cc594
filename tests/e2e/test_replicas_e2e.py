"""Browser, issue 17 item 4: two `streamlit run app.py` replicas behind HAProxy (deploy/haproxy.cfg, the
repository's own file), one shared lab home and one shared ``server.cookieSecret``.

Through the proxy a browser uploads a checkpoint, starts and watches a live run, downloads an export;
then the replica it is stuck to is killed (SIGKILL): the share link opens the same view on the other
replica, the run goes on training there (its worker is not the dead server's child), and it can be
stopped from the new replica. Needs HAProxy (Debian's ``haproxy``): skipped without it, unless
``LAB_REQUIRE_HAPROXY=1`` (set by .ci/run).
"""
from __future__ import annotations

import io
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from bench.browser import ROOT, LabServer, free_port
from core.i18n import CATALOGUE
from core.ml.modules import build_model
from core.runs.store import SQLiteRunStore
from core.training.config import TrainConfig
from tests.e2e.conftest import no_errors, shot, wait_idle
from tests.e2e.test_faults_e2e import wait_until
from tests.e2e.test_share_e2e import share_url

pytestmark = pytest.mark.e2e
EN = CATALOGUE["en"]
UPLOAD_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'
COOKIE = "LAB_REPLICA"  # deploy/haproxy.cfg's stickiness cookie


class Proxied:
    def __init__(self, home: Path, replicas: dict[str, LabServer], proxy: subprocess.Popen, url: str) -> None:
        self.home, self.replicas, self.proxy, self.url = home, replicas, proxy, url


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, chromium):
    haproxy = shutil.which("haproxy") or (shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin"))
    if haproxy is None:
        if os.environ.get("LAB_REQUIRE_HAPROXY") == "1":
            pytest.fail("HAProxy is required (LAB_REQUIRE_HAPROXY=1) but was not found", pytrace=False)
        pytest.skip("HAProxy not installed: apt-get install haproxy (see README, UI replicas)")
    home = tmp_path_factory.mktemp("replicas")
    env = {"STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(16)}  # one secret for every replica
    replicas: dict[str, LabServer] = {}
    proxy = None
    try:
        for name in ("r1", "r2"):
            replicas[name] = LabServer(home, env, log_name=f"{name}.log")
        port = free_port()
        proxy_env = {**os.environ, "LAB_PROXY_BIND": f"127.0.0.1:{port}",
                     "LAB_REPLICA_1": f"127.0.0.1:{replicas['r1'].port}",
                     "LAB_REPLICA_2": f"127.0.0.1:{replicas['r2'].port}"}
        log = open(home / "haproxy.log", "w")  # noqa: SIM115 - the proxy's output for its whole life
        proxy = subprocess.Popen([haproxy, "-f", str(ROOT / "deploy" / "haproxy.cfg")], env=proxy_env,
                                 stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while not healthy(url):
            assert proxy.poll() is None, (home / "haproxy.log").read_text()
            assert time.time() < deadline, "HAProxy did not answer within 30 s"
            time.sleep(0.2)
        yield Proxied(home, replicas, proxy, url)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        for server in replicas.values():
            server.stop()


def checkpoint() -> bytes:
    config = TrainConfig(preset="simple_cnn", device="cpu")
    buf = io.BytesIO()
    torch.save({"epoch": 2, "model_state_dict": build_model(config.spec()).state_dict(), "optimizer_state_dict": {},
                "loss": 0.25, "config": config.to_dict()}, buf)
    return buf.getvalue()


def sticky(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == COOKIE)


def test_a_replica_dies_and_the_share_link_and_the_run_go_on(proxied, chromium, tmp_path):
    store = SQLiteRunStore(proxied.home)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(proxied.url + "/train")
        wait_idle(page)
        first = sticky(context)
        assert first in proxied.replicas
        # 1. upload a checkpoint through the proxy
        page.get_by_text(EN["train.upload_title"]).click()
        page.locator(UPLOAD_INPUT).set_input_files(files=[{"name": "tiny.pt", "mimeType": "application/octet-stream",
                                                           "buffer": checkpoint()}])
        page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text="epoch 2").wait_for()
        # 2. start a run (the tutorials' CNN, R3, made long enough to outlive its replica) and watch it live
        page.locator(".st-key-tr_ex_R3 button").first.click()
        wait_idle(page)
        epochs = page.get_by_label(EN["train.epochs"])
        epochs.fill("40")
        epochs.press("Enter")
        wait_idle(page)
        page.locator(".st-key-tr_start button").click()
        run = wait_until(lambda: next(iter(store.runs(status="running")), None), 120, "the run did not start")
        run_id = run["id"]
        wait_until(lambda: store.run(run_id)["step"] > 0, 120, "the run made no step")
        page.get_by_text(EN["status.running"]).first.wait_for()
        assert sticky(context) == first
        # 3. download an export through the proxy
        page.goto(proxied.url + "/export")
        wait_idle(page)
        page.get_by_role("button", name=EN["export.run"]).click()
        button = page.locator('[data-testid="stDownloadButton"] button').first
        button.wait_for(timeout=180_000)
        with page.expect_download() as info:
            button.click()
        saved = tmp_path / info.value.suggested_filename
        info.value.save_as(saved)
        assert saved.stat().st_size > 10_000
        # 4. the run's view, its share link, and the replica dies
        page.goto(f"{proxied.url}/train?run={run_id}")
        wait_idle(page)
        link = share_url(page)
        assert link.startswith(proxied.url + "/train?") and f"run={run_id}" in link
        dead = proxied.replicas[first]
        os.kill(dead.pid, signal.SIGKILL)
        dead.proc.wait(10)
        step = store.run(run_id)["step"]
        page.goto(link)
        wait_idle(page, timeout=120_000)
        survivor = sticky(context)
        assert survivor != first and survivor in proxied.replicas
        page.get_by_text(EN["status.running"]).first.wait_for()
        assert page.locator("h1").first.inner_text() == EN["train.title"]
        no_errors(page)
        shot(page, "replicas-after-failover")
        # The run goes on: its worker trains on, and the other replica's page follows it live.
        wait_until(lambda: store.run(run_id)["step"] > step + 5, 120, "the run stopped training with its replica")
        assert store.run(run_id)["status"] == "running"
        page.locator(".st-key-tr_stop button").click()
        wait_until(lambda: store.run(run_id)["status"] == "stopped", 120, "Stop on the other replica did not stop it")
    finally:
        context.close()
        store.close()
