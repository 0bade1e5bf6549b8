"""Pearson, Spearman and Kendall tau-b correlations (``scipy.stats``), with bootstrap CIs.

Used for the human-alignment protocol: model similarity scores against human ratings.
Spearman uses average ranks for ties; Kendall is tau-b (tie-corrected). Values come from
``scipy.stats.pearsonr``, ``spearmanr`` and ``kendalltau``; the bootstrap evaluates Pearson
and Spearman on all resamples at once (vectorized) and Kendall per resample (O(n log n) each).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

from clsp.errors import InputError
from clsp.metrics.bootstrap import bootstrap_ci


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


def _pearson_rows(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson's r along ``axis`` for stacked resamples; nan where a row is constant."""
    da = a - a.mean(axis=axis, keepdims=True)
    db = b - b.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sum(da * db, axis=axis) / np.sqrt(np.sum(da * da, axis=axis) * np.sum(db * db, axis=axis))
    return np.clip(r, -1.0, 1.0)


def _spearman_rows(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    from scipy.stats import rankdata

    return _pearson_rows(rankdata(a, axis=axis), rankdata(b, axis=axis), axis=axis)


CORRELATIONS = {"pearson": pearson, "spearman": spearman, "kendall": kendall_tau_b}
_VECTORIZED = {"pearson": _pearson_rows, "spearman": _spearman_rows}


def correlation_report(
    x: Sequence[float],
    y: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """The three correlations of ``x`` with ``y`` and their percentile bootstrap CIs (None: undefined).

    Returns ``{"n", "pearson", "pearson_ci": [lo, hi], "spearman", ..., "kendall", ..., "ci_level"}``.
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
        if n_boot > 0 and a.size >= 2:
            vec = _VECTORIZED.get(name)
            ci = bootstrap_ci(vec or fn, [a, b], n_boot=n_boot, alpha=alpha, seed=seed, vectorized=vec is not None)
            report[f"{name}_ci"] = [_defined(v) for v in ci]
    if n_boot > 0:
        report["ci_level"] = 1 - alpha
    return report


def _defined(value: float) -> float | None:
    """Undefined values (constant input, too few items) become None so reports stay valid JSON."""
    return None if value != value else value
