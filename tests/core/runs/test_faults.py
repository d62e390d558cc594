"""Faults: processes die with SIGKILL (workers mid-epoch, writers mid-checkpoint, store writers
mid-transaction) and the store's server restarts under a training run, and nothing is lost: runs
are marked failed, checkpoints load, resumes end with the configured number of epochs, and the
store's integrity check stays "ok". The store tests run on every back end (``store_url``:
SQLite, and PostgreSQL marked ``postgres``).

Crashes here are real process deaths (SIGKILL), either sent from outside or sent by the process
to itself at a chosen point (a patched ``os.fsync`` / ``os.replace`` / ``save_checkpoint`` inside
a child process), never an exception raised in the test process.
"""
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.i18n import CATALOGUE
from core.ml.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.runs import jobs as J
from core.runs.executors.local import cmdline
from core.runs.store import RunStore, open_store, pid_alive
from core.settings import ROOT
from core.training.config import TrainConfig
from tests.core.runs.test_jobs import wait_for

HB = 0.2  # fast heartbeats
EN = CATALOGUE["en"]
APP = str(ROOT / "app.py")

# A child process that SIGKILLs itself at a chosen point of a checkpoint write, then runs
# ``argv[2:]`` as the worker command line (``core.train``) or as a save loop.
#   where = "write":   half of the temp file's bytes are on disk (a torn write), then SIGKILL
#   where = "fsync":   the whole temp file is written and flushed, SIGKILL before os.replace
#   where = "replace": SIGKILL right after os.replace (before the folder's fsync)
#   where = "after-stop-save": SIGKILL right after the worker saved last.pt once its run was asked to stop
#   any other value: no self-kill (the process is killed from outside)
CRASHER = r"""
import json, os, signal, sys

plan = json.loads(sys.argv[1])
target, nth, where = plan["target"], plan.get("nth", 1), plan["where"]
seen = {"n": 0}
real_fsync, real_replace = os.fsync, os.replace

def _is_target_temp(name):
    base = os.path.basename(name)
    return base.startswith("." + target + ".") and base.endswith(".tmp")

def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def fsync(fd):
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = ""
    if where in ("write", "fsync") and _is_target_temp(name):
        seen["n"] += 1
        if seen["n"] == nth:
            if where == "write":
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
            real_fsync(fd)
            _die()
    return real_fsync(fd)

def replace(src, dst, *a, **k):
    real_replace(src, dst, *a, **k)
    if where == "replace" and os.path.basename(str(dst)) == target:
        seen["n"] += 1
        if seen["n"] == nth:
            _die()

os.fsync, os.replace = fsync, replace

if where == "after-stop-save":
    import core.runs.worker as W
    from core.runs.store import open_store
    real_save = W.save_checkpoint
    args = sys.argv[2:]
    run_store, run_id = open_store(home=args[args.index("--home") + 1]), args[args.index("--run-id") + 1]

    def save(ckpt, path):
        out = real_save(ckpt, path)
        if os.path.basename(str(path)) == target and run_store.stop_requested(run_id):
            _die()
        return out
    W.save_checkpoint = save

if plan.get("mode") == "save":  # save epochs 1, 2, ... of a checkpoint of size plan["mb"] to argv[2]
    import torch
    from core.ml.checkpoint import save_checkpoint
    weights = torch.zeros(int(plan["mb"] * 1024 * 1024 / 4))
    first = plan.get("first", 1)
    for epoch in range(first, first + plan.get("count", 10**6)):
        save_checkpoint({"epoch": epoch, "model_state_dict": {"w": weights + epoch},
                         "optimizer_state_dict": {}, "loss": float(epoch)}, sys.argv[2])
        print(f"saved {epoch}", flush=True)
else:
    from core.runs.cli import main
    sys.exit(main(sys.argv[2:]))
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/core/conftest.py


def cnn(epochs: int, limit_train: int = 1024) -> TrainConfig:
    """The tutorials' CNN on a few digits: limit_train / 64 steps an epoch."""
    return TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0, augment=False,
                         batch_size=64, epochs=epochs, limit_train=limit_train, limit_test=200)


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTORCH_LAB_HEARTBEAT_S": str(HB),
                "PYTORCH_LAB_DOWNLOAD": "0"})
    return env


