"""Checking a learner's answer against real PyTorch, one function per exercise kind.

``check(exercise, answer, store=None)`` returns a ``Result``: right or not, why not (a
``LabError`` used as a message, rendered in the page's language), what the answer gave and
the right answer as the checker computed it. An answer that cannot be checked at all (a
hostile or broken expression, a malformed order, a model that is not valid JSON, a run that
does not exist) raises ``LabError`` with a clear message; nothing here raises anything else
for learner input. Expressions go through ``core.safe.expr`` only.

Answers by kind: number / shape / expression: text; choice: an option id; model: a spec
(dict), its JSON text or a preset key; parsons: a list of line ids (or ``"a, b, c"``);
fix: as its ``via``; training: a run id of the run store.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import Code, LabError
from core.lessons.probes import (
    ERROR,
    make_vars,
    number_text,
    numbers,
    reason,
    resolve_model,
    run_expression,
    seeded,
    show,
    to_plain,
)
from core.lessons.schema import (
    ChoiceExercise,
    Compute,
    ExpressionExercise,
    FixExercise,
    Goal,
    ModelExercise,
    ModelTarget,
    NumberExercise,
    Option,
    ParsonsExercise,
    ShapeExercise,
    TrainingExercise,
)
from core.ml.modules import ShapeError, checked_spec, infer_shapes, parameter_count
from core.ml.spec import Layer, ModelSpec, SequentialLayer, SpecError
from core.safe.allowlist import ExprError
from core.safe.expr import check as static_check
from core.safe.expr import evaluate

MAX_ANSWER = 500  # characters of a typed answer
MAX_MODEL_JSON = 50_000
ERROR_WORDS = {"error", "err", "raises", "fails", "错误", "报错", "出错", "异常"}
SCALAR_WORDS = {"()", "scalar", "标量", "torch.size([])", "[]"}


@dataclass(frozen=True)
class Result:
    """A checked answer. ``feedback``: why it is wrong (or a note on a right one), as a message."""

    correct: bool
    feedback: LabError | None = None
    got: str | None = None  # what the answer is or evaluates to, as shown
    expected: str | None = None  # the right answer, computed (shown once solved or the solution is open)


def _text(answer: Any) -> str:
    if not isinstance(answer, str):
        raise LabError("lessons.not_text")
    text = answer.strip()
    if not text:
        raise LabError("lessons.empty_answer")
    if len(text) > MAX_ANSWER:
        raise LabError("lessons.answer_too_long", n=len(text), max=MAX_ANSWER)
    return text


# --------------------------------------------------------------------------- parsing
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_numbers(answer: Any, expect: int | None = None) -> list[float]:
    """``"3.85"``, ``"-0.42, 2.82"``, ``"[1.99, 5.28]"``, ``"inf"``, ``"nan"``: a list of floats.

    When one number is expected, ``"31,530"`` (thousands separators) is that one number.
    """
    text = _text(answer)
    cleaned = text.replace("，", ",").replace("−", "-").strip("[]() ")
    if expect == 1 and _THOUSANDS.match(cleaned):
        cleaned = cleaned.replace(",", "")
    parts = [p.strip().replace("_", "") for p in re.split(r"[,;\s]+", cleaned) if p.strip()]
    out = []
    for part in parts:
        low = part.lower()
        if low in ("inf", "+inf", "infinity", "∞"):
            out.append(math.inf)
        elif low in ("-inf", "-infinity", "-∞"):
            out.append(-math.inf)
        elif low == "nan":
            out.append(math.nan)
        elif _NUMBER.match(part):
            out.append(float(part))
        else:
            raise LabError("lessons.bad_number", text=Code(text[:80]))
    if not out or len(out) > 64:
        raise LabError("lessons.bad_number", text=Code(text[:80]))
    return out


def parse_shape(answer: Any) -> tuple[int, ...] | Any:
    """``"2, 3"``, ``"(2, 3)"``, ``"torch.Size([2, 3])"``, ``"2×3"``, ``"()"`` or ``"error"``."""
    text = _text(answer)
    low = text.lower().replace(" ", "")
    if low in ERROR_WORDS:
        return ERROR
    if low in SCALAR_WORDS or low in ("torch.size()", "torch.size(())"):
        return ()
    inner = re.sub(r"^torch\.size", "", low, flags=re.I).replace("×", ",").replace("x", ",").replace("，", ",")
    inner = inner.strip("()[]")
    parts = [p for p in inner.split(",") if p != ""]
    if not parts or len(parts) > 8 or not all(p.isdigit() and len(p) <= 9 for p in parts):
        raise LabError("lessons.bad_shape", text=Code(text[:80]))
    return tuple(int(p) for p in parts)


def shape_of(value: object) -> tuple[int, ...] | Any:
    if value is ERROR:
        return ERROR
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (torch.Size, tuple, list)) and all(isinstance(v, int) for v in value):
        return tuple(int(v) for v in value)
    raise LabError("lessons.not_a_shape", value=Code(show(value)))


def shape_text(shape: tuple[int, ...] | Any) -> str:
    return "error" if shape is ERROR else "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def parse_model(answer: Any) -> ModelSpec:
    """A model answer (spec dict, JSON text or preset key) as a validated spec under the lab's caps."""
    if isinstance(answer, str) and len(answer) > MAX_MODEL_JSON:
        raise LabError("lessons.answer_too_long", n=len(answer), max=MAX_MODEL_JSON)
    if not isinstance(answer, (str, dict, ModelSpec)):
        raise LabError("lessons.not_text")
    try:
        return checked_spec(resolve_model(answer))
    except SpecError as exc:
        raise LabError("lessons.bad_model", reason=reason(exc)) from None


