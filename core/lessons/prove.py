"""Proving a course: every file valid, every exercise's reference answer right and every listed wrong
answer wrong (by running the checker on them), both languages present, every link and prediction working.

``prove_course(folder)`` returns the report ``python -m core.lessons check --json`` prints::

    {"lessons": N, "exercises": N, "kinds": {kind: count}, "prompts": N,
     "failures": [{"file", "exercise", "reason"}], "skipped": [{"file", "exercise", "reason"}]}

Training challenges are proven by training: the reference config is trained for real into a
throwaway run store and checked from it like a learner's run; each wrong config must fail (on
its config, or after training). ``train="quick"`` trains only the cheap configs (regression
data, or at most 1,000 images) and lists the others as skipped; ``train="none"`` trains nothing.
"""
from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core.errors import LabError
from core.lessons.checks import (
    Result,
    broken_fails,
    check,
    check_run,
    correct_options,
    display_order,
)
from core.lessons.course import COURSE_DIR, answer_display, lab_url, lesson_files, reference_answer, solution_text
from core.lessons.probes import ERROR, to_plain
from core.lessons.prompts import PROMPTS_FILE, given, run
from core.lessons.schema import (
    ChoiceExercise,
    FixExercise,
    Lesson,
    ParsonsExercise,
    Prompt,
    PromptFile,
    Text,
    TrainingExercise,
    load_lesson,
    validate_file,
)

