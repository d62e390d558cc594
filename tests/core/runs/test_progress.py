"""core.runs.progress: learners' answers, predictions and steps in the run store, across restarts."""
from __future__ import annotations

import csv
import io

import pytest

from core.errors import LabError
from core.runs import progress as P
from core.runs.store import MIGRATIONS, open_store
from core.runs.stores.postgres import MIGRATIONS as PG_MIGRATIONS


@pytest.fixture
def store(tmp_path, store_url):
    s = open_store(home=tmp_path, url=store_url)  # SQLite, and PostgreSQL where it runs
    yield s
    s.close()


def test_the_migration_is_the_last_one_and_portable():
    assert len(MIGRATIONS) == len(PG_MIGRATIONS) and MIGRATIONS[3] == PG_MIGRATIONS[3]
    last = " ".join(MIGRATIONS[3])
    assert "lesson_attempts" in last and "lesson_steps" in last and "lesson_position" in last
    # No SQLite-only syntax: no AUTOINCREMENT, no WITHOUT ROWID, REAL timestamps as DOUBLE PRECISION.
    for word in ("AUTOINCREMENT", "WITHOUT ROWID", " REAL", "STRICT", "PRAGMA"):
        assert word not in last.upper(), word


def test_answers_hints_and_solutions_per_item(store):
    P.record(store, "Ann", "l1", "mean", "answer", "3.35", False)
    P.record(store, "Ann", "l1", "mean", "hint")
    P.record(store, "Ann", "l1", "mean", "answer", " 3.85 ", True)
    P.record(store, "Ann", "l1", "other", "solution")
    state = P.items(store, "Ann", "l1")
    assert state["mean"].wrong == 1 and state["mean"].hints == 1 and state["mean"].solved
    assert state["mean"].answers == [("3.35", False), ("3.85", True)]
    assert state["other"].solution and not state["other"].solved
    assert P.items(store, "Bob", "l1") == {}
    with pytest.raises(ValueError):
        P.record(store, "Ann", "l1", "mean", "guess", "1")


def test_steps_and_position_resume_after_a_restart(tmp_path, store_url):
    first = open_store(home=tmp_path, url=store_url)
    P.complete_step(first, "李雷", "l1", "create")
    P.complete_step(first, "李雷", "l1", "create")  # once only
    P.set_position(first, "李雷", "l1", 2)
    P.set_position(first, "李雷", "l2", 0)
    P.set_position(first, "李雷", "l1", 3)
    P.record(first, "李雷", "l1", "mean", "answer", "3.85", True)
    first.close()
    second = open_store(home=tmp_path, url=store_url)  # a new server process on the same lab home
    assert P.completed_steps(second, "李雷", "l1") == {"create"}
    assert P.position(second, "李雷", "l1") == 3 and P.position(second, "李雷", "l3") is None
    assert P.last_lesson(second, "李雷") == "l1"
    assert P.items(second, "李雷", "l1")["mean"].solved
    second.close()


def test_learner_names_are_checked():
    assert P.check_learner("  Ann   Lee ") == "Ann Lee"
    assert P.check_learner("李雷") == "李雷" and P.check_learner("ann@school.org") == "ann@school.org"
    for bad in ["", "   ", "x" * 41, "<script>", "a/b", "Robert'); DROP TABLE runs;--", None, 42]:
        with pytest.raises(LabError) as caught:
            P.check_learner(bad)
        assert caught.value.code == "lessons.bad_learner" and "学习者" in caught.value.message("zh")


def test_csv_holds_everything_and_defuses_formulas(store):
    P.record(store, "Ann", "l1", "mean", "answer", "=HYPERLINK(\"x\")", False)
    P.record(store, "Ann", "l1", "grad", "answer", "-0.42, 2.8", True)
    P.record(store, "Ann", "lab", "tensors_broadcast", "prediction", "3, 4", True)
    P.complete_step(store, "Ann", "l1", "create")
    P.record(store, "Bob", "l1", "mean", "answer", "1", False)
    rows = list(csv.DictReader(io.StringIO(P.learner_csv(store, "Ann"))))
    assert [r["kind"] for r in rows] == ["answer", "answer", "prediction", "step"]
    assert {r["learner"] for r in rows} == {"Ann"}
    assert rows[0]["answer"].startswith("'=") and rows[1]["answer"] == "-0.42, 2.8"
    assert list(rows[0]) == P.CSV_COLUMNS and rows[0]["time"].endswith("Z")


def test_teacher_views(store):
    for who, answer, ok in [("a", "3.35", False), ("a", "3.85", True), ("b", "3.35", False), ("c", "3.5", False),
                            ("c", "3.35", False)]:
        P.record(store, who, "l1", "mean", "answer", answer, ok)
    P.record(store, "b", "l1", "dtype", "prediction", "int32", False)
    P.record(store, "c", "l1", "dtype", "prediction", "int64", True)
    P.complete_step(store, "a", "l1", "create")
    stats = P.item_stats(store, "l1").set_index(["item", "kind"])
    assert stats.loc[("mean", "answer"), "tried"] == 3 and stats.loc[("mean", "answer"), "right"] == 1
    assert stats.loc[("mean", "answer"), "wrong_answers"] == [("3.35", 3), ("3.5", 1)]
    assert stats.loc[("dtype", "prediction"), "wrong_answers"] == [("int32", 1)]
    summary = P.learner_summary(store, "l1").set_index("learner")
    assert summary.loc["a", "steps"] == 1 and summary.loc["a", "solved"] == 1
    assert summary.loc["c", "predictions"] == 1 and summary.loc["b", "solved"] == 0
    assert P.learners(store) == ["a", "b", "c"]


def test_hostile_text_is_data(store, tmp_path):
    evil = "x'); DELETE FROM lesson_attempts; --"
    P.record(store, "Ann", "l1", "mean", "answer", evil, False)
    P.record(store, "Ann", "l1", "mean", "answer", "y" * 10_000, False)
    answers = [a for a, _ in P.items(store, "Ann", "l1")["mean"].answers]
    assert answers[0] == evil and len(answers[1]) == P.MAX_ANSWER
    assert len(P.attempts(store, "Ann")) == 2  # the table is still there, with both rows
