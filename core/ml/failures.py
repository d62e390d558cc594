"""The lab's general error text: what went wrong inside PyTorch, onnx or a model, in one paragraph.

Exporters, the profiler and a model's own forward raise whatever they raise: torch's messages
run over many lines, come coloured with ANSI codes, chain a root cause with ``raise ... from``,
and ``torch.onnx`` hides the real cause under an "## Exception summary" heading. ``failure``
turns any such exception into a ``core.errors.LabError`` a page renders in its own language:

- the exception's first meaningful line, with its type (``RuntimeError: mat1 and mat2 ...``), as
  code; a ``LabError`` (the lab's own message) as itself;
- its root cause when that says something the first line does not ("Caused by ...");
- a hint when the text shows a failure whose fix we know (codes ``failure.hint.*``).

``summarize_error`` is the same in English, cut at 900 characters (table cells, logs, the CLI);
``traceback_text`` is the full traceback for a "details" view. Nothing here imports torch.
"""
from __future__ import annotations

import re
import traceback

from core.errors import Code, LabError, first_line, strip_ansi

# (text found in the exception or its root cause, hint code "failure.hint.<name>")
HINTS = (
    ("data-dependent", "data_dependent"),
    ("Unknown type annotation", "script_annotation"),
    ("Weights only load failed", "weights_only"),
    ("Python builtin", "script_builtin"),
)
SCRIPT_HINT = "script_subset"  # any other torch.jit.script failure
MAX_CHARS = 900
_ONNX_SUMMARY = "## Exception summary"  # torch.onnx puts the real cause under this heading


def describe(exc: BaseException) -> LabError | Code:
    """The exception in one line: a ``LabError`` as itself, anything else as ``Type: first line`` (code)."""
    if isinstance(exc, LabError):
        return exc
    text = strip_ansi(str(exc))
    if _ONNX_SUMMARY in text:
        inner = first_line(text.split(_ONNX_SUMMARY, 1)[1])
        inner = re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>:\s*", r"\1: ", inner)
        head = first_line(text).split(". ", 1)[0].rstrip(".") + "."
        return Code(f"{head} {inner}".strip())
    line = first_line(text)
    return Code(f"{type(exc).__name__}: {line}" if line else type(exc).__name__)


def root_cause(exc: BaseException) -> BaseException:
    """The end of the ``raise ... from`` (and implicit context) chain; ``exc`` itself when it has none."""
    root, seen = exc, {id(exc)}
    while True:
        nxt = root.__cause__ or root.__context__
        if nxt is None or id(nxt) in seen:
            return root
        root = nxt
        seen.add(id(root))


def hint_for(exc: BaseException, fmt: str | None = None) -> str | None:
    """The name of the hint (``failure.hint.<name>``) that fits this failure, if we know one.

    ``fmt`` is the export format being made when it failed (a TorchScript script failure
    without a more specific hint gets the general one).
    """
    text = strip_ansi(f"{exc}\n{root_cause(exc)}")
    for needle, name in HINTS:
        if needle in text:
            return name
    return SCRIPT_HINT if fmt == "torchscript_script" else None


def failure(exc: BaseException, fmt: str | None = None) -> LabError:
    """One paragraph: the exception's first meaningful line, its root cause, and a hint when we know one."""
    what = describe(exc)
    summary = LabError("failure.error", error=what)
    root = root_cause(exc)
    if root is not exc:
        cause = describe(root)
        if str(cause).split(": ", 1)[-1] not in str(what):
            summary = LabError("failure.caused", error=what, cause=cause)
    hint = hint_for(exc, fmt)
    if hint is not None:
        summary = LabError("failure.hinted", error=summary, hint=LabError(f"failure.hint.{hint}"))
    return summary


def summarize_error(exc: BaseException, fmt: str | None = None) -> str:
    """``failure`` in English, at most 900 characters: for table cells, logs and the CLI."""
    return str(failure(exc, fmt))[:MAX_CHARS]


def traceback_text(exc: BaseException) -> str:
    """The full traceback (every chained exception), without colour codes."""
    return strip_ansi("".join(traceback.format_exception(exc)))
