"""Percentile bootstrap confidence intervals over per-item resampling.

Long runs log progress on the ``clsp.metrics`` logger (INFO) every
``CLSP_PROGRESS_SECONDS`` seconds (default 30; 0: never): resamples done and their rate.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np

from clsp.progress import progress_seconds

log = logging.getLogger("clsp.metrics")


def bootstrap_ci(
    metric: Callable[..., float],
    arrays: Sequence[np.ndarray],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Return the (alpha/2, 1-alpha/2) percentile interval of ``metric`` over resamples.

    ``arrays`` share their first axis (one entry per item); each resample draws items with
    replacement and calls ``metric(*resampled_arrays)``. Deterministic for a given seed.
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if n == 0:
        return (float("nan"), float("nan"))
    if any(len(a) != n for a in arrays):
        raise ValueError("bootstrap arrays must share their first dimension")
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot, dtype=np.float64)
    every = progress_seconds()
    start = time.perf_counter()
    next_line = start + every
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        values[b] = metric(*(a[idx] for a in arrays))
        if every and time.perf_counter() >= next_line:
            now = time.perf_counter()
            next_line = now + every
            log.info("bootstrap: %d/%d resamples of %d items, %.1f resamples/s", b + 1, n_boot, n, (b + 1) / (now - start))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))
