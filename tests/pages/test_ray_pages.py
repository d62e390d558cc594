"""The Train page with PYTORCH_LAB_EXECUTOR=ray: Start submits a Ray Job that trains to the end, its log
on the page is Ray's; an unreachable Ray address is a clear, translated error within seconds, and
nothing is queued. Settings that cannot work stop the page with their reason."""
import socket
import time

import pytest

from core.i18n import CATALOGUE
from tests.pages.conftest import shown

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]


def run_id_of(at) -> str:
    value = at.query_params["run"]
    return value[0] if isinstance(value, list) else value


def start_r1(at, epochs: int = 20):
    at.button(key="tr_ex_R1").click().run()
    at.number_input(key="tr_epochs").set_value(epochs).run()
    at.button(key="tr_start").click().run()


@pytest.mark.ray
@pytest.mark.slow
def test_start_on_the_train_page_runs_a_ray_job(app, ray_head, monkeypatch):
    from pages.ui.state import lab_store

    for name, value in {"EXECUTOR": "ray", "RAY_ADDRESS": ray_head.dashboard, "HEARTBEAT_S": "0.5",
                        "STORE_URL": ""}.items():
        monkeypatch.setenv(f"PYTORCH_LAB_{name}", value)
    at = app("pages/train.py")
    start_r1(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = run_id_of(at)
    store = lab_store()
    deadline = time.monotonic() + 300
    while store.run(run_id)["status"] not in ("completed", "failed", "stopped"):
        assert time.monotonic() < deadline, "the Ray job did not finish"
        time.sleep(0.5)
    run = store.run(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["executor"] == "ray" and run["job_ref"].startswith(f"lab-{run_id}-")
    at.run()
    assert "completed" in at.get("progress")[0].proto.text and not at.error
    at.toggle(key="tr_log").set_value(True).run()
    logs = [c.value for c in at.code if "Running entrypoint" in c.value]  # Ray's log of the job, on the page
    assert len(logs) == 1 and f"Running entrypoint for job {run['job_ref']}" in logs[0]
    assert '"status": "completed"' in logs[0]


@pytest.fixture
def silent_ray(monkeypatch):
    """PYTORCH_LAB_RAY_ADDRESS at a port that accepts connections and never answers."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-scale.txt)")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    address = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setenv("PYTORCH_LAB_EXECUTOR", "ray")
    monkeypatch.setenv("PYTORCH_LAB_RAY_ADDRESS", address)
    monkeypatch.setenv("PYTORCH_LAB_STORE_URL", "")
    yield address
    silent.close()


def test_an_unreachable_ray_address_is_said_on_start(app, silent_ray):
    from pages.ui.state import lab_store

    at = app("pages/train.py")
    assert not at.error  # opening the page asks nothing of the cluster
    t0 = time.monotonic()
    start_r1(at, epochs=2)
    seconds = time.monotonic() - t0
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    text = shown(at.error[0].value)
    assert text.startswith(f"cannot reach the Ray cluster at {silent_ray}") and "PYTORCH_LAB_RAY_ADDRESS" in text
    assert "Traceback" not in text and seconds < 30  # a few seconds of connect/answer timeout, and the page runs
    assert lab_store().runs() == []  # nothing was queued
    runs = app("pages/runs.py")  # the Runs page does not need the cluster
    assert not runs.exception and not runs.error


def test_executor_settings_that_cannot_work_stop_the_page(app, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_EXECUTOR", "slurm")
    at = app("pages/train.py")
    start_r1(at, epochs=2)
    assert not at.exception
    assert any("PYTORCH_LAB_EXECUTOR must be one of local | ray; got slurm" in shown(e.value) for e in at.error)
    runs = app("pages/runs.py")
    assert not runs.exception and "PYTORCH_LAB_EXECUTOR" in shown(runs.error[0].value)
