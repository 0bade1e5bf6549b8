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
    the metric takes ``axis=-1`` and arrays of shape (batch, n), and resamples are
    evaluated 100 at a time. Resamples where the metric is undefined (nan) are left out;
    (nan, nan) when none is defined or there are fewer than 2 items. Deterministic for a
    given seed.

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
    progress = _Progress(n_boot, n)
    if vectorized:
        def statistic(*resampled, axis=-1):
            out = metric(*resampled, axis=axis)
            progress.add(int(np.size(out)))
            return out
    else:
        def statistic(*resampled):
            value = float(metric(*resampled))
            progress.add(1)
            return value

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples are dropped below
        result = bootstrap(
            tuple(arrays),
            statistic,
            n_resamples=n_boot,
            batch=BATCH if vectorized else None,
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