def parse_order(answer: Any, exercise: ParsonsExercise) -> list[str]:
    """A Parsons answer: line ids in order, each known and used once."""
    if isinstance(answer, str):
        parts = [p for p in re.split(r"[,\s]+", answer.strip()) if p]
    elif isinstance(answer, (list, tuple)) and all(isinstance(p, str) for p in answer):
        parts = [p.strip() for p in answer]
    else:
        raise LabError("lessons.parsons.not_a_list")
    if not parts:
        raise LabError("lessons.parsons.empty")
    ids = {line.id for line in exercise.lines}
    if len(parts) > len(ids):
        raise LabError("lessons.parsons.too_long", n=len(parts), max=len(ids))
    for part in parts:
        if part not in ids:
            raise LabError("lessons.parsons.unknown", line=Code(part[:40]))
    repeated = [p for p, n in Counter(parts).items() if n > 1]
    if repeated:
        raise LabError("lessons.parsons.repeated", line=Code(repeated[0]))
    return parts


def display_order(exercise: ParsonsExercise) -> list[str]:
    """The lines as the page lists them: shuffled (the same way every time), never in an accepted order."""
    ids = [line.id for line in exercise.lines]
    rng = random.Random(int(hashlib.sha256(exercise.id.encode()).hexdigest()[:8], 16))
    order = ids[:]
    for _ in range(20):
        rng.shuffle(order)
        if [i for i in order if i in exercise.orders[0]] not in exercise.orders:
            return order
    return order[1:] + order[:1]


