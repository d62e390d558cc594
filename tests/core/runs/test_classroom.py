"""Issue 17, item 5: a classroom on one server. Runs carry their learner (migration 7); with
``PYTORCH_LAB_LEARNER_JOBS`` the job queue is a fair share (one learner's runs wait while that learner
has that many training, and other learners' runs go first); a waiting run knows its place and when it
should start. Every test runs on both run-store back ends (``store_url``)."""
import time

import pytest

from core.runs import jobs as J
from core.runs.queue import queue_place, typical_duration
from core.training.config import recipe


@pytest.fixture
def manager(tmp_path, store_url):
    """A manager whose launches start no worker: launched runs stay queued (launched, not yet claimed)."""
    jm = J.JobManager(tmp_path / "home", cap=2, heartbeat_s=0.2)
    jm._launch = lambda run_id: None  # type: ignore[method-assign]
    yield jm
    jm.store.close()


def start(jm, learner: str | None, session: str = "s") -> str:
    owners = [("session", session + (learner or ""))] + ([("learner", learner)] if learner else [])
    return jm.start(recipe("r2"), owners=owners, poll=False)


def launched(jm) -> set[str]:
    return {r["id"] for r in jm.store.runs() if r["status"] == "queued" and r["launched"] is not None}


def test_a_run_keeps_its_learner_and_the_schema_is_at_version_7(manager):
    ada = start(manager, "Ada")
    anon = start(manager, None)
    assert manager.store.schema_version == 7
    assert manager.store.run(ada)["learner"] == "Ada" and manager.store.run(anon)["learner"] is None
    assert manager.store.learner_runs("Ada") == [ada]


def test_without_the_setting_the_queue_is_first_come_first_served(manager, monkeypatch):
    monkeypatch.delenv("PYTORCH_LAB_LEARNER_JOBS", raising=False)
    first, second, _third = (start(manager, "ada") for _ in range(3))
    manager.poll()
    assert launched(manager) == {first, second}  # as before the classroom: the oldest two, both Ada's


def test_the_fair_share_gives_every_learner_a_turn(manager, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_LEARNER_JOBS", "1")
    monkeypatch.setenv("PYTORCH_LAB_MAX_QUEUED", "4")
    ada = [start(manager, "ada") for _ in range(3)]
    bob = start(manager, "bob")
    anon = start(manager, None)
    manager.poll()
    assert launched(manager) == {ada[0], bob}  # Ada's second run waits for her first; Bob goes first
    manager.store.claim_run(ada[0], 1)
    manager.store.finish_run(ada[0], "completed")
    manager.poll()
    assert launched(manager) == {bob, ada[1]}  # her next run, the oldest waiting one Ada may start
    manager.store.finish_run(bob, "completed")
    manager.poll()
    assert launched(manager) == {ada[1], anon}  # a run without a learner is not limited


def test_a_learner_is_capped_by_the_store_across_servers(tmp_path, store_url, monkeypatch):
    """Two managers (two replicas) share one store: a learner's queued runs are counted in the store."""
    monkeypatch.setenv("PYTORCH_LAB_MAX_QUEUED", "2")
    one = J.JobManager(tmp_path / "home", cap=1, heartbeat_s=0.2)
    two = J.JobManager(tmp_path / "home", cap=1, heartbeat_s=0.2)
    try:
        for jm in (one, two):
            jm._launch = lambda run_id: None  # type: ignore[method-assign]
        start(one, "ada", "a")
        start(two, "ada", "b")
        with pytest.raises(ValueError, match="this learner has 2 run"):
            start(one, "ada", "c")
    finally:
        one.store.close()
        two.store.close()


def test_queue_place_counts_the_runs_ahead_and_estimates_the_start(manager, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_LEARNER_JOBS", "1")
    monkeypatch.setenv("PYTORCH_LAB_MAX_QUEUED", "4")
    store = manager.store
    now = time.time()
    # Two finished runs of 100 s and 140 s make the typical duration 120 s.
    for span in (100.0, 140.0):
        done = start(manager, "old")
        store.update_run(done, status="completed", started=now - 1000, finished=now - 1000 + span)
    assert typical_duration(store.runs(kind="job")) == pytest.approx(120.0)
    a1, a2 = start(manager, "ada"), start(manager, "ada")
    b1, c1 = start(manager, "bob"), start(manager, "cy")
    manager.poll()  # cap 2: a1 and b1 take the slots
    assert launched(manager) == {a1, b1}
    for run_id in (a1, b1):  # both started 30 s ago, no step ETA yet: 90 s left each
        store.update_run(run_id, launched=now - 30)
    assert queue_place(store, a1, 2, 1) is None  # not waiting
    # Both slots are taken until 90 s from now. Then Ada's first run ends and her second, the oldest
    # waiting, takes its slot; Bob's ends at the same time and Cy's run takes his.
    ada2, cy = queue_place(store, a2, 2, 1, now=now), queue_place(store, c1, 2, 1, now=now)
    assert (ada2.position, ada2.waiting, ada2.blocked_by_learner) == (1, 2, False)
    assert (cy.position, cy.waiting, cy.blocked_by_learner) == (2, 2, False)
    assert ada2.eta_s == pytest.approx(90.0, abs=1.0) and cy.eta_s == pytest.approx(90.0, abs=1.0)
    # With a third slot, Cy's run starts at once, and Ada's second waits for her first though a slot is free.
    cy3, ada3 = queue_place(store, c1, 3, 1, now=now), queue_place(store, a2, 3, 1, now=now)
    assert (cy3.position, cy3.eta_s) == (1, 0.0)
    assert (ada3.position, ada3.blocked_by_learner) == (2, True) and ada3.eta_s == pytest.approx(90.0, abs=1.0)
    # Without the fair share her run is simply the oldest.
    assert queue_place(store, a2, 3, 0, now=now).position == 1


def test_queue_place_has_no_time_before_any_run_finished(manager):
    _first, _second, third = (start(manager, None) for _ in range(3))
    manager.poll()
    place = queue_place(manager.store, third, 2)
    assert (place.position, place.waiting, place.eta_s) == (1, 1, None)


def test_the_pages_poll_once_per_tick_however_many_sessions_watch(manager, monkeypatch):
    calls = []
    monkeypatch.setattr(manager, "poll", lambda: calls.append(1) or [])
    for _ in range(50):  # fifty watching sessions' fragments in the same half second
        manager.tick(every=30.0)
    assert len(calls) == 1
    manager._last_tick -= 31.0  # the interval has passed
    manager.tick(every=30.0)
    assert len(calls) == 2
