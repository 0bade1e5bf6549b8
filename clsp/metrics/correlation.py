"""Pearson, Spearman and Kendall tau-b correlations (numpy only), with bootstrap CIs.

Used for the human-alignment protocol: model similarity scores against human ratings.
Spearman uses average ranks for ties; Kendall is tau-b (tie-corrected), computed exactly
over all pairs in O(n^2) memory-bounded chunks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from clsp.errors import InputError
from clsp.metrics.bootstrap import bootstrap_ci


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x has {a.size} values but y has {b.size}")
    return a, b


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; nan with fewer than 2 items or a constant input."""
    a, b = _pair(x, y)
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt(np.sum(da * da) * np.sum(db * db))
    return float(np.sum(da * db) / denom) if denom > 0 else float("nan")


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    a = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], a.size]
    mean_rank = (starts + ends + 1) / 2.0  # mean of (start+1 .. end)
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks."""
    a, b = _pair(x, y)
    return pearson(average_ranks(a), average_ranks(b))


def kendall_tau_b(x: Sequence[float], y: Sequence[float], chunk: int = 2048) -> float:
    """Kendall's tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)) over all item pairs."""
    a, b = _pair(x, y)
    n = a.size
    if n < 2:
        return float("nan")
    concordant_minus_discordant = 0.0
    tied_a = tied_b = 0
    for start in range(0, n, chunk):
        sa = np.sign(a[start : start + chunk, None] - a[None, :])
        sb = np.sign(b[start : start + chunk, None] - b[None, :])
        concordant_minus_discordant += float(np.sum(sa * sb))
        tied_a += int(np.sum(sa == 0)) - min(chunk, n - start)  # drop the diagonal
        tied_b += int(np.sum(sb == 0)) - min(chunk, n - start)
    n0 = n * (n - 1) / 2
    denom = np.sqrt((n0 - tied_a / 2) * (n0 - tied_b / 2))
    return float(concordant_minus_discordant / 2 / denom) if denom > 0 else float("nan")


CORRELATIONS = {"pearson": pearson, "spearman": spearman, "kendall": kendall_tau_b}


def correlation_report(
    x: Sequence[float],
    y: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """The three correlations of ``x`` with ``y`` and their percentile bootstrap CIs (None: undefined).

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
            report[f"{name}_ci"] = [_defined(v) for v in bootstrap_ci(fn, [a, b], n_boot=n_boot, alpha=alpha, seed=seed)]
    if n_boot > 0:
        report["ci_level"] = 1 - alpha
    return report


def _defined(value: float) -> float | None:
    """Undefined values (constant input, too few items) become None so reports stay valid JSON."""
    return None if value != value else value
