"""What one request may cost the server: memory, seconds and output text (issue 22).

The three numbers are settings (``PYTORCH_LAB_BUDGET_MB``, ``PYTORCH_LAB_BUDGET_S``,
``PYTORCH_LAB_MAX_OUTPUT_KB`` in core/settings.py). Work whose cost can be known beforehand
(a tensor's bytes, a model's activations per sample, a result's length) is sized or refused
before it starts; work whose cost cannot be known is stopped by a :class:`Deadline` checked
inside its loops. Both refusals are ``LabError``s (``budget.*``) that name the setting.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import Code, LabError, Term
from core.settings import BY_FIELD, load_settings


@dataclass(frozen=True)
class Budget:
    """One request's budget: ``memory_bytes`` of server memory, ``seconds`` of time, ``output_chars`` of text."""

    memory_bytes: int
    seconds: float
    output_chars: int

    @classmethod
    def current(cls, environ: Mapping[str, str] | None = None) -> Budget:
        settings = load_settings(environ)
        return cls(settings.budget_bytes, settings.budget_s, settings.max_output_chars)


def setting_name(field: str) -> Code:
    """A budget setting's environment variable, as messages name it."""
    return Code(BY_FIELD[field].env)


class Deadline:
    """A wall clock for work whose cost is not known beforehand: ``check()`` inside its loops
    raises ``budget.too_slow`` once ``seconds`` have passed; ``what`` names the work (a ``term.*`` word)."""

    def __init__(self, seconds: float | None = None, what: str = "budget.work") -> None:
        self.seconds = Budget.current().seconds if seconds is None else float(seconds)
        self.what = what
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return max(0.0, self.seconds - self.elapsed())

    def expired(self) -> bool:
        return self.elapsed() > self.seconds

    def check(self) -> None:
        if self.expired():
            raise LabError("budget.too_slow", what=Term(self.what), seconds=self.seconds,
                           setting=setting_name("budget_s"))

    def check_progress(self, done: float, total: float, margin: float = 2.0) -> None:
        """``check()``, and stop early when the work so far (``done`` of ``total`` units) says the
        whole would take more than ``margin`` times the budget: no need to wait for the clock to
        run out on work that cannot finish in time. Estimates wait for a tenth of a second of work."""
        self.check()
        if self.cannot_finish(done, total, margin):
            raise LabError("budget.too_slow", what=Term(self.what), seconds=self.seconds,
                           setting=setting_name("budget_s"))

    def cannot_finish(self, done: float, total: float, margin: float = 2.0) -> bool:
        """Whether ``done`` of ``total`` units of work, done so far, project the whole past ``margin``
        times the budget (no verdict before a tenth of a second of work)."""
        elapsed = self.elapsed()
        return 0 < done < total and elapsed >= 0.1 and elapsed / done * total > margin * self.seconds
