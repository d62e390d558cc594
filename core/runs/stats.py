"""Is a difference between two groups of runs real, or seed noise? Plain numbers for the Runs page.

A group is the same config trained with several seeds (core.runs.groups); its runs' final
metric values are a small sample of what that config gives. ``describe`` summarises one
sample, ``welch`` compares two, and ``verdict`` turns the comparison into one of a few
plain outcomes the page words in the user's language.

Why Welch's t-test (and not a bootstrap interval): a lab compares groups of 2 to 10 seeds.
A percentile bootstrap of 3 values has only 10 distinct resamples, and at such sizes its
intervals are known to be too narrow (they ignore that the spread itself is estimated from
a few values). Welch's t-test accounts for that through the t distribution with the
Welch-Satterthwaite degrees of freedom, and it does not assume that both groups vary as
much (a larger learning rate often spreads the seeds more). It assumes the final values
are roughly normal across seeds, which holds well for the final accuracy or loss of one
recipe. The t distribution's CDF and quantiles come from scipy (``scipy.stats.t``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _scipy_stats

ALPHA = 0.05  # the verdict's significance level: a 95% confidence interval for the difference
SMALL = 5     # fewer seeds than this in a group: only large differences can show


@dataclass(frozen=True)
class Stats:
    """A sample of values (one per seed): count, mean, sample standard deviation, min and max."""

    n: int
    mean: float | None   # None for an empty sample
    std: float | None    # the sample std (ddof=1); None with fewer than 2 values: one seed says nothing of the noise
    lo: float | None
    hi: float | None


def finite(values: Iterable[float | None]) -> np.ndarray:
    """The finite values as floats (None, NaN and infinities left out)."""
    out = np.array([float(v) for v in values if v is not None], dtype=float)
    return out[np.isfinite(out)]


def describe(values: Iterable[float | None]) -> Stats:
    """Count, mean, sample std (ddof=1), min and max of the finite values."""
    x = finite(values)
    if not len(x):
        return Stats(0, None, None, None, None)
    std = float(np.std(x, ddof=1)) if len(x) >= 2 else None
    return Stats(len(x), float(np.mean(x)), std, float(np.min(x)), float(np.max(x)))


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variances t-test of ``mean(b) - mean(a)``."""

    diff: float               # mean(b) - mean(a)
    se: float                 # its standard error: sqrt(var_a / n_a + var_b / n_b)
    t: float                  # diff / se
    df: float                 # Welch-Satterthwaite degrees of freedom
    p: float                  # two-sided p-value
    ci: tuple[float, float]   # the confidence interval of diff at ``level``
    level: float


def welch(a: Iterable[float | None], b: Iterable[float | None], level: float = 1 - ALPHA) -> Welch:
    """Welch's t-test of two samples of at least 2 finite values each, with a spread (ValueError otherwise).

    t = (mean_b - mean_a) / se with se² = s_a²/n_a + s_b²/n_b, and
    df = se⁴ / ((s_a²/n_a)² / (n_a - 1) + (s_b²/n_b)² / (n_b - 1)); the p-value and the
    interval use the Student t distribution with df degrees of freedom (``scipy.stats.t``).
    """
    x, y = finite(a), finite(b)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("Welch's t-test needs at least 2 values in each group")
    va, vb = float(np.var(x, ddof=1)) / len(x), float(np.var(y, ddof=1)) / len(y)
    se = math.sqrt(va + vb)
    if se == 0.0:
        raise ValueError("both groups have no spread: there is no noise to test against")
    diff = float(np.mean(y) - np.mean(x))
    t = diff / se
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
    p = float(2 * _scipy_stats.t.sf(abs(t), df))
    q = float(_scipy_stats.t.ppf(0.5 + level / 2, df))
    return Welch(diff, se, t, df, min(1.0, p), (diff - q * se, diff + q * se), level)


def higher_is_better(metric: str) -> bool:
    """Accuracy-like metrics (…acc) improve upwards; losses, times and the rest downwards."""
    return metric.endswith("acc") or metric in ("samples_per_s",)


Outcome = Literal["empty", "too_few", "identical", "constant", "real", "noise"]


@dataclass(frozen=True)
class Verdict:
    """The comparison of group A with group B on one metric, for the page to put in words.

    ``outcome``:
    - ``empty``: a group has no finished value yet;
    - ``too_few``: a group has a single value, so the seed noise cannot be estimated: no test;
    - ``identical``: every run of both groups gives the same value: seeds change nothing;
    - ``constant``: each group gives one value for every seed, and the two differ: not noise;
    - ``real``: Welch's test says the difference is unlikely to be seed noise (p < alpha);
    - ``noise``: it cannot tell the difference from seed noise (p >= alpha).
    """

    outcome: Outcome
    metric: str
    a: Stats
    b: Stats
    diff: float | None = None                 # mean(B) - mean(A), when both have values
    test: Welch | None = None
    better: Literal["a", "b"] | None = None   # which group did better on the metric (None: no difference)
    alpha: float = ALPHA

    @property
    def few_seeds(self) -> bool:
        """Fewer than ``SMALL`` seeds in a group: a test has little power, only large differences show."""
        return min(self.a.n, self.b.n) < SMALL


def verdict(a: Iterable[float | None], b: Iterable[float | None], metric: str, alpha: float = ALPHA) -> Verdict:
    """Compare the final values of group A and group B on ``metric`` (see ``Verdict``)."""
    x, y = finite(a), finite(b)
    sa, sb = describe(x), describe(y)
    if not len(x) or not len(y):
        return Verdict("empty", metric, sa, sb, alpha=alpha)
    diff = float(np.mean(y) - np.mean(x))
    constant = np.ptp(x) == 0 and np.ptp(y) == 0  # every seed gave the same value, in each group
    if constant:
        diff = float(y[0] - x[0])  # exact: a mean of equal values can differ from them in the last bit
    up = higher_is_better(metric)
    better: Literal["a", "b"] | None = None if diff == 0 else ("b" if (diff > 0) == up else "a")
    if len(x) < 2 or len(y) < 2:
        return Verdict("too_few", metric, sa, sb, diff, better=better, alpha=alpha)
    if constant:  # no spread at all: there is no noise to test against (a test would divide by zero)
        return Verdict("identical" if diff == 0 else "constant", metric, sa, sb, diff, better=better, alpha=alpha)
    test = welch(x, y, 1 - alpha)
    return Verdict("real" if test.p < alpha else "noise", metric, sa, sb, diff, test, better, alpha)
