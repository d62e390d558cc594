"""The course: the lessons of ``core/lessons/course/*.toml``, loaded and validated, and what a page needs
to teach one: the right answer as the checker computes it, hints one at a time, the worked solution,
and the link that opens the lab page a step talks about.

``course()`` is the shipped course (cached); ``load_course(folder)`` loads any folder of lesson
files (a teacher's own), raising ``LabError`` naming the file, the exercise and the field.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import Code, LabError
from core.i18n import DEFAULT_LANGUAGE, LANGUAGES
from core.lessons.checks import (
    compute_value as _compute_value,
)
from core.lessons.checks import (
    correct_options,
    display_order,
    shape_of,
    shape_text,
)
from core.lessons.probes import number_text, numbers, resolve_model
from core.lessons.schema import (
    ChoiceExercise,
    ExpressionExercise,
    FixExercise,
    LabLink,
    Lesson,
    ModelExercise,
    NumberExercise,
    ParsonsExercise,
    ShapeExercise,
    TrainingExercise,
    load_lesson,
)

COURSE_DIR = Path(__file__).resolve().parent / "course"


@dataclass(frozen=True)
class Course:
    lessons: tuple[Lesson, ...]

    @property
    def ids(self) -> list[str]:
        return [lesson.id for lesson in self.lessons]

    def lesson(self, lesson_id: str) -> Lesson:
        for lesson in self.lessons:
            if lesson.id == lesson_id:
                return lesson
        raise LabError("lessons.unknown_lesson", lesson=Code(str(lesson_id)[:40]))

    def exercise(self, lesson_id: str, exercise_id: str) -> Any:
        for step in self.lesson(lesson_id).steps:
            if step.exercise is not None and step.exercise.id == exercise_id:
                return step.exercise
        raise LabError("lessons.unknown_exercise", exercise=Code(str(exercise_id)[:40]))


def lesson_files(folder: Path = COURSE_DIR) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.toml") if p.is_file())


def load_course(folder: Path = COURSE_DIR) -> Course:
    """Every lesson file of ``folder``, validated, in their ``order``; lesson ids must be unique."""
    lessons = [load_lesson(path) for path in lesson_files(folder)]
    seen: dict[str, str] = {}
    for path, lesson in zip(lesson_files(folder), lessons, strict=True):
        if lesson.id in seen:
            raise LabError("lessons.duplicate_lesson", lesson=Code(lesson.id), file=Code(path.name),
                           other=Code(seen[lesson.id]))
        seen[lesson.id] = path.name
    return Course(tuple(sorted(lessons, key=lambda lesson: (lesson.order, lesson.id))))


@lru_cache(maxsize=1)
def course() -> Course:
    """The lab's own course (validated once per process)."""
    return load_course(COURSE_DIR)


# --------------------------------------------------------------------------- answers shown
def _choice_text(ex: Any, lang: str) -> str:
    right = correct_options(ex.options, getattr(ex, "compute", None), getattr(ex, "answer", None))
    return " / ".join(o.text.get(lang) for o in ex.options if o.id in right)


def reference_answer(ex: Any) -> Any:
    """An answer that passes ``ex``'s check: computed where PyTorch computes it (not for training,
    whose right answer is a run; see ``core.lessons.prove``)."""
    if isinstance(ex, NumberExercise):
        return ", ".join(number_text(v) for v in numbers(_compute_value(ex.compute)))
    if isinstance(ex, ShapeExercise):
        return shape_text(shape_of(_compute_value(ex.compute)))
    if isinstance(ex, ChoiceExercise):
        return sorted(correct_options(ex.options, ex.compute, ex.answer))[0]
    if isinstance(ex, ExpressionExercise):
        return ex.reference
    if isinstance(ex, ModelExercise):
        return ex.reference
    if isinstance(ex, ParsonsExercise):
        return list(ex.orders[0])
    if isinstance(ex, FixExercise):
        if ex.via == "choice":
            return sorted(correct_options(ex.options, None, None))[0]
        return ex.reference
    if isinstance(ex, TrainingExercise):
        return dict(ex.reference)
    raise LabError("lessons.unknown_kind", kind=Code(type(ex).__name__))