# --------------------------------------------------------------------------- comparing values
def close_enough(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def compare(got: object, want: object, rtol: float, atol: float) -> LabError | None:
    """None when ``got`` matches ``want`` (PyTorch's value), else why not (a message)."""
    if isinstance(want, torch.Tensor):
        if isinstance(got, (int, float)) and not isinstance(got, bool) and want.dim() == 0:
            got = torch.tensor(got)
        if not isinstance(got, torch.Tensor):
            return LabError("lessons.wrong.not_tensor", got=Code(show(got)))
        if tuple(got.shape) != tuple(want.shape):
            return LabError("lessons.wrong.shape_differs", got=Code(shape_text(tuple(got.shape))),
                            want=Code(shape_text(tuple(want.shape))))
        if (got.dtype == torch.bool) != (want.dtype == torch.bool):
            return LabError("lessons.wrong.dtype_differs", got=Code(str(got.dtype)), want=Code(str(want.dtype)))
        try:
            g, w = got.detach().cpu().to(torch.float64), want.detach().cpu().to(torch.float64)
            same = bool(torch.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True))
        except RuntimeError:  # complex against real and the like
            same = False
        return None if same else LabError("lessons.wrong.values_differ")
    if isinstance(want, (torch.Size, tuple)) and all(isinstance(v, int) for v in want):
        got_shape = tuple(got) if isinstance(got, (torch.Size, tuple, list)) else got
        return None if got_shape == tuple(want) else LabError("lessons.wrong.values_differ")
    if isinstance(want, (bool, int, float)):
        if isinstance(got, torch.Tensor) and got.dim() == 0:
            got = got.item()
        if isinstance(want, bool) or isinstance(got, bool):
            return None if got is want or (isinstance(got, bool) and got == want) else \
                LabError("lessons.wrong.values_differ")
        if isinstance(got, (int, float)):
            same = close_enough(float(got), float(want), rtol, atol)
            return None if same else LabError("lessons.wrong.values_differ")
        return LabError("lessons.wrong.not_tensor", got=Code(show(got)))
    return None if show(got) == show(want) else LabError("lessons.wrong.values_differ")


