"""Percentile bootstrap confidence intervals over per-item resampling (``scipy.stats.bootstrap``)."""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np


def bootstrap_ci(
    metric: Callable[..., float],
    arrays: Sequence[np.ndarray],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Return the (alpha/2, 1-alpha/2) percentile interval of ``metric`` over resamples.

    ``arrays`` share their first axis (n items); each resample draws items with replacement
    (paired across arrays) and evaluates ``metric(*resampled_arrays)``. With ``vectorized``
    the metric takes ``axis=-1`` and arrays of shape (batch, n), and all resamples are
    evaluated in a few calls. Resamples where the metric is undefined (nan) are left out;
    (nan, nan) when none is defined or there are fewer than 2 items. Deterministic for a given seed.

    Raises ValueError when the arrays differ in length. Method: scipy.stats.bootstrap,
    ``method="percentile"``, ``paired=True`` (Efron & Tibshirani 1993, ch. 13).
    """
    from scipy.stats import bootstrap

    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("bootstrap arrays must share their first dimension")
    if n < 2 or n_boot <= 0:
        return (float("nan"), float("nan"))
    if vectorized:
        statistic = metric
    else:
        def statistic(*resampled):
            return float(metric(*resampled))

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples are dropped below
        result = bootstrap(
            tuple(arrays),
            statistic,
            n_resamples=n_boot,
            vectorized=vectorized,
            paired=True,
            confidence_level=1 - alpha,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    samples = np.asarray(result.bootstrap_distribution, dtype=np.float64).ravel()
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))
