"""core.runs.stats: Welch's t-test against scipy and by hand; verdicts for too few seeds and identical runs."""
import math

import numpy as np
import pytest
from scipy import stats as S

from core.runs.stats import SMALL, describe, higher_is_better, verdict, welch


def test_describe_by_hand():
    d = describe([0.9, None, 0.95, float("nan"), 1.0])
    assert d.n == 3 and d.mean == pytest.approx(0.95) and d.std == pytest.approx(0.05)
    assert (d.lo, d.hi) == (0.9, 1.0)
    one = describe([0.97])
    assert one.n == 1 and one.mean == 0.97 and one.std is None  # one seed: no spread
    assert describe([]).mean is None and describe([None]).n == 0


def test_welch_by_hand():
    # means 2 and 5, variances 1 and 1: se = sqrt(1/3 + 1/3), t = 3 / se, df = (2/3)^2 / (2 * (1/3)^2 / 2) = 4
    w = welch([1, 2, 3], [4, 5, 6])
    assert w.diff == 3.0 and w.se == pytest.approx(math.sqrt(2 / 3))
    assert w.t == pytest.approx(3 / math.sqrt(2 / 3)) and w.df == pytest.approx(4.0)
    # Student t with 4 df: P(|T| > 3.674) = 0.02131 (tables); the 97.5% quantile is 2.7764
    assert w.p == pytest.approx(0.02131, abs=5e-5)
    assert w.ci[0] == pytest.approx(3 - 2.7764 * w.se, abs=1e-3) and w.ci[1] == pytest.approx(3 + 2.7764 * w.se,
                                                                                              abs=1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.97, 0.003, size=rng.integers(2, 8))
    b = rng.normal(0.972, 0.008, size=rng.integers(2, 8))
    ours = welch(a, b)
    ref = S.ttest_ind(b, a, equal_var=False)
    assert ours.t == pytest.approx(ref.statistic) and ours.p == pytest.approx(ref.pvalue)
    assert ours.df == pytest.approx(ref.df)
    lo, hi = ref.confidence_interval(0.95)
    assert ours.ci == pytest.approx((lo, hi))


def test_welch_refuses_what_it_cannot_test():
    with pytest.raises(ValueError, match="at least 2"):
        welch([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no spread"):
        welch([1.0, 1.0], [2.0, 2.0])


def test_verdict_outcomes():
    a, b = [0.970, 0.972, 0.971], [0.980, 0.981, 0.982]
    real = verdict(a, b, "test_acc")
    assert real.outcome == "real" and real.better == "b" and real.test.p < 0.05
    assert real.diff == pytest.approx(0.01) and real.few_seeds  # 3 < SMALL seeds
    noise = verdict([0.97, 0.98, 0.96], [0.975, 0.965, 0.985], "test_acc")
    assert noise.outcome == "noise" and noise.test.ci[0] < 0 < noise.test.ci[1]
    # Lower is better for a loss: the group with the lower mean is the better one.
    loss = verdict([0.30, 0.31, 0.32], [0.20, 0.21, 0.19], "test_loss")
    assert loss.outcome == "real" and loss.better == "b"
    assert not verdict([0.1] * SMALL, [0.1] * SMALL, "test_loss").few_seeds


def test_verdict_groups_of_one_and_identical_runs():
    one = verdict([0.97], [0.98, 0.99], "test_acc")
    assert one.outcome == "too_few" and one.test is None and one.a.std is None
    same = verdict([0.97, 0.97], [0.97, 0.97, 0.97], "test_acc")
    assert same.outcome == "identical" and same.better is None and same.test is None and same.diff == 0
    constant = verdict([0.97, 0.97], [0.98, 0.98], "test_acc")
    assert constant.outcome == "constant" and constant.better == "b"
    assert verdict([], [0.9, 0.8], "test_acc").outcome == "empty"


def test_which_way_is_better():
    assert higher_is_better("test_acc") and higher_is_better("val_acc") and higher_is_better("samples_per_s")
    assert not higher_is_better("test_loss") and not higher_is_better("loss")
