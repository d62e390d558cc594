"""Learners' progress in the lessons, kept in the run store (migration 4 of ``core.runs.stores``).

Three tables, written and read only here:

- ``lesson_attempts``: every answer, prediction, hint and opened solution (one row each, with the
  time, the answer as text and whether it was right; NULL for hints and solutions);
- ``lesson_steps``: the steps a learner completed;
- ``lesson_position``: the step a learner was on in each lesson (what "resume" opens).

A learner is a name (``check_learner``): the one the learner types, or the signed-in user's
email or name where ``st.login`` is configured. Every function takes the store; the SQL is
plain and portable (no SQLite-only syntax; ``ON CONFLICT ... DO`` works in SQLite and
PostgreSQL; ``?`` is the store's parameter style), and it goes through the store's own
connection (``_conn()`` for reads, ``_write()`` for a write transaction), so a store with
another back end serves it unchanged.
"""
from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.errors import LabError

MAX_LEARNER = 40
LEARNER_RE = re.compile(r"^[\w .@+-]+$")
KINDS = ("answer", "prediction", "hint", "solution")
MAX_ANSWER = 2000
LAB = "lab"  # the "lesson" of predictions made on the lab's pages, outside a lesson
CSV_COLUMNS = ["time", "learner", "lesson", "item", "kind", "answer", "correct"]


def check_learner(name: Any) -> str:
    """A learner name: 1-40 letters (any script), digits, spaces or ``. _ - @ +``; spaces collapsed."""
    if not isinstance(name, str):
        raise LabError("lessons.bad_learner", max=MAX_LEARNER)
    clean = " ".join(unicodedata.normalize("NFC", name).split())
    if not 1 <= len(clean) <= MAX_LEARNER or not LEARNER_RE.fullmatch(clean):
        raise LabError("lessons.bad_learner", max=MAX_LEARNER)
    return clean


def _rows(store: Any, sql: str, args: tuple | list = ()) -> list[tuple]:
    return [tuple(r) for r in store._conn().execute(sql, tuple(args)).fetchall()]


def _bounded(text: Any) -> str:
    return " ".join(str(text).split())[:MAX_ANSWER]


