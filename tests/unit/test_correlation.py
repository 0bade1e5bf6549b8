"""Pearson, Spearman, Kendall tau-b: hand-computed values, scipy as an oracle, CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clsp.metrics.correlation import (
    _pearson_rows,
    _spearman_rows,
    average_ranks,
    correlation_report,
    kendall_tau_b,
    pearson,
    spearman,
)

X = [1.0, 2.0, 3.0, 4.0, 5.0]
Y = [2.0, 1.0, 4.0, 3.0, 5.0]


def test_hand_computed_values():
    # deviations x: -2..2, y: -1,-2,1,0,2 -> sum xy = 2+2+0+0+4 = 8, sxx = 10, syy = 10
    assert pearson(X, Y) == pytest.approx(0.8)
    assert spearman(X, Y) == pytest.approx(0.8)  # no ties: ranks equal values
    # pairs: 10, discordant (1,2) and (3,4) -> (8 - 2) / 10
    assert kendall_tau_b(X, Y) == pytest.approx(0.6)


def test_ties_hand_computed():
    x = [1, 2, 2, 3]
    y = [1, 2, 3, 3]
    assert average_ranks(x).tolist() == [1.0, 2.5, 2.5, 4.0]
    # pairs: (0,1)+ (0,2)+ (0,3)+ (1,2) tie-x (1,3)+ (2,3) tie-y -> C=4, D=0; n0=6, n1=1, n2=1
    assert kendall_tau_b(x, y) == pytest.approx(4 / math.sqrt(5 * 5))
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3.5, 3.5])
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])


def test_degenerate_inputs_give_nan():
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau_b([1], [2]))
    with pytest.raises(ValueError):
        pearson([1, 2], [1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_resample_statistics_match_per_row_values(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, (5, 120)).astype(float)
    y = x + rng.normal(0, 2, (5, 120)).round()
    r = _pearson_rows(x, y)
    rho = _spearman_rows(x, y)
    for i in range(5):
        assert r[i] == pytest.approx(np.corrcoef(x[i], y[i])[0, 1], abs=1e-12)
        assert rho[i] == pytest.approx(np.corrcoef(average_ranks(x[i]), average_ranks(y[i]))[0, 1], abs=1e-12)


def test_bootstrap_pairs_items():
    # x == y in every resample only if resampling keeps pairs together: r = 1 in all of them.
    x = np.random.default_rng(3).normal(size=50)
    rep = correlation_report(x, x.copy(), n_boot=100)
    assert rep["pearson_ci"] == pytest.approx([1.0, 1.0])
    assert rep["kendall_ci"] == pytest.approx([1.0, 1.0])


def test_intervals_bracket_the_estimate_and_narrow_with_n():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1440)
    y = x + rng.normal(size=1440)
    big = correlation_report(x, y, n_boot=300)
    small = correlation_report(x[:90], y[:90], n_boot=300)
    for name in ("pearson", "spearman", "kendall"):
        lo, hi = big[f"{name}_ci"]
        assert lo < big[name] < hi
        assert hi - lo < small[f"{name}_ci"][1] - small[f"{name}_ci"][0]


def test_report_intervals():
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    y = x + rng.normal(scale=0.5, size=80)
    rep = correlation_report(x, y, n_boot=200)
    assert rep["n"] == 80
    for name in ("pearson", "spearman", "kendall"):
        lo, hi = rep[f"{name}_ci"]
        assert lo < rep[name] < hi <= 1.0
    assert rep["kendall"] < rep["spearman"]


def test_rank_correlations_ignore_monotone_transforms():
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=30))
    def check(pairs):
        x = np.array([p[0] for p in pairs], dtype=float)
        y = np.array([p[1] for p in pairs], dtype=float)
        for fn in (spearman, kendall_tau_b):
            base = fn(x, y)
            moved = fn(np.exp(x), 3 * y + 7)  # strictly increasing maps keep every rank
            assert (math.isnan(base) and math.isnan(moved)) or base == pytest.approx(moved, abs=1e-12)
            flipped = fn(x, -y)
            assert (math.isnan(base) and math.isnan(flipped)) or flipped == pytest.approx(-base, abs=1e-12)
            assert math.isnan(base) or -1 - 1e-12 <= base <= 1 + 1e-12

    check()
