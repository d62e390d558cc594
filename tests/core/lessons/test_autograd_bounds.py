"""A contour of a g(w) that is not elementwise is evaluated point by point, and the clock is
checked before every point, not once per row (issue 22, item 5: 32.7 s blocked)."""
from __future__ import annotations

import time

import pytest

from core.errors import LabError
from core.lessons import autograd
from core.lessons.autograd import GRID_SECONDS, contour_data

# Not elementwise (w @ w), and each point costs tens of milliseconds (two 1000 x 1000 products).
SLOW = "w @ w + (ones(1000, 1000) @ ones(1000, 1000) @ ones(1000, 1000)).sum() * 0"


def test_a_slow_pointwise_grid_stops_at_the_budget():
    start = time.monotonic()
    with pytest.raises(LabError) as info:
        contour_data(SLOW, [0, 0], 1, points=201, arrows=31)
    took = time.monotonic() - start
    assert info.value.code == "autograd.grid_slow"
    assert took < GRID_SECONDS + 2.0, f"stopped after {took:.1f} s"


def test_a_grid_that_cannot_finish_stops_on_its_first_points():
    """Hundreds of points at tens of milliseconds each: the first points project the whole far past
    the budget, so the page hears why at once, not after the clock has run out."""
    start = time.monotonic()
    with pytest.raises(LabError) as info:
        contour_data(SLOW, [0, 0], 1, points=201, arrows=31)
    assert info.value.code == "autograd.grid_slow"
    assert time.monotonic() - start < GRID_SECONDS / 2


def test_the_request_budget_shortens_the_grid_clock(monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_BUDGET_S", "1")
    start = time.monotonic()
    with pytest.raises(LabError) as info:
        contour_data(SLOW, [0, 0], 1, points=41)
    assert info.value.code == "autograd.grid_slow" and "1 s" in str(info.value)
    assert time.monotonic() - start < 1.0 + 2.0


def test_a_cheap_pointwise_grid_uses_the_coarse_grid_only(monkeypatch):
    calls = []
    real = autograd._value_and_grad
    monkeypatch.setattr(autograd, "_value_and_grad", lambda *a, **k: calls.append(1) or real(*a, **k))
    d = contour_data("w @ w", [0, 0], 1, points=201, arrows=31)
    assert not d["vectorized"] and len(d["w0"]) == 21
    assert len(calls) == 1 + 21 * 21 + 15 * 15  # the first point, the coarse grid and the arrows: never 201 x 201
    assert d["z"][10][10] == pytest.approx(0.0)
