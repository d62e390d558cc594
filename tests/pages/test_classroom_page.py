"""AppTest, issue 17 item 5: the Train page tells a waiting learner their place in the job queue and
when the run should start, and in a classroom asks for the learner's name (kept in a cookie)."""
import re
import time

from core.i18n import CATALOGUE
from core.runs.store import SQLiteRunStore
from core.training.config import recipe
from tests.pages.conftest import live_payload, shown

EN = CATALOGUE["en"]


def classroom(tmp_path) -> tuple[str, str]:
    """A lab home where one job trains (a slot of cap 1), two finished 100 s and 140 s, and Ada's
    run and then Bob's wait. Returns (Ada's run, Bob's run)."""
    store = SQLiteRunStore(tmp_path)
    config = recipe("r2").to_dict()
    now = time.time()
    for span in (100.0, 140.0):
        done = store.create_run(config, status="completed", kind="job", learner="old")
        store.update_run(done, started=now - 500, finished=now - 500 + span)
    busy = store.create_run(config, status="running", kind="job", learner="ada")
    store.update_run(busy, started=now - 20, heartbeat=now)
    ada = store.create_run(config, status="queued", kind="job", learner="ada")
    bob = store.create_run(config, status="queued", kind="job", learner="bob")
    store.close()
    return ada, bob


def start_in(text: str) -> int:
    return int(re.search(r"should start in about (\d+) s", text).group(1))


def queue_text(at) -> str:
    """The queue note the live view shows (its component polls the feed; see conftest.live_payload)."""
    status, payload = live_payload(at)
    assert status == 200, payload
    return " ".join(line["note"] for line in payload["runs"])


def test_a_waiting_run_shows_its_place_and_start_time(app, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_JOB_CAP", "1")
    monkeypatch.setenv("PYTORCH_LAB_LEARNER_JOBS", "1")
    ada, bob = classroom(tmp_path)
    at = app("pages/train.py", run=bob)
    # The running job (Ada's) has no step ETA yet: it ends after the typical 120 s, less the 20 s it has
    # run. Then Ada's waiting run, the oldest, starts (her first has ended); Bob's after it, 120 s later.
    text = queue_text(at)
    assert "Waiting in the job queue: 2 of 2" in text and 214 <= start_in(text) <= 220, text
    at = app("pages/train.py", run=ada)
    text = queue_text(at)
    assert "1 of 2" in text and 94 <= start_in(text) <= 100, text


def test_a_learner_at_the_fair_share_waits_while_a_slot_is_free(app, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_JOB_CAP", "3")
    monkeypatch.setenv("PYTORCH_LAB_LEARNER_JOBS", "1")
    monkeypatch.setattr("core.runs.jobs.JobManager._launch", lambda self, run_id: None)  # no worker starts
    ada, _bob = classroom(tmp_path)
    at = app("pages/train.py", run=ada)  # the page's poll gives the free slot to Bob's run, not Ada's
    text = queue_text(at)
    assert "1 of 1" in text and "in a classroom, everyone's runs take turns" in text, text


def test_the_queue_note_in_chinese(app, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_JOB_CAP", "1")
    _, bob = classroom(tmp_path)
    at = app("pages/train.py", run=bob)
    at.button_group(key="lang").set_value("zh").run()
    assert "正在任务队列中等待" in queue_text(at)


def test_a_classroom_asks_for_the_name_and_counts_runs_for_it(app, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_LEARNER_JOBS", "1")
    at = app("pages/train.py")
    box = at.text_input(key="tr_learner")
    assert "each learner may have 1 run(s) training at once" in box.help
    box.input("Ada Lovelace").run()
    assert not at.exception
    assert any("are Ada Lovelace's" in c.value for c in at.caption), [c.value for c in at.caption]
    assert at.query_params.get("learner") == "Ada Lovelace"


def test_a_bad_name_is_refused_and_no_classroom_means_no_field(app, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_LEARNER_JOBS", "1")
    at = app("pages/train.py")
    at.text_input(key="tr_learner").input("<img src=x>").run()
    assert not at.exception and at.error, "a name with markup is refused with a message"
    monkeypatch.delenv("PYTORCH_LAB_LEARNER_JOBS")
    plain = app("pages/train.py")
    assert not [t for t in plain.text_input if t.key == "tr_learner"]


def test_in_a_classroom_start_needs_a_name(app, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_LEARNER_JOBS", "1")
    at = app("pages/train.py")
    at.button(key="tr_start").click().run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert any("give your name above first" in e and "PYTORCH_LAB_LEARNER_JOBS" in e for e in errors), errors