def crash(plan: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CRASHER, json.dumps(plan), *args], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def kill_workers(store: RunStore) -> None:
    """End the workers of this test's runs that are still alive (each leads its own session)."""
    for run in store.runs():
        pid = run["pid"]
        if pid and pid_alive(pid) and run["id"] in cmdline(pid):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def manager(tmp_path, store_url):
    """A job manager on each store back end (``store_url`` sets PYTORCH_LAB_STORE_URL for its workers too)."""
    jm = J.JobManager(tmp_path / "home", cap=1, heartbeat_s=HB)
    yield jm
    kill_workers(jm.store)
    for proc in jm._procs.values():
        if proc.poll() is None:
            proc.wait(10)
    jm.store.close()


def assert_complete(store: RunStore, run_id: str, epochs: int, steps_per_epoch: int) -> dict:
    """The run finished with exactly the configured epochs: store, metrics and last.pt agree."""
    run = store.run(run_id)
    assert run["status"] == "completed" and run["error"] is None, run["error"]
    assert run["epoch"] == epochs and run["last_metrics"]["epoch"] == epochs
    assert store.metrics(run_id, names=["test_acc"])["epoch"].tolist() == list(range(1, epochs + 1))
    # One loss row per optimizer step: no gap and no duplicate across the crash and the resume.
    assert store.metrics(run_id, names=["loss"])["step"].tolist() == list(range(1, epochs * steps_per_epoch + 1))
    last = load_checkpoint(store.run_dir(run_id) / "last.pt")
    assert last["epoch"] == epochs and last["step"] == epochs * steps_per_epoch
    assert last["config"]["epochs"] == epochs
    best = load_checkpoint(store.run_dir(run_id) / "best.pt")
    assert best["epoch"] == run["best_metrics"]["epoch"]  # best.pt is the epoch the store calls best
    assert store.integrity_check() == "ok"
    return run


