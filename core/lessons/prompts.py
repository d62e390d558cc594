"""Predict, then reveal: the learner commits a prediction, then PyTorch's result shows next to it.

A prompt (``core.lessons.schema.Prompt``) names a probe whose value is the real result; the
lab's pages have theirs in ``core/lessons/prompts.toml``, a lesson step may hold its own.
``reveal(prompt, prediction, lang, overrides)`` runs the probe and returns the result, the gap
to the prediction and the one-line explanation. ``overrides`` are arguments a page supplies
(the Builder's prompt asks about the learner's current model).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import Code, LabError
from core.i18n import DEFAULT_LANGUAGE
from core.lessons.checks import close_enough, parse_numbers, parse_shape, pick_option, shape_of, shape_text
from core.lessons.probes import ERROR, PROBES, number_text, numbers, run_probe, show, to_plain
from core.lessons.schema import Compute, Prompt, PromptFile, validate_file

PROMPTS_FILE = Path(__file__).resolve().parent / "prompts.toml"


@lru_cache(maxsize=1)
def page_prompts() -> dict[str, Prompt]:
    """The prompts of the lab's pages, by id (validated once per process)."""
    loaded = validate_file(PROMPTS_FILE, PromptFile)
    assert isinstance(loaded, PromptFile)
    return {p.id: p for p in loaded.prompts}


def page_prompt(prompt_id: str) -> Prompt:
    prompts = page_prompts()
    if prompt_id not in prompts:
        raise LabError("lessons.unknown_prompt", prompt=Code(prompt_id))
    return prompts[prompt_id]


@dataclass(frozen=True)
class Reveal:
    correct: bool  # the prediction matches (within the prompt's tolerance)
    predicted: str
    actual: str
    gap: str | None  # actual minus predicted (numbers), the sizes that differ (shapes); None for a choice
    explain: str
    chart: dict[str, list[float | None]] | None = None


def _overrides_for(compute: Compute, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    if not overrides:
        return {}
    fields = PROBES[compute.probe].args.model_fields if compute.probe in PROBES else {}
    return {k: v for k, v in overrides.items() if k in fields}


def run(compute: Compute, overrides: Mapping[str, Any] | None = None) -> object:
    return run_probe(compute.probe, compute.args, _overrides_for(compute, overrides))


def given(prompt: Prompt, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The values the question states (computed), as shown."""
    out = {}
    for name, compute in prompt.given.items():
        value = run(compute, overrides)
        out[name] = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else show(value)
    return out


def _fill(text: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def question(prompt: Prompt, lang: str = DEFAULT_LANGUAGE, overrides: Mapping[str, Any] | None = None) -> str:
    return _fill(prompt.question.get(lang), given(prompt, overrides))


def option_label(prompt: Prompt, option_id: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return next((o.text.get(lang) for o in prompt.options if o.id == option_id), option_id)


def reveal(prompt: Prompt, prediction: Any, lang: str = DEFAULT_LANGUAGE,
           overrides: Mapping[str, Any] | None = None) -> Reveal:
    """PyTorch's result for ``prompt`` next to ``prediction``: the gap and the explanation.

    A prediction that cannot be read (not a number, not a shape, not an option) is a LabError.
    """
    values = given(prompt, overrides)
    actual_value = run(prompt.compute, overrides)
    chart = None
    if prompt.chart is not None:
        data = to_plain(run(prompt.chart, overrides))
        if isinstance(data, dict):
            chart = {str(k): list(v) for k, v in data.items()}
    if prompt.answer == "number":
        want, got = numbers(actual_value), parse_numbers(prediction)
        actual = ", ".join(number_text(v) for v in want)
        predicted = ", ".join(number_text(v) for v in got)
        if len(got) != len(want):
            raise LabError("lessons.prediction_count", n=len(want))
        correct = all(close_enough(g, w, prompt.rtol, prompt.atol) for g, w in zip(got, want, strict=True))
        gaps = [w - g if math.isfinite(w) and math.isfinite(g) else math.nan for g, w in zip(got, want, strict=True)]
        gap = ", ".join(("+" if d > 0 else "") + number_text(d) for d in gaps)
    elif prompt.answer == "shape":
        want_shape, got_shape = shape_of(actual_value), parse_shape(prediction)
        actual, predicted = shape_text(want_shape), shape_text(got_shape)
        correct = want_shape == got_shape
        if correct:
            gap = "0"
        elif want_shape is ERROR or got_shape is ERROR or len(want_shape) != len(got_shape):
            gap = f"{predicted} → {actual}"
        else:
            gap = ", ".join(f"dim {i}: {g} → {w}" for i, (g, w) in enumerate(zip(got_shape, want_shape, strict=True))
                            if g != w)
    else:
        picked = pick_option(prompt.options, prediction)
        computed = to_plain(actual_value)
        match = next((o for o in prompt.options if str(o.value) == str(computed)), None)
        actual = match.text.get(lang) if match is not None else show(computed)
        predicted = picked.text.get(lang)
        correct = match is not None and picked.id == match.id
        gap = None
    explain = _fill(prompt.explain.get(lang), {**values, "actual": actual})
    return Reveal(correct, predicted, actual, gap, explain, chart)