# --------------------------------------------------------------------------- writing
def record(store: Any, learner: str, lesson: str, item: str, kind: str, answer: Any = "",
           correct: bool | None = None, when: float | None = None) -> None:
    """Keep one answer, prediction, hint or opened solution."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    row = (check_learner(learner), str(lesson)[:64], str(item)[:64], kind, _bounded(answer),
           None if correct is None else int(bool(correct)), time.time() if when is None else float(when))
    with store._write() as conn:
        conn.execute("INSERT INTO lesson_attempts (learner, lesson, item, kind, answer, correct, created) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", row)


def complete_step(store: Any, learner: str, lesson: str, step: str) -> None:
    with store._write() as conn:
        conn.execute("INSERT INTO lesson_steps (learner, lesson, step, completed) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (learner, lesson, step) DO NOTHING",
                     (check_learner(learner), lesson, step, time.time()))


def set_position(store: Any, learner: str, lesson: str, step: int) -> None:
    with store._write() as conn:
        conn.execute("INSERT INTO lesson_position (learner, lesson, step, updated) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (learner, lesson) DO UPDATE SET step = excluded.step, updated = excluded.updated",
                     (check_learner(learner), lesson, int(step), time.time()))


# --------------------------------------------------------------------------- a learner
def position(store: Any, learner: str, lesson: str) -> int | None:
    """The step (index) the learner was on in ``lesson``, or None."""
    rows = _rows(store, "SELECT step FROM lesson_position WHERE learner = ? AND lesson = ?",
                 (check_learner(learner), lesson))
    return int(rows[0][0]) if rows else None


def last_lesson(store: Any, learner: str) -> str | None:
    """The lesson the learner was in most recently."""
    rows = _rows(store, "SELECT lesson FROM lesson_position WHERE learner = ? ORDER BY updated DESC",
                 (check_learner(learner),))
    return str(rows[0][0]) if rows else None


def completed_steps(store: Any, learner: str, lesson: str) -> set[str]:
    rows = _rows(store, "SELECT step FROM lesson_steps WHERE learner = ? AND lesson = ?",
                 (check_learner(learner), lesson))
    return {str(r[0]) for r in rows}


@dataclass
class ItemState:
    """What a learner did with one exercise or prediction."""

    wrong: int = 0  # wrong answers
    hints: int = 0  # hints opened
    solved: bool = False
    solution: bool = False  # the worked solution was opened
    answers: list[tuple[str, bool | None]] = field(default_factory=list)  # (answer, correct), oldest first


def items(store: Any, learner: str, lesson: str) -> dict[str, ItemState]:
    """Every exercise and prediction of ``lesson`` the learner touched, by item id (one query)."""
    out: dict[str, ItemState] = {}
    for item, kind, answer, correct in _rows(
            store, "SELECT item, kind, answer, correct FROM lesson_attempts WHERE learner = ? AND lesson = ? "
                   "ORDER BY created", (check_learner(learner), lesson)):
        state = out.setdefault(str(item), ItemState())
        if kind == "hint":
            state.hints += 1
        elif kind == "solution":
            state.solution = True
        else:
            ok = None if correct is None else bool(correct)
            state.answers.append((str(answer), ok))
            if kind == "answer" and ok:
                state.solved = True
            elif kind == "answer" and ok is False:
                state.wrong += 1
    return out


def attempts(store: Any, learner: str | None = None, lesson: str | None = None) -> pd.DataFrame:
    """The attempts (answers, predictions, hints, solutions) and completed steps, oldest first, as a frame
    with ``CSV_COLUMNS`` (kind ``step`` for a completed step)."""
    where, args = [], []
    if learner is not None:
        where.append("learner = ?")
        args.append(check_learner(learner))
    if lesson is not None:
        where.append("lesson = ?")
        args.append(lesson)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows = [(created, who, les, item, kind, answer, None if correct is None else bool(correct))
            for who, les, item, kind, answer, correct, created in _rows(
                store, "SELECT learner, lesson, item, kind, answer, correct, created FROM lesson_attempts"
                + clause, args)]
    rows += [(done, who, les, step, "step", "", None) for who, les, step, done in _rows(
        store, "SELECT learner, lesson, step, completed FROM lesson_steps" + clause, args)]
    frame = pd.DataFrame(sorted(rows, key=lambda r: r[0]), columns=CSV_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame


_NUMBER = re.compile(r"^[+-]?(\d|\.\d)")


def _safe_cell(text: Any) -> Any:
    """Typed text that a spreadsheet would run as a formula (``=``, ``@``, ``+``/``-`` not starting a
    number) gets a leading apostrophe."""
    if isinstance(text, str) and text[:1] in ("=", "@", "+", "-", "\t", "\r") and not _NUMBER.match(text):
        return "'" + text
    return text


def learner_csv(store: Any, learner: str) -> str:
    """A learner's whole progress as CSV (the page's download)."""
    frame = attempts(store, learner)
    frame["answer"] = frame["answer"].map(_safe_cell)
    return frame.to_csv(index=False)


# --------------------------------------------------------------------------- a class
def learners(store: Any) -> list[str]:
    rows = _rows(store, "SELECT learner FROM lesson_attempts UNION SELECT learner FROM lesson_steps "
                        "UNION SELECT learner FROM lesson_position")
    return sorted(str(r[0]) for r in rows)


def item_stats(store: Any, lesson: str, top: int = 3) -> pd.DataFrame:
    """Per exercise or prediction of ``lesson``: learners who tried, learners who got it right, and the
    most common wrong answers (or predictions) with their counts."""
    counts = {
        (str(item), str(kind)): (int(tried), int(right or 0))
        for item, kind, tried, right in _rows(
            store, "SELECT item, kind, COUNT(DISTINCT learner), "
                   "COUNT(DISTINCT CASE WHEN correct = 1 THEN learner END) "
                   "FROM lesson_attempts WHERE lesson = ? AND kind IN ('answer', 'prediction') GROUP BY item, kind",
            (lesson,))}
    wrong: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for item, kind, answer, n in _rows(
            store, "SELECT item, kind, answer, COUNT(*) AS n FROM lesson_attempts WHERE lesson = ? "
                   "AND kind IN ('answer', 'prediction') AND correct = 0 GROUP BY item, kind, answer "
                   "ORDER BY item, kind, n DESC, answer", (lesson,)):
        found = wrong.setdefault((str(item), str(kind)), [])
        if len(found) < top:
            found.append((str(answer), int(n)))
    rows = [{"item": item, "kind": kind, "tried": tried, "right": right,
             "wrong_answers": wrong.get((item, kind), [])} for (item, kind), (tried, right) in sorted(counts.items())]
    return pd.DataFrame(rows, columns=["item", "kind", "tried", "right", "wrong_answers"])


def learner_summary(store: Any, lesson: str | None = None) -> pd.DataFrame:
    """Per learner (and lesson): steps completed, exercises solved, predictions made, last activity."""
    args: tuple = () if lesson is None else (lesson,)
    where = "" if lesson is None else " WHERE lesson = ?"
    table: dict[tuple[str, str], dict[str, Any]] = {}

    def row(who: Any, les: Any) -> dict[str, Any]:
        return table.setdefault((str(who), str(les)), {"learner": str(who), "lesson": str(les), "steps": 0,
                                                        "solved": 0, "predictions": 0, "last": 0.0})

    for who, les, n, last in _rows(store, "SELECT learner, lesson, COUNT(*), MAX(completed) FROM lesson_steps"
                                   + where + " GROUP BY learner, lesson", args):
        r = row(who, les)
        r["steps"], r["last"] = int(n), max(r["last"], float(last))
    for who, les, solved, predictions, last in _rows(
            store, "SELECT learner, lesson, COUNT(DISTINCT CASE WHEN kind = 'answer' AND correct = 1 THEN item END), "
                   "COUNT(DISTINCT CASE WHEN kind = 'prediction' THEN item END), MAX(created) FROM lesson_attempts"
                   + where + " GROUP BY learner, lesson", args):
        r = row(who, les)
        r["solved"], r["predictions"] = int(solved or 0), int(predictions or 0)
        r["last"] = max(r["last"], float(last))
    frame = pd.DataFrame(sorted(table.values(), key=lambda r: (r["learner"], r["lesson"])),
                         columns=["learner", "lesson", "steps", "solved", "predictions", "last"])
    frame["last"] = pd.to_datetime(frame["last"], unit="s", utc=True).dt.strftime("%Y-%m-%d %H:%M")
    return frame