# --------------------------------------------------------------------------- checkpoint writes
@pytest.mark.slow
@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("previous", [True, False])
def test_process_killed_while_saving_a_checkpoint(tmp_path, where, previous):
    path = tmp_path / "last.pt"
    if previous:
        save_checkpoint({"epoch": 1, "model_state_dict": {"w": torch.ones(3)}, "optimizer_state_dict": {},
                         "loss": 1.0}, path)
    proc = crash({"target": "last.pt", "where": where, "mode": "save", "mb": 4, "first": 2}, str(path))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "saved" not in proc.stdout  # it died inside its first save
    if where == "replace":  # the new file was complete when it got its final name
        new = load_checkpoint(path)
        assert new["epoch"] == 2 and torch.equal(new["model_state_dict"]["w"][:3], torch.full((3,), 2.0))
        assert temps(tmp_path) == []
    else:
        if previous:
            old = load_checkpoint(path)
            assert old["epoch"] == 1 and old["model_state_dict"]["w"].tolist() == [1.0, 1.0, 1.0]
        else:
            assert not path.exists()
        leftover = temps(tmp_path)
        assert len(leftover) == 1 and leftover[0].startswith(".last.pt.")  # the dead writer's temp file
        if where == "write":  # it really was torn: the half file is not a checkpoint
            with pytest.raises(CheckpointError):
                load_checkpoint(tmp_path / leftover[0])
    # The next save cleans the dead writer's temp file and leaves one complete checkpoint.
    save_checkpoint({"epoch": 3, "model_state_dict": {"w": torch.zeros(2)}, "optimizer_state_dict": {},
                     "loss": None}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 3


def test_live_writers_temp_files_are_left_alone(tmp_path):
    """Only a dead process's temp file is removed: a running writer's (another pid) is not."""
    path = tmp_path / "last.pt"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".last.pt.{sleeper.pid}.abcd1234.tmp"
        live.write_bytes(b"partial")
        other = tmp_path / ".best.pt.999999999.abcd1234.tmp"  # another file's temp: not this save's business
        other.write_bytes(b"partial")
        save_checkpoint({"epoch": 0, "model_state_dict": {"w": torch.zeros(1)}, "optimizer_state_dict": {},
                         "loss": 0.0}, path)
        assert live.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait(10)
    save_checkpoint({"epoch": 1, "model_state_dict": {"w": torch.zeros(1)}, "optimizer_state_dict": {},
                     "loss": 0.0}, path)
    assert not live.exists() and other.exists() and load_checkpoint(path)["epoch"] == 1


@pytest.mark.slow
def test_writer_killed_from_outside_at_a_random_moment(tmp_path):
    """A loop saving a 16 MB checkpoint is SIGKILLed from outside at an arbitrary time."""
    path = tmp_path / "last.pt"
    rng = random.Random(1234)
    for attempt in range(2):
        proc = subprocess.Popen([sys.executable, "-c", CRASHER, json.dumps({"target": "-", "where": "none",
                                 "mode": "save", "mb": 16}), str(path)],
                                cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True)
        try:
            saved = 0
            while saved < 2 + attempt:
                line = proc.stdout.readline()
                assert line.startswith("saved"), line
                saved = int(line.split()[1])
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.kill()
            proc.wait(10)
        # Whatever the moment: the final name holds a complete checkpoint of some epoch it saved.
        ck = load_checkpoint(path)
        assert ck["epoch"] >= saved
        assert torch.equal(ck["model_state_dict"]["w"][:3], torch.full((3,), ck["epoch"] * 1.0))
        assert len(temps(tmp_path)) <= 1
    save_checkpoint({**ck, "epoch": 99}, path)
    assert temps(tmp_path) == [] and load_checkpoint(path)["epoch"] == 99


WRITER = """
import sys, time
from core.runs.store import open_store
s = open_store(home=sys.argv[1]); rid = sys.argv[2]; step = 0
if sys.argv[3] == "loop":  # 50-row transactions as fast as it can
    while True:
        s.log_metrics(rid, [(step * 50 + i, 1, 'loss', float(i)) for i in range(50)])
        s.heartbeat(rid, epoch=1, step=step); step += 1
        if step == 20: print('busy', flush=True)
else:  # inside a job-slot claim's transaction, rows written, never committed
    with s._write(lock_slots=True) as conn:
        conn.execute("UPDATE runs SET launched = ? WHERE id = ?", (time.time(), rid))
        conn.executemany("INSERT INTO metrics (run_id, step, epoch, name, value, wall) VALUES (?, ?, ?, ?, ?, ?)",
                         [(rid, i, 1, 'loss', 1.0, time.time()) for i in range(50)])
        print('inside', flush=True)
        time.sleep(120)
"""


def writer(store: RunStore, run_id: str, mode: str) -> subprocess.Popen:
    """A process writing to ``store`` (the environment names its back end), reading its first line."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store.home), run_id, mode], cwd=ROOT, env=child_env(),
                            stdout=subprocess.PIPE, text=True)
    return proc


@pytest.mark.slow
def test_writer_killed_mid_transactions_keeps_the_store_intact(tmp_path, store_url):
    """SIGKILL a process writing metrics in 50-row transactions: integrity ok, no half transaction."""
    store = open_store(home=tmp_path, url=store_url)
    run_id = store.create_run(cnn(1).to_dict(), status="running", kind="cli")
    proc = writer(store, run_id, "loop")
    try:
        assert proc.stdout.readline().strip() == "busy"
        time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait(10)
    assert store.integrity_check() == "ok"
    n = len(store.metrics(run_id))
    assert n >= 1000 and n % 50 == 0  # every transaction is all or nothing
    store.log_metrics(run_id, [(10**6, 1, "loss", 1.0)])  # and the store still takes writes
    assert len(store.metrics(run_id)) == n + 1 and store.integrity_check() == "ok"
    store.close()


@pytest.mark.slow
def test_writer_killed_inside_a_slot_claim_leaves_no_lock_and_no_rows(tmp_path, store_url):
    """SIGKILL a process in the middle of a job-slot claim's transaction (it holds the claim lock and has
    written rows): the rows are gone, and the next claim, by another process, is not blocked."""
    store = open_store(home=tmp_path, url=store_url)
    victim = store.create_run(cnn(1).to_dict(), kind="job")
    proc = writer(store, victim, "claim")
    try:
        assert proc.stdout.readline().strip() == "inside"
    finally:
        proc.kill()
        proc.wait(10)
    t0 = time.monotonic()
    assert store.claim_launches(cap=1) == [victim]  # the dead claim's lock is gone, its update too
    assert time.monotonic() - t0 < 5
    assert store.metrics(victim).empty and store.integrity_check() == "ok"
    store.close()


# --------------------------------------------------------------------------- training workers
def page_app(home: Path, monkeypatch):
    """An AppTest of the whole lab on ``home`` (like tests/pages/conftest.py's ``app``)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PYTORCH_LAB_HOME", str(home))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")

    def make(page: str, **params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


@pytest.mark.slow
def test_sigkilled_worker_mid_epoch_fails_then_resumes_to_the_configured_epochs(manager, monkeypatch):
    # Enough epochs that the run is still going when the poll below catches it mid-epoch: on a
    # quiet machine a tiny CNN runs an epoch of 32 steps in well under a second.
    epochs, spe = 8, 32
    run_id = manager.start(cnn(epochs, limit_train=64 * spe))
    # Past the first checkpoint and inside an epoch (by the worker's last heartbeat).
    wait_for(lambda: (lambda r: r["status"] == "running" and r["step"] > spe and r["step"] % spe not in (0, spe - 1))(
        manager.status(run_id)), interval=0.01)
    proc = manager._procs[run_id]
    os.killpg(proc.pid, signal.SIGKILL)  # the worker this test started leads its own session
    proc.wait(10)
    assert manager.store.run(run_id)["status"] == "running"  # nobody has noticed yet
    assert manager.store.integrity_check() == "ok"

    # The pages notice: opening the Runs page reaps the dead worker and lists the run as failed.
    app = page_app(manager.home, monkeypatch)
    runs_page = app("pages/runs.py")
    table = runs_page.dataframe[0].value
    assert table.loc[table["id"] == run_id, "status"].tolist() == ["failed"]
    run = manager.status(run_id)
    assert run["status"] == "failed" and "killed" in run["error"] and run["finished"] is not None
    train_page = app("pages/train.py", run=run_id)
    status_line = re.sub(r"\\(.)", r"\1", train_page.get("progress")[0].proto.text)  # Markdown escapes off
    assert EN["status.failed"] in status_line and run_id in status_line
    assert any("killed" in e.value for e in train_page.error)
    assert not train_page.button(key="tr_resume").disabled and train_page.button(key="tr_stop").disabled

    # Its last checkpoint loads: a whole epoch, before the kill.
    last = load_checkpoint(manager.store.run_dir(run_id) / "last.pt")
    assert 1 <= last["epoch"] < epochs and last["step"] == last["epoch"] * spe and last["progress"]["batch"] == 0
    assert manager.store.integrity_check() == "ok"

    # Resume (the Train page's button) continues from last.pt to the configured epochs.
    train_page.button(key="tr_resume").click().run()
    assert not train_page.exception and not any("killed" in e.value for e in train_page.error)
    assert manager.wait(run_id, timeout=180) == "completed"
    assert_complete(manager.store, run_id, epochs, spe)
    assert f"resuming run {run_id} at epoch {last['epoch'] + 1}" in manager.log_tail(run_id, 100_000)
    assert temps(manager.store.run_dir(run_id)) == []


def stored_run(manager: J.JobManager, config: TrainConfig) -> tuple[str, list[str]]:
    """A queued job run and the worker's command line (as JobManager.command builds it)."""
    run_id = manager.store.create_run(config.to_dict(), status="queued", kind="job")
    return run_id, manager.command(run_id)[3:]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["last.pt", "best.pt"])
def test_worker_killed_while_writing_its_checkpoint(manager, target):
    """A real training worker SIGKILLs itself half-way through writing its second epoch's checkpoint."""
    epochs, spe = 2, 16
    run_id, argv = stored_run(manager, cnn(epochs))
    proc = crash({"target": target, "nth": 2, "where": "write"}, *argv)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    store, folder = manager.store, manager.store.run_dir(run_id)
    assert store.run(run_id)["status"] == "running" and store.integrity_check() == "ok"
    assert manager.reap() == [run_id]
    run = store.run(run_id)
    assert run["status"] == "failed" and "killed" in run["error"]
    leftover = temps(folder)
    assert len(leftover) == 1 and leftover[0].startswith(f".{target}.")
    with pytest.raises(CheckpointError):  # the torn bytes exist, but only under the temp name
        load_checkpoint(folder / leftover[0])
    last = load_checkpoint(folder / "last.pt")
    best = load_checkpoint(folder / "best.pt")
    # best.pt is written before last.pt, so last.pt (what a resume starts from) never records a best
    # epoch that best.pt does not hold: epoch 2 is redone from last.pt's epoch 1.
    assert last["epoch"] == 1 and best["epoch"] == (1 if target == "best.pt" else 2)
    assert store.integrity_check() == "ok"

    manager.resume(run_id)
    assert manager.wait(run_id, timeout=180) == "completed"
    assert_complete(store, run_id, epochs, spe)
    assert temps(folder) == []  # the dead worker's temp file was cleaned by the next save


@pytest.mark.slow
def test_worker_killed_right_after_its_stop_checkpoint(manager):
    """Stop a run, and the worker dies after saving the mid-epoch stop checkpoint: no metric is lost."""
    epochs, spe = 2, 64  # a long first epoch: the stop lands inside it
    run_id, argv = stored_run(manager, cnn(epochs, limit_train=64 * spe))
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, json.dumps({"target": "last.pt",
                             "where": "after-stop-save"}), *argv],
                            cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_for(lambda: (lambda r: r["status"] == "running" and r["step"] > 2)(manager.status(run_id)),
                 interval=0.01)
        manager.stop(run_id)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert manager.reap() == [run_id] and manager.status(run_id)["status"] == "failed"
    last = load_checkpoint(manager.store.run_dir(run_id) / "last.pt")  # (almost always a mid-epoch one)
    assert last["step"] > 0
    # Every step up to the checkpoint is in the store, so the resume leaves no gap.
    steps = manager.store.metrics(run_id, names=["loss"])["step"].tolist()
    assert steps[:last["step"]] == list(range(1, last["step"] + 1))
    assert manager.store.integrity_check() == "ok"
    manager.resume(run_id)
    assert manager.wait(run_id, timeout=180) == "completed"
    assert_complete(manager.store, run_id, epochs, spe)