def answer_display(ex: Any, lang: str = DEFAULT_LANGUAGE) -> tuple[str, str | None]:
    """The right answer as the worked solution shows it: (short text for ``{answer}``, a code block or None)."""
    if isinstance(ex, (NumberExercise, ShapeExercise)):
        return str(reference_answer(ex)), None
    if isinstance(ex, ChoiceExercise) or (isinstance(ex, FixExercise) and ex.via == "choice"):
        return _choice_text(ex, lang), None
    if isinstance(ex, ParsonsExercise):
        code = {line.id: line.code for line in ex.lines}
        return ", ".join(ex.orders[0]), "\n".join(code[i] for i in ex.orders[0])
    if isinstance(ex, ExpressionExercise) or (isinstance(ex, FixExercise) and ex.via == "expression"):
        return str(ex.reference), str(ex.reference)
    if isinstance(ex, ModelExercise) or (isinstance(ex, FixExercise) and ex.via == "model"):
        spec = resolve_model(ex.reference if isinstance(ex.reference, (str, dict)) else "")
        kinds = " → ".join(layer.type for layer in spec.layers)
        return kinds, spec.to_json()
    if isinstance(ex, TrainingExercise):
        changes = ", ".join(f"{k} = {v}" for k, v in ex.reference.items())
        return changes, None
    raise LabError("lessons.unknown_kind", kind=Code(type(ex).__name__))


def solution_text(ex: Any, lang: str = DEFAULT_LANGUAGE) -> str:
    """The worked solution in ``lang``, with ``{answer}`` filled from the checker's own computation."""
    short, _ = answer_display(ex, lang)
    return ex.solution.get(lang).replace("{answer}", f"`{short}`" if "`" not in short else short)


def hints(ex: Any, shown: int, lang: str = DEFAULT_LANGUAGE) -> list[str]:
    """The first ``shown`` hints (hints appear one at a time)."""
    return [h.get(lang) for h in ex.hints[:max(0, shown)]]


def solution_ready(ex: Any, wrong_tries: int) -> bool:
    """The worked solution is offered after ``ex.tries`` wrong answers."""
    return wrong_tries >= ex.tries


def parsons_lines(ex: ParsonsExercise) -> list[tuple[str, str]]:
    """(id, code) of the lines in the order the page lists them."""
    code = {line.id: line.code for line in ex.lines}
    return [(i, code[i]) for i in display_order(ex)]


# --------------------------------------------------------------------------- the lab link
def lab_target(link: LabLink, lang: str | None = None) -> tuple[str, dict[str, str]]:
    """The page (its URL path) and URL parameters that open it in the step's state: the page's own
    parameters, the language, and a share token (``core.safe.share``) with the model and Train form."""
    from core.ml.modules import checked_spec
    from core.safe.share import PARAM, encode_state

    params = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in link.params.items()}
    if lang in LANGUAGES and lang != DEFAULT_LANGUAGE:
        params["lang"] = LANGUAGES[lang]
    state: dict[str, Any] = {}
    if link.model is not None:
        state["model"] = checked_spec(resolve_model(link.model)).to_dict()
    if link.train is not None:
        state["train"] = {"source": "preset", **link.train}
    if state:
        params[PARAM] = encode_state(state)
    return link.page, params


def lab_url(link: LabLink, lang: str | None = None) -> str:
    """The link as a relative URL (``tensors?ten_view=broadcast&s=1.…``)."""
    from urllib.parse import urlencode

    page, params = lab_target(link, lang)
    path = "" if page == "home" else page
    return path + ("?" + urlencode(params) if params else "")