def _equal_option(value: object, computed: object) -> bool:
    if isinstance(computed, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(computed, bool) and value == computed
    if isinstance(computed, (int, float)) and isinstance(value, (int, float)):
        return close_enough(float(value), float(computed), 1e-6, 1e-9)
    return str(value) == str(computed)


def correct_options(options: list[Option], compute: Compute | None, answer: list[str] | None) -> set[str]:
    """The ids of the right options: computed (from the exercise's compute or each option's), or named."""
    if answer is not None:
        return set(answer)
    if compute is not None:
        computed = to_plain(compute_value(compute))
        if isinstance(computed, list) and all(isinstance(c, str) for c in computed):
            return {o.id for o in options if o.value in computed}
        return {o.id for o in options if _equal_option(o.value, computed)}
    return {o.id for o in options if o.compute is not None and _truthy(compute_value(o.compute))}


def _truthy(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and bool(value.item())
    return value is True


def compute_value(compute: Compute, overrides: Mapping[str, Any] | None = None) -> object:
    from core.lessons.probes import run_probe

    return run_probe(compute.probe, compute.args, overrides)


# --------------------------------------------------------------------------- kinds
def _integral(value: object) -> bool:
    """A count (a Python int, or a tensor of an integer dtype): compared exactly, not within a tolerance."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_integral(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def check_number(ex: NumberExercise, answer: Any) -> Result:
    value = compute_value(ex.compute)
    want = numbers(value)
    rtol, atol = (0.0, 0.0) if _integral(value) else (ex.rtol, ex.atol)
    got = parse_numbers(answer, expect=len(want))
    expected = ", ".join(number_text(v) for v in want)
    shown = ", ".join(number_text(v) for v in got)
    if len(got) != len(want):
        return Result(False, LabError("lessons.wrong.count", got=len(got), want=len(want)), shown, expected)
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not close_enough(g, w, rtol, atol)]
    if not bad:
        return Result(True, None, shown, expected)
    if len(want) == 1:
        g, w = got[0], want[0]
        if math.isnan(w) or math.isinf(w) or math.isnan(g) or math.isinf(g):
            return Result(False, LabError("lessons.wrong.number"), shown, expected)
        return Result(False, LabError("lessons.wrong.too_high" if g > w else "lessons.wrong.too_low"), shown, expected)
    return Result(False, LabError("lessons.wrong.positions", positions=Code(", ".join(str(i + 1) for i in bad))),
                  shown, expected)


def check_shape(ex: ShapeExercise, answer: Any) -> Result:
    want = shape_of(compute_value(ex.compute))
    got = parse_shape(answer)
    expected, shown = shape_text(want), shape_text(got)
    if got == want or (got is ERROR and want is ERROR):
        return Result(True, None, shown, expected)
    if want is ERROR:
        return Result(False, LabError("lessons.wrong.shape_but_error"), shown, expected)
    if got is ERROR:
        return Result(False, LabError("lessons.wrong.error_but_shape"), shown, expected)
    if len(got) != len(want):
        return Result(False, LabError("lessons.wrong.ndim", got=len(got), want=len(want)), shown, expected)
    dims = [str(i) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    return Result(False, LabError("lessons.wrong.dims", dims=Code(", ".join(dims))), shown, expected)


def pick_option(options: list[Option], answer: Any) -> Option:
    if not isinstance(answer, str):
        raise LabError("lessons.bad_choice", choice=Code(str(answer)[:40]))
    for option in options:
        if option.id == answer.strip():
            return option
    raise LabError("lessons.bad_choice", choice=Code(answer[:40]))


def check_choice(options: list[Option], compute: Compute | None, answer_ids: list[str] | None,
                 answer: Any) -> Result:
    picked = pick_option(options, answer)
    right = correct_options(options, compute, answer_ids)
    expected = ", ".join(sorted(right))
    if picked.id in right:
        return Result(True, None, picked.id, expected)
    return Result(False, LabError("lessons.wrong.choice"), picked.id, expected)


def _names_used(tree: ast.AST) -> set[str]:
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
    return used


def _learner_expression(text: str, names: Iterable[str]) -> ast.Expression:
    try:
        return static_check(text, names)
    except ExprError as exc:
        raise LabError("lessons.bad_answer_expression", expr=Code(text[:200]), reason=reason(exc)) from None


def _finite(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def check_expression_answer(vars_defs: Mapping[str, str], reference: str, answer: Any, *, trials: int,
                            rtol: float, atol: float, forbid: Iterable[str] = (), finite: bool = False,
                            grad_wrt: str | None = None) -> Result:
    """Evaluate the learner's expression and the reference on ``trials`` seeded sets of the variables."""
    text = _text(answer)
    tree = _learner_expression(text, vars_defs.keys())
    banned = sorted(_names_used(tree) & set(forbid))
    if banned:
        return Result(False, LabError("lessons.wrong.forbidden", name=Code(banned[0])))
    got: object = None
    want: object = None
    for trial in range(trials):
        want = run_expression(reference, make_vars(vars_defs, trial))
        variables = make_vars(vars_defs, trial)
        try:
            with seeded(1000 + trial):
                got = evaluate(text, variables)
        except ExprError as exc:
            if exc.__cause__ is None:  # the evaluator's own refusal (a size or time limit), not PyTorch's
                raise LabError("lessons.bad_answer_expression", expr=Code(text[:200]), reason=reason(exc)) from None
            return Result(False, LabError("lessons.wrong.raises", reason=reason(exc)), "error", show(want))
        if finite and not _finite(got):
            return Result(False, LabError("lessons.wrong.not_finite"), show(got), show(want))
        if grad_wrt is not None:
            problem = _gradient_problem(got, variables.get(grad_wrt), grad_wrt)
            if problem is not None:
                return Result(False, problem, show(got), show(want))
        problem = compare(got, want, rtol, atol)
        if problem is not None:
            return Result(False, problem, show(got), show(want))
    return Result(True, None, show(got), show(want))


def _gradient_problem(value: object, leaf: object, name: str) -> LabError | None:
    if not isinstance(leaf, torch.Tensor) or not leaf.requires_grad:
        return None
    if not isinstance(value, torch.Tensor) or not value.requires_grad:
        return LabError("lessons.wrong.no_graph", name=Code(name))
    try:
        (grad,) = torch.autograd.grad(value.sum(), leaf, allow_unused=True)
    except RuntimeError as exc:
        return LabError("lessons.wrong.raises", reason=reason(exc))
    if grad is not None and not bool(torch.isfinite(grad).all()):
        return LabError("lessons.wrong.grad_not_finite", name=Code(name))
    return None


def check_expression(ex: ExpressionExercise, answer: Any) -> Result:
    return check_expression_answer(ex.vars, ex.reference, answer, trials=ex.trials, rtol=ex.rtol, atol=ex.atol,
                                   forbid=ex.forbid)


def _kinds(layers: Sequence[Layer]) -> Counter:
    found: Counter = Counter()
    for layer in layers:
        found[layer.type] += 1
        if isinstance(layer, SequentialLayer):
            found += _kinds(layer.layers)
    return found


def check_model_answer(target: ModelTarget, answer: Any) -> Result:
    spec = parse_model(answer)
    params = parameter_count(spec)
    if list(spec.input_shape) != list(target.input_shape):
        return Result(False, LabError("lessons.wrong.model_input", got=Code(str(list(spec.input_shape))),
                                      want=Code(str(target.input_shape))))
    try:
        steps = infer_shapes(spec, batch=1)
    except ShapeError as exc:
        return Result(False, LabError("lessons.wrong.model_shape_error", reason=reason(exc)))
    out = list(steps[-1].output_shape[1:]) if steps else list(spec.input_shape)
    got = f"{tuple(out)}, {params:,}"
    if out != target.output_shape:
        return Result(False, LabError("lessons.wrong.model_output", got=Code(str(out)),
                                      want=Code(str(target.output_shape))), got)
    if target.params_max is not None and not target.params_min <= params <= target.params_max:
        return Result(False, LabError("lessons.wrong.model_params", n=params, lo=target.params_min,
                                      hi=target.params_max), got)
    if params < target.params_min:
        return Result(False, LabError("lessons.wrong.model_params_min", n=params, lo=target.params_min), got)
    kinds = _kinds(spec.layers)
    missing = [k for k in target.kinds if not kinds[k]]
    if missing:
        return Result(False, LabError("lessons.wrong.model_missing", kinds=Code(", ".join(missing))), got)
    present = [k for k in target.forbid_kinds if kinds[k]]
    if present:
        return Result(False, LabError("lessons.wrong.model_forbidden", kinds=Code(", ".join(present))), got)
    for kind, need in target.counts.items():
        if kinds[kind] < need:
            return Result(False, LabError("lessons.wrong.model_count", kind=Code(kind), n=kinds[kind], want=need), got)
    return Result(True, None, got)


def check_model(ex: ModelExercise, answer: Any) -> Result:
    return check_model_answer(ex.target, answer)


def check_parsons(ex: ParsonsExercise, answer: Any) -> Result:
    order = parse_order(answer, ex)
    shown = ", ".join(order)
    expected = ", ".join(ex.orders[0])
    if order in ex.orders:
        return Result(True, None, shown, expected)
    needed = set(ex.orders[0])
    extra = [p for p in order if p not in needed]
    if extra:
        return Result(False, LabError("lessons.wrong.parsons_extra", n=len(extra)), shown, expected)
    missing = needed - set(order)
    if missing:
        return Result(False, LabError("lessons.wrong.parsons_missing", n=len(missing)), shown, expected)
    prefix = max(next((i for i, (a, b) in enumerate(zip(order, accepted, strict=True)) if a != b), len(order))
                 for accepted in ex.orders)
    return Result(False, LabError("lessons.wrong.parsons_order", right=prefix, position=prefix + 1), shown, expected)


def check_fix(ex: FixExercise, answer: Any) -> Result:
    if ex.via == "choice":
        return check_choice(ex.options, None, None, answer)
    if ex.via == "expression":
        assert isinstance(ex.reference, str)
        return check_expression_answer(ex.vars, ex.reference, answer, trials=ex.trials, rtol=ex.rtol, atol=ex.atol,
                                       finite=True, grad_wrt=ex.grad_wrt)
    assert ex.target is not None
    return check_model_answer(ex.target, answer)


def broken_fails(ex: FixExercise) -> bool:
    """Whether the bug is real: the broken expression or model fails its own check."""
    if ex.via == "expression":
        assert isinstance(ex.broken, str) and isinstance(ex.reference, str)
        return not check_expression_answer(ex.vars, ex.reference, ex.broken, trials=ex.trials, rtol=ex.rtol,
                                           atol=ex.atol, finite=True, grad_wrt=ex.grad_wrt).correct
    if ex.via == "model":
        assert ex.target is not None and ex.broken is not None
        return not check_model_answer(ex.target, ex.broken).correct
    return True


def run_metric(store: Any, run_id: str, metric: str, max_epochs: int) -> list[tuple[int, float]]:
    """(epoch, value) of a run's epoch metric for the first ``max_epochs`` epochs, from the run store."""
    frame = store.metrics(run_id, [metric])
    rows = [(int(e), float(v)) for e, v in zip(frame["epoch"], frame["value"], strict=True)
            if v is not None and not (isinstance(v, float) and math.isnan(v)) and int(e) <= max_epochs]
    return rows


def check_run(goal: Goal, store: Any, answer: Any) -> Result:
    """A training run against the goal, read from the run store: its config, status and epoch metrics."""
    from core.runs.store import check_run_id

    if store is None:
        raise LabError("lessons.training.no_store")
    text = _text(answer)
    try:
        run_id = check_run_id(text)
    except ValueError:
        raise LabError("lessons.training.bad_run", run=Code(text[:64])) from None
    run = store.get_run(run_id)
    if run is None:
        raise LabError("lessons.training.no_run", run=Code(run_id))
    dataset = run["config"].get("dataset")
    if dataset != goal.dataset:
        return Result(False, LabError("lessons.wrong.training_dataset", got=Code(str(dataset)),
                                      want=Code(goal.dataset)), run_id)
    values = run_metric(store, run_id, goal.metric, goal.max_epochs)
    if not values:
        return Result(False, LabError("lessons.wrong.training_no_metric", metric=Code(goal.metric),
                                      epochs=goal.max_epochs), run_id)
    if goal.at_least is not None:
        epoch, best = max(values, key=lambda ev: (ev[1], -ev[0]))
        ok, bound = best >= goal.at_least, goal.at_least
    else:
        epoch, best = min(values, key=lambda ev: (ev[1], ev[0]))
        ok, bound = best <= float(goal.at_most or 0.0), float(goal.at_most or 0.0)
    got = f"{goal.metric} {number_text(best)} (epoch {epoch})"
    if ok:
        return Result(True, None, got)
    code = "lessons.wrong.training_low" if goal.at_least is not None else "lessons.wrong.training_high"
    return Result(False, LabError(code, metric=Code(goal.metric), best=best, bound=bound, epochs=goal.max_epochs),
                  got)


def check(exercise: Any, answer: Any, store: Any = None) -> Result:
    """Check ``answer`` to ``exercise`` (any kind); bad input is a LabError, never another exception."""
    try:
        if isinstance(exercise, NumberExercise):
            return check_number(exercise, answer)
        if isinstance(exercise, ShapeExercise):
            return check_shape(exercise, answer)
        if isinstance(exercise, ChoiceExercise):
            return check_choice(exercise.options, exercise.compute, exercise.answer, answer)
        if isinstance(exercise, ExpressionExercise):
            return check_expression(exercise, answer)
        if isinstance(exercise, ModelExercise):
            return check_model(exercise, answer)
        if isinstance(exercise, ParsonsExercise):
            return check_parsons(exercise, answer)
        if isinstance(exercise, FixExercise):
            return check_fix(exercise, answer)
        if isinstance(exercise, TrainingExercise):
            return check_run(exercise.goal, store, answer)
    except LabError:
        raise
    except (ExprError, SpecError) as exc:
        raise LabError("lessons.bad_answer", reason=reason(exc)) from None
    except (RuntimeError, ValueError, TypeError, IndexError, OverflowError, MemoryError, RecursionError) as exc:
        raise LabError("lessons.check_failed", reason=reason(exc)) from None
    raise LabError("lessons.unknown_kind", kind=Code(type(exercise).__name__))


def answer_text(answer: Any) -> str:
    """An answer as stored in the progress table (text; lists and specs as compact JSON)."""
    if isinstance(answer, str):
        return answer.strip()[:2000]
    try:
        return json.dumps(answer, separators=(",", ":"), sort_keys=True, ensure_ascii=False)[:2000]
    except (TypeError, ValueError):
        return str(answer)[:2000]
