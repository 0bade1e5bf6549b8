"""Percentile bootstrap confidence intervals over per-item resampling (``scipy.stats.bootstrap``).

Long runs log progress on the ``clsp.metrics`` logger (INFO) every
``CLSP_PROGRESS_SECONDS`` seconds (default 30; 0: never): resamples done and their rate.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Callable, Sequence

import numpy as np

from clsp.progress import progress_seconds

log = logging.getLogger("clsp.metrics")
BATCH = 100  # resamples per call of a vectorized metric


class _Progress:
    """Counts resamples and logs a line when ``progress_seconds()`` have passed since the last."""

    def __init__(self, total: int, items: int):
        self.total, self.items, self.done = total, items, 0
        self.every = progress_seconds()
        self.start = time.perf_counter()
        self.next_line = self.start + self.every

    def add(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.every and now >= self.next_line:
            self.next_line = now + self.every
            log.info("bootstrap: %d/%d resamples of %d items, %.1f resamples/s", self.done, self.total, self.items,
                     self.done / max(now - self.start, 1e-9))


def bootstrap_distribution(
    metric: Callable[..., float | np.ndarray],
    arrays: Sequence[np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    vectorized: bool = False,
) -> np.ndarray:
    """The metric on ``n_boot`` paired resamples: (n_boot,), or (k, n_boot) for a metric of k values.

    ``arrays`` share their first axis (n items); each resample draws n items with replacement
    (paired across arrays). With ``vectorized`` the metric takes ``axis=-1`` and arrays of shape
    (batch, n), 100 resamples at a time, and returns (batch,) or (k, batch). Undefined values stay
    nan. Deterministic for a given seed. Raises ValueError when the arrays differ in length or
    there are fewer than 2 items. Method: ``scipy.stats.bootstrap(paired=True)``.
    """
    from scipy.stats import bootstrap

    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("bootstrap arrays must share their first dimension")
    if n < 2 or n_boot <= 0:
        raise ValueError(f"a bootstrap needs at least 2 items and 1 resample (got {n} and {n_boot})")
    progress = _Progress(n_boot, n)
    if vectorized:
        def statistic(*resampled, axis=-1):
            progress.add(int(resampled[0].shape[0]) if resampled[0].ndim > 1 else 1)
            return metric(*resampled, axis=axis)
    else:
        def statistic(*resampled):
            value = float(metric(*resampled))
            progress.add(1)
            return value

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples are dealt with by the caller
        result = bootstrap(
            tuple(arrays),
            statistic,
            n_resamples=n_boot,
            batch=BATCH if vectorized else None,
            vectorized=vectorized,
            paired=True,
            confidence_level=0.95,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return np.asarray(result.bootstrap_distribution, dtype=np.float64)


def percentile_interval(samples: np.ndarray, alpha: float = 0.05, estimate: float | None = None) -> tuple[float, float]:
    """The (alpha/2, 1-alpha/2) percentile interval of bootstrap ``samples`` (n_boot,), or (nan, nan).

    Resamples where the metric is undefined (nan) are left out. With ``estimate`` (the metric on
    the full sample) the interval is undefined (nan, nan) when it could not honestly be read off
    the distribution: when more than alpha/2 of the resamples are undefined (the endpoints then
    depend on values that do not exist), or when the interval does not contain the estimate,
    i.e. fewer than alpha/2 of the resamples lie on one side of it. The percentile method
    assumes the bootstrap distribution is centred on the estimate (Efron & Tibshirani 1993,
    ch. 13). In small groups with ties it is not: resamples that miss the few items with
    another rating are constant (undefined) and dropped, and what is left is shifted away from
    the estimate (7 pairs, one of them alone in the top rating: a third of the resamples are
    dropped, and the Spearman and Kendall percentile intervals excluded the estimate). The
    first test catches that; the second any other visible shift. BCa (ch. 14) is no cure: with z0 = Phi^-1(share of resamples below the
    estimate) and no acceleration, its interval excludes the estimate too once fewer than
    alpha/2 of the resamples lie on one side of it, and it is undefined when none does.
    """
    samples = np.asarray(samples, dtype=np.float64).ravel()
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = (float(v) for v in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
    if estimate is not None:
        slack = 1e-12 * max(1.0, abs(estimate))
        if samples.size - finite.size > alpha / 2 * samples.size or not lo - slack <= estimate <= hi + slack:
            return (float("nan"), float("nan"))
    return (lo, hi)


def bootstrap_ci(
    metric: Callable[..., float],
    arrays: Sequence[np.ndarray],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    vectorized: bool = False,
    estimate: float | None = None,
) -> tuple[float, float]:
    """Return the (alpha/2, 1-alpha/2) percentile interval of ``metric`` over resamples.

    ``arrays`` share their first axis (n items); each resample draws items with replacement
    (paired across arrays) and evaluates ``metric(*resampled_arrays)``. With ``vectorized``
    the metric takes ``axis=-1`` and arrays of shape (batch, n), and resamples are
    evaluated 100 at a time. Resamples where the metric is undefined (nan) are left out;
    (nan, nan) when none is defined or there are fewer than 2 items. Deterministic for a
    given seed. With ``estimate`` (the metric on all items) an interval that does not contain
    it, as a handful of resamples gives, is (nan, nan) too (rule: ``percentile_interval``).

    Raises ValueError when the arrays differ in length. Method: scipy.stats.bootstrap,
    ``method="percentile"``, ``paired=True`` (Efron & Tibshirani 1993, ch. 13).
    """
    arrays = [np.asarray(a) for a in arrays]
    if any(len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("bootstrap arrays must share their first dimension")
    if len(arrays[0]) < 2 or n_boot <= 0:
        return (float("nan"), float("nan"))
    return percentile_interval(bootstrap_distribution(metric, arrays, n_boot, seed, vectorized), alpha, estimate)