# --------------------------------------------------------------------------- the store's server restarts
@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_restarted_while_a_run_trains(pg_server, pg_url, tmp_path, monkeypatch):
    """PostgreSQL goes down under a training job (``pg_ctl stop -m fast``: every connection is dropped) and
    stays down until the worker has had to retry a write; then it starts again, and is bounced once more
    with ``pg_ctl restart``. The worker's writes go through, the run finishes, and no metric is lost or
    stored twice."""
    monkeypatch.setenv("PYTORCH_LAB_STORE_URL", pg_url)
    jm = J.JobManager(tmp_path / "home", cap=1, heartbeat_s=HB)
    epochs, spe = 6, 32
    try:
        run_id = jm.start(cnn(epochs, limit_train=64 * spe))
        # Some metrics flushed (a worker flushes about once a second), the run still going.
        before = wait_for(lambda: jm.store.metrics(run_id, names=["loss"])["step"].tolist(), interval=0.02)
        assert jm.status(run_id)["epoch"] < epochs - 1, "the run is nearly done before the restart; make it longer"
        pg_server.stop_server("fast")
        try:
            wait_for(lambda: "retrying in" in jm.log_tail(run_id, 100_000), timeout=60, interval=0.05)
        finally:
            pg_server.start_server()
        pg_server.restart()  # and once more with pg_ctl restart, while the run goes on
        assert jm.wait(run_id, timeout=300) == "completed", jm.log_tail(run_id)
        run = assert_complete(jm.store, run_id, epochs, spe)
        assert jm.store.metrics(run_id, names=["loss"])["step"].tolist()[:len(before)] == before
        assert run["error"] is None
        log = jm.log_tail(run_id, 100_000)
        assert "note: cannot reach the run store's PostgreSQL" in log or "note: lost the connection" in log
        assert "Traceback" not in log
    finally:
        kill_workers(jm.store)
        jm.store.close()