Train = Literal["all", "quick", "none"]
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’]*(?:[ \t]+[A-Za-z][A-Za-z'’]*){2,}")


@dataclass(frozen=True)
class Problem:
    file: str
    exercise: str
    reason: str


def text_problem(field: str, text: Text) -> str | None:
    """Why a bilingual text is not right: Chinese in the English, or English sentences (three or more
    words outside backticks) or no Chinese at all in the Chinese text (text that is only code is fine)."""
    if CJK.search(text.en):
        return f"{field}: the English text has Chinese characters"
    plain = CODE_SPAN.sub(" ", text.zh)
    plain = re.sub(r"\{[a-z_]+\}", " ", plain)
    if not plain.strip(" .,:;!?()[]（）。，：；、—-"):
        return None
    if not CJK.search(plain):
        return f"{field}: the Chinese text has no Chinese characters"
    found = ENGLISH_RUN.search(plain)
    if found:
        return f"{field}: the Chinese text has English outside backticks: {found.group(0)!r}"
    return None


def texts(model: Any, path: str = "") -> Iterator[tuple[str, Text]]:
    """Every bilingual text in a lesson (or any schema model), with its field path."""
    if isinstance(model, Text):
        yield path, model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from texts(getattr(model, name), f"{path}.{name}" if path else name)
    elif isinstance(model, (list, tuple)):
        for i, item in enumerate(model):
            yield from texts(item, f"{path}[{i}]")
    elif isinstance(model, dict):
        for key, item in model.items():
            yield from texts(item, f"{path}.{key}")


def _message(exc: BaseException) -> str:
    return exc.message() if isinstance(exc, LabError) else f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- exercises
def prove_prompt(prompt: Prompt) -> list[str]:
    """A prediction prompt works: its result, its stated values and its chart compute; a choice's
    result is one of its options."""
    reasons = []
    try:
        given(prompt)
        value = run(prompt.compute)
        if prompt.answer == "choice":
            values = [str(o.value) for o in prompt.options]
            if str(to_plain(value)) not in values:
                reasons.append(f"prediction {prompt.id}: the result {to_plain(value)!r} is none of the options")
        elif prompt.answer == "shape" and value is ERROR:
            pass
        if prompt.chart is not None and not isinstance(to_plain(run(prompt.chart)), dict):
            reasons.append(f"prediction {prompt.id}: the chart probe must return {{series: values}}")
    except LabError as exc:
        reasons.append(f"prediction {prompt.id}: {_message(exc)}")
    return reasons


def prove_answers(ex: Any) -> list[str]:
    """The reference answer passes, each wrong answer fails, and the bug of a fix is real."""
    reasons = []
    result: Result = check(ex, reference_answer(ex))
    if not result.correct:
        why = result.feedback.message() if result.feedback else "no reason given"
        reasons.append(f"the reference answer fails its own check: {why}")
    for wrong in ex.wrong:
        try:
            if check(ex, wrong).correct:
                reasons.append(f"the wrong answer {wrong!r} passes the check")
        except LabError as exc:
            reasons.append(f"the wrong answer {wrong!r} cannot be checked: {_message(exc)}")
    if isinstance(ex, ChoiceExercise) or (isinstance(ex, FixExercise) and ex.via == "choice"):
        right = correct_options(ex.options, getattr(ex, "compute", None), getattr(ex, "answer", None))
        if len(right) == len(ex.options):
            reasons.append("every option is right")
    if isinstance(ex, FixExercise) and not broken_fails(ex):
        reasons.append("the broken code passes the check: there is no bug to fix")
    if isinstance(ex, ParsonsExercise) and [i for i in display_order(ex) if i in ex.orders[0]] in ex.orders:
        reasons.append("the lines are listed in an accepted order")
    for lang in ("en", "zh"):
        answer_display(ex, lang)
        solution_text(ex, lang)
    return reasons


def _quick(config: Any) -> bool:
    return not config.dataset_info.image or 0 < config.limit_train <= 1000


def config_problem(ex: TrainingExercise, config: Any) -> str | None:
    """Why a config cannot meet the goal before any training (it trains on another dataset)."""
    if config.dataset != ex.goal.dataset:
        return f"trains on {config.dataset}, the goal is on {ex.goal.dataset}"
    return None


def train_into(store: Any, config: Any) -> str:
    """Train ``config`` for real into ``store`` (the path a learner's run takes); return the run id."""
    from core.runs.worker import train_run
    from core.training.trainer import Trainer

    run_id = store.create_run(config.to_dict(), name="lessons check", status="running", kind="cli")
    try:
        status = train_run(Trainer(config), store, run_id, heartbeat_s=5.0)
        store.finish_run(run_id, status)
    except Exception as exc:  # noqa: BLE001 - a run that diverges or fails is a result: the check reads it
        store.finish_run(run_id, "failed", error=_message(exc)[:500])
    return run_id


def prove_training(ex: TrainingExercise, train: Train, store: Any) -> tuple[list[str], list[str]]:
    """(failures, skipped) of a training challenge."""
    from core.training.config import recipe

    reasons: list[str] = []
    skipped: list[str] = []
    reference = recipe(ex.recipe).replace(**ex.reference)
    problem = config_problem(ex, reference)
    if problem:
        reasons.append(f"the reference config {problem}")
    elif train == "all" or (train == "quick" and _quick(reference)):
        result = check_run(ex.goal, store, train_into(store, reference))
        if not result.correct:
            why = result.feedback.message() if result.feedback else ""
            reasons.append(f"the reference config, trained, does not meet the goal: {why}")
    else:
        skipped.append(f"the reference config is not trained with --train {train}")
    for changes in ex.wrong:
        config = recipe(ex.recipe).replace(**changes)
        if config_problem(ex, config):
            continue
        if train == "all" or (train == "quick" and _quick(config)):
            if check_run(ex.goal, store, train_into(store, config)).correct:
                reasons.append(f"the wrong config {changes!r}, trained, meets the goal")
        else:
            skipped.append(f"the wrong config {changes!r} is not trained with --train {train}")
    return reasons, skipped


# --------------------------------------------------------------------------- files
def _lesson_problems(lesson: Lesson, train: Train, store: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    failures: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for path, text in texts(lesson):
        problem = text_problem(path, text)
        if problem:
            failures.append((_item_of(lesson, path), problem))
    for step in lesson.steps:
        if step.lab is not None:
            try:
                for lang in ("en", "zh"):
                    lab_url(step.lab, lang)
            except (LabError, ValueError) as exc:
                failures.append((step.id, f"the lab link does not build: {_message(exc)}"))
        if step.predict is not None:
            failures += [(step.predict.id, reason) for reason in prove_prompt(step.predict)]
        ex = step.exercise
        if ex is None:
            continue
        try:
            if isinstance(ex, TrainingExercise):
                reasons, skips = prove_training(ex, train, store)
                skipped += [(ex.id, s) for s in skips]
            else:
                reasons = prove_answers(ex)
        except LabError as exc:
            reasons = [_message(exc)]
        except Exception as exc:  # noqa: BLE001 - a crash while proving one exercise is that exercise's failure
            reasons = [f"proving it crashed: {_message(exc)}"]
        failures += [(ex.id, r) for r in reasons]
    return failures, skipped


def _item_of(lesson: Lesson, path: str) -> str:
    found = re.match(r"steps\[(\d+)\](\.(exercise|predict))?", path)
    if not found:
        return "—"
    step = lesson.steps[int(found.group(1))]
    item = {"exercise": step.exercise, "predict": step.predict}.get(found.group(3) or "")
    return item.id if item is not None else step.id


def prove_course(folder: Path = COURSE_DIR, train: Train = "all", prompts_file: Path | None = PROMPTS_FILE
                 ) -> dict[str, Any]:
    """Validate and prove every lesson file in ``folder`` (and the page prompts); see the module doc."""
    from core.runs.store import SQLiteRunStore

    failures: list[Problem] = []
    skipped: list[Problem] = []
    kinds: Counter = Counter()
    lessons = exercises = prompts = 0
    with tempfile.TemporaryDirectory(prefix="lessons-check-") as home:
        store = SQLiteRunStore(home)
        try:
            for path in lesson_files(folder):
                try:
                    lesson = load_lesson(path)
                except LabError as exc:
                    item = str(exc.params.get("exercise", "—"))
                    failures.append(Problem(path.name, item, _message(exc)))
                    continue
                lessons += 1
                exercises += len(lesson.exercises)
                prompts += sum(1 for s in lesson.steps if s.predict is not None)
                kinds.update(ex.kind for ex in lesson.exercises)
                bad, skips = _lesson_problems(lesson, train, store)
                failures += [Problem(path.name, item, reason) for item, reason in bad]
                skipped += [Problem(path.name, item, reason) for item, reason in skips]
        finally:
            store.close()
    if prompts_file is not None:
        try:
            loaded = validate_file(prompts_file, PromptFile)
            for prompt in loaded.prompts:
                prompts += 1
                failures += [Problem(prompts_file.name, prompt.id, r) for r in prove_prompt(prompt)]
                for field, text in texts(prompt):
                    problem = text_problem(field, text)
                    if problem:
                        failures.append(Problem(prompts_file.name, prompt.id, problem))
        except LabError as exc:
            failures.append(Problem(prompts_file.name, str(exc.params.get("exercise", "—")), _message(exc)))
    return {"lessons": lessons, "exercises": exercises, "kinds": dict(sorted(kinds.items())), "prompts": prompts,
            "failures": [asdict(f) for f in failures], "skipped": [asdict(s) for s in skipped]}
