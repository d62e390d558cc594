"""The schema of a lesson file (TOML), validated on load with pydantic.

A lesson is data a teacher writes without Python: ``core/lessons/course/<nn>_<id>.toml``. Every
text a learner reads is a table with ``en`` and ``zh``. A lesson is a list of steps; a step
explains one idea, may link to the lab page that shows it (``lab``), may ask for a prediction
(``predict``) and may hold one exercise (``exercise``). Results PyTorch computes are never
written in the file: an exercise names a probe (``compute``, see ``core.lessons.probes``) and the
checker runs it. The README of the course folder (``core/lessons/course/README.md``) shows every
field with an example.

``load_lesson(path)`` returns a validated ``Lesson`` or raises ``LabError("lessons.invalid")``
naming the file, the exercise (or step) and the field.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from core.errors import Code, LabError
from core.lessons.probes import PROBES, check_expression, resolve_model

# The lab's pages a step may open (pages/ui/frame.py PAGES url paths; a test keeps them in step).
LAB_PAGES = ("home", "tensors", "autograd", "builder", "data", "train", "runs", "profiler", "export", "predict",
             "explain")
# The Train form's fields a share token carries (pages/ui/share.py TRAIN_FIELDS; a test keeps them in step).
TRAIN_FORM_FIELDS = ("dataset", "optimizer", "lr", "scheduler", "loss", "batch_size", "epochs", "augment", "device",
                     "precision", "momentum", "weight_decay", "label_smoothing", "val_size", "ema", "tta", "drop_last",
                     "accum_steps", "processes", "source", "preset")
KINDS = ("number", "shape", "choice", "expression", "model", "parsons", "fix", "training")
LANGS = ("en", "zh")

Id = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A text in both languages."""

    en: NonEmpty
    zh: NonEmpty

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class Compute(Strict):
    """A probe call: ``probe`` names a computation of ``core.lessons.probes``, ``args`` its arguments."""

    probe: str
    args: dict[str, Any] = {}

    @model_validator(mode="after")
    def _probe(self) -> Compute:
        if self.probe not in PROBES:
            raise ValueError(f"unknown probe {self.probe!r}; the probes are {', '.join(PROBES)}")
        try:
            PROBES[self.probe].args.model_validate(self.args)
        except ValidationError as exc:
            raise ValueError(first_problem(exc)) from None
        return self


def _model_ref(v: str | dict) -> str | dict:
    resolve_model(v)
    return v


def _expression(v: str) -> str:
    check_expression(v, [])
    return v


ModelRef = Annotated[str | dict, AfterValidator(_model_ref)]


def _vars(v: dict[str, str]) -> dict[str, str]:
    names: list[str] = []
    for name, text in v.items():
        if not name.isidentifier() or name.startswith("_") or len(name) > 20:
            raise ValueError(f"variable name {name!r} must be an identifier not starting with '_'")
        check_expression(text, names)
        names.append(name)
    return v


Vars = Annotated[dict[str, str], AfterValidator(_vars)]


class Option(Strict):
    """A choice. Its correctness is computed (``value`` compared with the exercise's ``compute``, or its
    own ``compute`` run and found true) or, for a question of concept, named in the exercise's ``answer``."""

    id: Id
    text: Text
    value: str | int | float | bool | None = None
    compute: Compute | None = None
    why: Text | None = None  # shown when the learner picks it


class LabLink(Strict):
    """"Open in the lab": the page and the state it opens in (its URL parameters, plus a model and a
    Train form carried by a share token)."""

    page: Literal[LAB_PAGES]  # type: ignore[valid-type]
    params: dict[str, str | int | float | bool] = {}
    model: ModelRef | None = None
    train: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _train(self) -> LabLink:
        if self.train is not None:
            from core.training.config import TrainConfig

            unknown = set(self.train) - set(TRAIN_FORM_FIELDS)
            if unknown:
                raise ValueError(f"the Train form has no field {', '.join(sorted(unknown))}")
            values = {k: v for k, v in self.train.items() if k != "source"}
            if self.train.get("source", "preset") not in ("preset", "current"):
                raise ValueError("train.source must be preset or current")
            TrainConfig.from_dict(values).validate()
        for name in self.params:
            if not name.replace("_", "").isalnum() or name in ("s",):
                raise ValueError(f"{name!r} is not a page parameter")
        return self


