"""Pearson, Spearman and Kendall tau-b correlations (``scipy.stats``), with bootstrap CIs.

Used for the human-alignment protocol: model similarity scores against human ratings.
Spearman uses average ranks for ties; Kendall is tau-b (tie-corrected). Values come from
``scipy.stats.pearsonr``, ``spearmanr`` and ``kendalltau``; the bootstrap evaluates all three on
batches of resamples at once from item counts (``clsp.metrics.resampled_correlation``).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

from clsp.errors import InputError
from clsp.metrics.bootstrap import bootstrap_distribution, percentile_interval


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x has {a.size} values but y has {b.size}")
    return a, b


def _quiet(fn: Callable[..., float], a: np.ndarray, b: np.ndarray) -> float:
    """``fn(a, b)`` as a float; nan (no warning) with fewer than 2 items or a constant input."""
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b).statistic)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; nan with fewer than 2 items or a constant input. Raises ValueError on unequal lengths."""
    from scipy.stats import pearsonr

    return _quiet(pearsonr, *_pair(x, y))


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span (``scipy.stats.rankdata``)."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(x, dtype=np.float64).ravel(), method="average")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks."""
    from scipy.stats import spearmanr

    return _quiet(spearmanr, *_pair(x, y))


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)) over all item pairs (Kendall 1945)."""
    from scipy.stats import kendalltau

    return _quiet(lambda a, b: kendalltau(a, b, variant="b"), *_pair(x, y))


CORRELATIONS = {"pearson": pearson, "spearman": spearman, "kendall": kendall_tau_b}


def resampled_statistic(a: np.ndarray, b: np.ndarray) -> Callable[..., np.ndarray]:
    """Vectorized bootstrap statistic over item indices (batch, n) -> (3, batch): Pearson, Spearman, Kendall.

    Each resample is reduced to its item counts and evaluated by ``ResampledCorrelations`` (equal to
    the scipy.stats values on the resampled arrays); Kendall falls back to ``scipy.stats.kendalltau``
    per resample where neither fast path applies (n > 4096 with both sides mostly distinct).
    """
    from clsp.metrics.resampled_correlation import ResampledCorrelations, counts_from_indices

    stats = ResampledCorrelations(a, b)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        out = stats.correlations(counts_from_indices(idx, a.size))
        if not stats.has_kendall:
            out[2] = [kendall_tau_b(a[row], b[row]) for row in np.atleast_2d(idx)]
        return out

    return statistic


def correlation_report(
    x: Sequence[float],
    y: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """The three correlations of ``x`` with ``y`` and their percentile bootstrap CIs (None: undefined).

    Returns ``{"n", "pearson", "pearson_ci": [lo, hi], "spearman", ..., "kendall", ..., "ci_level"}``.
    The intervals share one set of ``n_boot`` paired resamples (``scipy.stats.bootstrap``). An
    interval is ``[None, None]`` when it is undefined (fewer than 2 items, a constant side) or
    cannot be read honestly off the bootstrap distribution: more than alpha/2 of the resamples
    undefined, or the percentile interval not containing the estimate, as happens in small
    groups with tied ratings (rule and reasons: ``percentile_interval``); then
    ``"ci_undefined"`` names the reason per correlation.
    Raises ``InputError`` naming the first item whose score or rating is NaN/inf.
    """
    a, b = _pair(x, y)
    for name, values in (("score", a), ("rating", b)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise InputError(f"item {int(np.argmax(bad))}: {name} {values[bad][0]} is not a finite number")
    report: dict = {"n": int(a.size)}
    for name, fn in CORRELATIONS.items():
        report[name] = _defined(fn(a, b))
    if n_boot <= 0:
        return report
    report["ci_level"] = 1 - alpha
    if a.size < 2:
        return report
    samples = bootstrap_distribution(resampled_statistic(a, b), [np.arange(a.size)], n_boot, seed, vectorized=True)
    reasons = {}
    for row, name in zip(samples, CORRELATIONS):
        lo, hi = percentile_interval(row, alpha, estimate=report[name])
        report[f"{name}_ci"] = [_defined(lo), _defined(hi)]
        if report[name] is not None and lo != lo:
            reasons[name] = _why_undefined(row, alpha)
    if reasons:
        report["ci_undefined"] = reasons
    return report


def _why_undefined(samples: np.ndarray, alpha: float) -> str:
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad > alpha / 2 * samples.size:
        return f"undefined in {bad} of {samples.size} resamples (too few items or distinct values)"
    return "the bootstrap distribution does not cover the estimate (too few items, ties)"


def _defined(value: float) -> float | None:
    """Undefined values (constant input, too few items) become None so reports stay valid JSON."""
    return None if value != value else value
