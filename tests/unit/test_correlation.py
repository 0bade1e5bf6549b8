"""Pearson, Spearman, Kendall tau-b: hand-computed values, scipy as an oracle, CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clsp.metrics.bootstrap import percentile_interval
from clsp.metrics.correlation import (
    average_ranks,
    correlation_report,
    kendall_tau_b,
    pearson,
    resampled_statistic,
    spearman,
)
from clsp.metrics.resampled_correlation import KENDALL_DENSE_MAX, ResampledCorrelations, counts_from_indices

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


def _slow(a, b, idx):
    """The plain path: scipy.stats on each resampled pair of arrays (nan for a constant side)."""
    out = np.array([[f(a[i], b[i]) for i in idx] for f in (pearson, spearman, kendall_tau_b)])
    return out


@pytest.mark.parametrize("n, a_values, b_values", [
    (7, 3, 3),          # tiny, heavy ties on both sides: dense concordance matrix
    (100, None, 5),     # continuous scores against 5 rating values: grouped Kendall
    (100, 4, None),     # the same with the sides swapped
    (90, None, None),   # continuous on both sides, a few exact ties: dense matrix
    (200, 6, 40),       # ties on both sides, many groups
])
@pytest.mark.parametrize("seed", [0, 1])
def test_resampled_correlations_equal_scipy_per_resample(n, a_values, b_values, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, a_values, n) / 3.0 if a_values else rng.normal(size=n).round(2)
    b = rng.integers(1, b_values + 1, n).astype(float) if b_values else a + rng.normal(size=n).round(1)
    idx = rng.integers(0, n, (64, n))
    idx[0] = idx[0, 0]  # one resample of a single item repeated: every correlation undefined
    fast = resampled_statistic(a, b)(idx)
    slow = _slow(a, b, idx)
    assert fast.shape == (3, 64)
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    assert np.isnan(fast[:, 0]).all()
    np.testing.assert_allclose(fast[~np.isnan(fast)], slow[~np.isnan(slow)], rtol=0, atol=1e-9)


def test_kendall_paths_agree_and_large_inputs_fall_back():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=300), rng.integers(1, 6, 300).astype(float)
    counts = counts_from_indices(rng.integers(0, 300, (20, 300)), 300)
    grouped = ResampledCorrelations(a, b)
    dense = ResampledCorrelations(a, b)
    dense._grouped = None  # force the n x n concordance matrix
    assert grouped._grouped is not None
    np.testing.assert_allclose(grouped.kendall(counts), dense.kendall(counts), rtol=0, atol=1e-12)
    n = KENDALL_DENSE_MAX + 4
    big_a, big_b = rng.normal(size=n), rng.normal(size=n)
    assert not ResampledCorrelations(big_a, big_b).has_kendall
    idx = rng.integers(0, n, (2, n))
    np.testing.assert_allclose(resampled_statistic(big_a, big_b)(idx), _slow(big_a, big_b, idx), rtol=0, atol=1e-9)


def test_counts_from_indices():
    counts = counts_from_indices(np.array([[0, 0, 2], [1, 2, 2]]), 4)
    assert counts.tolist() == [[2, 0, 1, 0], [0, 1, 2, 0]]


def test_percentile_interval_rules():
    samples = np.linspace(0.0, 1.0, 1001)
    lo, hi = percentile_interval(samples, 0.05, estimate=0.5)
    assert lo == pytest.approx(0.025) and hi == pytest.approx(0.975)
    # an estimate below the 2.5 % point: the distribution is not centred on it -> undefined
    assert all(math.isnan(v) for v in percentile_interval(samples, 0.05, estimate=0.01))
    # more than alpha/2 of the resamples undefined -> undefined; fewer -> left out
    gaps = samples.copy()
    gaps[::30] = np.nan  # 34 of 1001
    assert all(math.isnan(v) for v in percentile_interval(gaps, 0.05, estimate=0.5))
    gaps = samples.copy()
    gaps[::60] = np.nan  # 17 of 1001
    assert not math.isnan(percentile_interval(gaps, 0.05, estimate=0.5)[0])
    assert not math.isnan(percentile_interval(samples, 0.05)[0])  # no estimate: no check


def test_tiny_group_with_ties_gets_no_interval_that_misses_its_estimate():
    # 7 pairs, one item alone in the top rating: a third of the resamples leave it out, the
    # rating is then constant and the rest of the distribution sits above the estimate.
    x = [0.11, 0.2, 0.3, 0.42, 0.5, 0.61, 0.7]
    y = [1, 1, 1, 1, 1, 1, 2]
    rep = correlation_report(x, y, n_boot=1000)
    for name in ("pearson", "spearman", "kendall"):
        assert rep[name] is not None
        assert rep[f"{name}_ci"] == [None, None]
        assert "resamples" in rep["ci_undefined"][name]


def test_reported_intervals_always_contain_their_estimate():
    rng = np.random.default_rng(11)
    reported = 0
    for _ in range(60):
        n = int(rng.integers(4, 12))
        x = rng.normal(size=n).round(1)
        y = rng.integers(1, 4, n).astype(float)
        rep = correlation_report(x, y, n_boot=300, seed=int(rng.integers(1000)))
        for name in ("pearson", "spearman", "kendall"):
            lo, hi = rep.get(f"{name}_ci", [None, None])
            if lo is not None:
                reported += 1
                assert lo - 1e-12 <= rep[name] <= hi + 1e-12
            elif rep[name] is not None:
                assert name in rep["ci_undefined"]
    assert reported > 20  # the rule leaves most small-sample intervals in place


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