class Prompt(Strict):
    """A prediction: the learner commits an answer, then the real result shows next to it."""

    id: Id
    question: Text  # may use {name} for each value of ``given``
    answer: Literal["number", "shape", "choice"]
    compute: Compute
    options: list[Option] = []
    given: dict[str, Compute] = {}
    explain: Text  # one line; may use {actual} and the names of ``given``
    chart: Compute | None = None  # a probe returning {series: [values]} shown with the result
    rtol: float = Field(1e-3, ge=0, le=1)
    atol: float = Field(1e-3, ge=0)

    @model_validator(mode="after")
    def _options(self) -> Prompt:
        if self.answer == "choice":
            if len(self.options) < 2 or any(o.value is None for o in self.options):
                raise ValueError("a choice prediction needs at least 2 options, each with a value")
        elif self.options:
            raise ValueError("only a choice prediction has options")
        return self


class ExerciseBase(Strict):
    id: Id
    prompt: Text
    hints: list[Text] = Field(min_length=1, max_length=5)
    solution: Text  # the worked solution; {answer} shows the right answer as the checker computes it
    tries: int = Field(3, ge=1, le=10)  # wrong answers before the worked solution is offered


class NumberExercise(ExerciseBase):
    """Type a number (or a few, comma-separated): compared with the probe's value."""

    kind: Literal["number"]
    compute: Compute
    rtol: float = Field(1e-4, ge=0, le=1)  # counts (integer results) are compared exactly
    atol: float = Field(1e-3, ge=0)
    wrong: list[str] = []


class ShapeExercise(ExerciseBase):
    """Type a shape (``2, 3``) or ``error``: compared with the probe value's shape."""

    kind: Literal["shape"]
    compute: Compute
    wrong: list[str] = []


def _choice_mode(options: list[Option], compute: Compute | None, answer: list[str] | None) -> None:
    ids = [o.id for o in options]
    if len(set(ids)) != len(ids):
        raise ValueError("option ids must be unique")
    with_compute = [o.id for o in options if o.compute is not None]
    modes = [compute is not None, bool(with_compute), answer is not None]
    if sum(modes) != 1:
        raise ValueError("give exactly one of: compute (with option values), a compute per option, or answer")
    if compute is not None and any(o.value is None for o in options):
        raise ValueError("with compute, every option needs a value")
    if with_compute and len(with_compute) != len(options):
        raise ValueError("with a compute per option, every option needs one")
    if answer is not None and (not answer or set(answer) - set(ids)):
        raise ValueError(f"answer must list option ids ({', '.join(ids)})")


class ChoiceExercise(ExerciseBase):
    kind: Literal["choice"]
    options: list[Option] = Field(min_length=2, max_length=8)
    compute: Compute | None = None
    answer: list[Id] | None = None  # only for questions of concept, not for what PyTorch computes
    wrong: list[str] = []

    @model_validator(mode="after")
    def _mode(self) -> ChoiceExercise:
        _choice_mode(self.options, self.compute, self.answer)
        return self


class ExpressionExercise(ExerciseBase):
    """Type a tensor expression (safe evaluator) that gives the reference's value, on ``trials`` seeds."""

    kind: Literal["expression"]
    vars: Vars
    reference: str
    trials: int = Field(3, ge=1, le=5)
    rtol: float = Field(1e-4, ge=0, le=1)
    atol: float = Field(1e-5, ge=0)
    forbid: list[str] = []  # names (functions, methods) the answer may not use
    wrong: list[str] = []

    @model_validator(mode="after")
    def _ref(self) -> ExpressionExercise:
        check_expression(self.reference, list(self.vars))
        return self


