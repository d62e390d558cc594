"""Issue 22, item 10: queued runs are capped per session and per learner, and the lab home's disk."""
import pytest

from core.ml.modules import parameter_count
from core.runs import jobs as J
from core.training.config import TrainConfig, recipe


@pytest.fixture
def manager(tmp_path, monkeypatch):
    """A manager whose launches start no worker: started runs stay queued (launched, not yet claimed)."""
    jm = J.JobManager(tmp_path / "home", cap=1, heartbeat_s=0.2)
    monkeypatch.setattr(jm, "_launch", lambda run_id: None)
    yield jm
    jm.store.close()


def r2() -> TrainConfig:
    return recipe("r2")


def test_a_session_may_queue_max_queued_runs_then_is_told_why(manager, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_MAX_QUEUED", "3")
    me, other = [("session", "a")], [("session", "b")]
    mine = [manager.start(r2(), owners=me) for _ in range(3)]
    with pytest.raises(ValueError) as err:
        manager.start(r2(), owners=me)
    assert err.value.code == "budget.queue_full"
    assert str(err.value) == ("this session has 3 run(s) queued or running, the most allowed at once "
                              "(PYTORCH_LAB_MAX_QUEUED); wait for one to finish or stop one, then start again")
    assert err.value.message("zh").startswith("这个会话已有 3 个运行")
    assert len(manager.store.runs()) == 3  # nothing was stored for the refused click
    manager.start(r2(), owners=other)  # another session is not held back
    manager.store.finish_run(mine[0], "completed")  # a run that ends frees a place
    manager.start(r2(), owners=me)
    with pytest.raises(ValueError, match="this session has 3"):
        manager.start(r2(), owners=me)


def test_a_learner_is_capped_across_sessions(manager, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_MAX_QUEUED", "2")
    manager.start(r2(), owners=[("session", "a"), ("learner", "ada")])
    manager.start(r2(), owners=[("session", "b"), ("learner", "ada")])
    with pytest.raises(ValueError, match="this learner has 2 run"):
        manager.start(r2(), owners=[("session", "c"), ("learner", "ada")])


def test_resume_counts_against_the_queue_cap(manager, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_MAX_QUEUED", "1")
    me = [("session", "a")]
    first = manager.start(r2(), owners=me)
    stopped = manager.start(r2(), owners=[("session", "b")])
    manager.store.finish_run(stopped, "stopped")
    with pytest.raises(ValueError, match="queue"):
        manager.resume(stopped, owners=me)
    assert manager.status(stopped)["status"] == "stopped"
    manager.store.finish_run(first, "completed")
    manager.resume(stopped, owners=me)
    assert manager.status(stopped)["status"] == "queued"


def test_a_run_that_could_fill_the_lab_home_is_refused(manager, monkeypatch):
    big = TrainConfig(preset="lab_cnn")
    need = J.run_disk_bytes(big)
    assert need == 24 * parameter_count(big.spec()) == 2_518_512  # best.pt + last.pt with Adam's moments
    (manager.home / "runs").mkdir(exist_ok=True)
    (manager.home / "runs" / "filler.bin").write_bytes(b"\0" * 10_000_000)
    used = J.disk_usage(manager.home)
    assert used >= 10_000_000  # the cap is at least 0.01 GB
    monkeypatch.setenv("PYTORCH_LAB_MAX_HOME_GB", str((used + need + 1000) / 1e9))
    manager.start(big)  # fits, and reserves its bytes until the home is measured again
    with pytest.raises(ValueError) as err:
        manager.start(big)
    assert err.value.code == "budget.home_full" and "PYTORCH_LAB_MAX_HOME_GB" in str(err.value)
    assert "delete runs on the Runs page" in str(err.value) and "运行记录" in err.value.message("zh")
    with pytest.raises(ValueError, match="lab home"):
        manager.check_start(big)