class ModelTarget(Strict):
    input_shape: list[int] = Field(min_length=1, max_length=3)
    output_shape: list[int] = Field(min_length=1, max_length=3)  # without the batch dimension
    params_min: int = Field(1, ge=0)
    params_max: int | None = Field(None, ge=1)
    kinds: list[str] = []  # layer types the model must have
    forbid_kinds: list[str] = []
    counts: dict[str, int] = {}  # at least this many layers of a type

    @model_validator(mode="after")
    def _kinds(self) -> ModelTarget:
        from core.ml.spec import LAYER_TYPES

        unknown = set(self.kinds) | set(self.forbid_kinds) | set(self.counts)
        unknown -= set(LAYER_TYPES)
        if unknown:
            raise ValueError(f"unknown layer types {', '.join(sorted(unknown))}")
        return self


class ModelExercise(ExerciseBase):
    """Build a model (in the Builder, or as JSON) to a target: shapes, parameter range, layer kinds."""

    kind: Literal["model"]
    target: ModelTarget
    reference: ModelRef
    start: ModelRef | None = None  # the model the Builder opens with
    wrong: list[ModelRef] = []


class Line(Strict):
    id: Id
    code: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ParsonsExercise(ExerciseBase):
    """Put lab-authored lines in order; any of ``orders`` is right. Lines in no order are distractors."""

    kind: Literal["parsons"]
    lines: list[Line] = Field(min_length=3, max_length=16)
    orders: list[list[Id]] = Field(min_length=1, max_length=24)
    wrong: list[list[str]] = []

    @model_validator(mode="after")
    def _orders(self) -> ParsonsExercise:
        ids = [line.id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("line ids must be unique")
        needed = set(self.orders[0])
        for order in self.orders:
            if len(set(order)) != len(order) or set(order) - set(ids):
                raise ValueError(f"order {order} must list known line ids once each")
            if set(order) != needed:
                raise ValueError("every accepted order must use the same lines")
        return self


class FixExercise(ExerciseBase):
    """Fix a bug. ``via = "choice"``: options whose fix is run (each option's compute, usually a
    scenario); ``via = "expression"``: the learner types a fixed expression, checked by running it
    (``broken`` must fail: raise or give a non-finite value or gradient); ``via = "model"``: the learner
    fixes ``broken``, a model with a shape error, to the ``target``."""

    kind: Literal["fix"]
    buggy: Annotated[str, StringConstraints(min_length=1, max_length=2000)]  # the code shown
    via: Literal["choice", "expression", "model"]
    options: list[Option] = []
    vars: Vars = {}
    broken: str | dict | None = None
    reference: str | dict | None = None
    grad_wrt: str | None = None
    trials: int = Field(1, ge=1, le=5)
    rtol: float = Field(1e-4, ge=0, le=1)
    atol: float = Field(1e-4, ge=0)
    target: ModelTarget | None = None
    wrong: list[Any] = []

    @model_validator(mode="after")
    def _via(self) -> FixExercise:
        if self.via == "choice":
            if len(self.options) < 2 or any(o.compute is None for o in self.options):
                raise ValueError("a fix by choice needs at least 2 options, each with a compute that runs its fix")
            _choice_mode(self.options, None, None)
        elif self.via == "expression":
            if not isinstance(self.broken, str) or not isinstance(self.reference, str):
                raise ValueError("a fix by expression needs broken and reference expressions")
            check_expression(self.broken, list(self.vars))
            check_expression(self.reference, list(self.vars))
            if self.grad_wrt is not None and self.grad_wrt not in self.vars:
                raise ValueError("grad_wrt must name one of the vars")
        else:
            if self.target is None or self.broken is None or self.reference is None:
                raise ValueError("a fix of a model needs target, broken and reference")
            resolve_model(self.broken)
            resolve_model(self.reference)
        return self


class Goal(Strict):
    dataset: str
    metric: Literal["test_acc", "test_loss", "train_loss"]
    at_least: float | None = None
    at_most: float | None = None
    max_epochs: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _bound(self) -> Goal:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("give exactly one of at_least and at_most")
        bound = self.at_least if self.at_least is not None else self.at_most
        if bound is None or not math.isfinite(bound):
            raise ValueError("the goal must be a finite number")
        return self


class TrainingExercise(ExerciseBase):
    """Train a run in the lab that meets ``goal``; checked from the run store (its config and metrics).
    ``reference`` (changes to ``recipe``) is a config that meets it; ``wrong`` are configs that do not."""

    kind: Literal["training"]
    goal: Goal
    recipe: str = "default"
    reference: dict[str, Any]
    wrong: list[dict[str, Any]] = []

    @model_validator(mode="after")
    def _configs(self) -> TrainingExercise:
        from core.training.config import RECIPES, recipe

        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; the recipes are {', '.join(RECIPES)}")
        for changes in [self.reference, *self.wrong]:
            recipe(self.recipe).replace(**changes)
        return self


Exercise = Annotated[
    NumberExercise | ShapeExercise | ChoiceExercise | ExpressionExercise | ModelExercise | ParsonsExercise
    | FixExercise | TrainingExercise,
    Field(discriminator="kind"),
]


class Step(Strict):
    id: Id
    title: Text
    text: Text
    lab: LabLink | None = None
    predict: Prompt | None = None
    exercise: Exercise | None = None


class Lesson(Strict):
    id: Id
    order: int = Field(ge=1, le=99)
    tutorial: int = Field(ge=1, le=4)  # which of the four tutorials it follows
    title: Text
    summary: Text
    steps: list[Step] = Field(min_length=1, max_length=40)

    @model_validator(mode="after")
    def _unique(self) -> Lesson:
        items = [s.id for s in self.steps]
        if len(set(items)) != len(items):
            raise ValueError("step ids must be unique")
        asked = [x.id for s in self.steps for x in (s.exercise, s.predict) if x is not None]
        if len(set(asked)) != len(asked):
            raise ValueError("exercise and prediction ids must be unique in a lesson")
        return self

    @property
    def exercises(self) -> list[Any]:
        return [s.exercise for s in self.steps if s.exercise is not None]


class PromptFile(Strict):
    """The prediction prompts of the lab's pages (``core/lessons/prompts.toml``)."""

    prompts: list[Prompt] = Field(min_length=1)


# --------------------------------------------------------------------------- loading
def first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _locate(data: Any, loc: tuple) -> tuple[str, str]:
    """(the id of the exercise, prediction or step at ``loc``, the field path) in the raw data."""
    node, path, item = data, [], "—"
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(str(part))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path[-1:] = [f"{path[-1]}[{part}]"] if path else [f"[{part}]"]
        elif isinstance(node, (dict, list)) and isinstance(part, str) and part in KINDS:
            continue  # the union's tag (the exercise kind), not a key of the file
        else:
            path.append(str(part))
            node = None
        if isinstance(node, dict) and isinstance(node.get("id"), str) and path and (
                path[-1] in ("exercise", "predict") or path[-1].startswith(("steps[", "prompts["))):
            item = node["id"]
    return item, ".".join(path) or "—"


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise LabError("lessons.bad_toml", file=Code(path.name), reason=Code(str(exc))) from None
    except OSError as exc:
        raise LabError("lessons.unreadable", file=Code(path.name), reason=Code(exc.strerror or str(exc))) from None


def validate_file(path: Path, model: type[Strict], data: dict | None = None) -> Any:
    """``model`` validated from the TOML file at ``path``: a LabError names the file, item and field."""
    data = read_toml(path) if data is None else data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        item, field = _locate(data, tuple(err["loc"]))
        raise LabError("lessons.invalid", file=Code(path.name), exercise=Code(item), field=Code(field),
                       reason=Code(str(err["msg"]))) from None


def load_lesson(path: Path) -> Lesson:
    lesson = validate_file(path, Lesson)
    assert isinstance(lesson, Lesson)
    return lesson
