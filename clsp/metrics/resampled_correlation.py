"""Pearson, Spearman and Kendall tau-b of many bootstrap resamples at once, from item counts.

A bootstrap resample of n paired items is fully described by how often it draws each item:
a count vector c (n,) with sum(c) = n. Every statistic here takes a batch of such vectors,
``counts`` of shape (B, n), and returns the B values that the plain formula would give on the
resampled arrays ``a[idx], b[idx]`` (equal to ``scipy.stats`` on each resample within rounding;
nan where a resample is constant on one side, as scipy gives):

- Pearson: weighted moments, sum_k c_k (a_k - mean_c a)(b_k - mean_c b) / sqrt(...) (O(B n)).
- Spearman: the average rank of item k in a resample is (items drawn below k's value) +
  (copies of k's value + 1) / 2, read off cumulative counts over the sorted distinct values,
  then the weighted Pearson of those ranks (O(B n); no per-resample sort).
- Kendall tau-b (Kendall 1945; tie terms as in ``scipy.stats.kendalltau``): C - D over the
  resample's position pairs is c^T S c / 2 with S_kl = sign(a_k - a_l) sign(b_k - b_l)
  (copies of one item are tied on both sides, so S_kk = 0 is right); n1 = sum over distinct
  a values v of m_v (m_v - 1) / 2 with m_v the resample's copies of v, n2 likewise, and
  tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)), n0 = n (n - 1) / 2. S (n x n) is built once
  and applied by matrix product (O(B n^2), exact: all terms are small integers).
"""

from __future__ import annotations

import numpy as np

KENDALL_DENSE_MAX = 4096  # largest n for the n x n concordance matrix (64 MiB as float32)
PAIR_TERMS = 1 << 21  # (resample, item, group) terms held at once by the grouped Kendall path (16 MiB)
PLAN_TERMS = 1 << 22  # largest (item, lower group) index plan of the grouped path (3 x 32 MiB)


def counts_from_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Item counts (B, n) float64 of resamples given as item indices ``idx`` (B, m), values in [0, n)."""
    idx = np.asarray(idx)
    if idx.ndim == 1:
        idx = idx[None, :]
    rows = idx.shape[0]
    flat = (idx + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


class _Groups:
    """Distinct values of one side: ``inv`` (n,) group of each item (ascending values), ``size`` groups."""

    def __init__(self, values: np.ndarray):
        _, self.inv = np.unique(values, return_inverse=True)
        self.size = int(self.inv.max()) + 1 if values.size else 0
        self.order = np.argsort(self.inv, kind="stable")
        self.starts = np.searchsorted(self.inv[self.order], np.arange(self.size))

    def totals(self, counts: np.ndarray) -> np.ndarray:
        """Copies of each distinct value in each resample, (B, groups)."""
        if self.size == self.inv.size:  # all values distinct
            return counts[:, self.order]
        return np.add.reduceat(counts[:, self.order], self.starts, axis=1)

    def ranks(self, totals: np.ndarray) -> np.ndarray:
        """Average 1-based rank of every item within each resample (B, n), from ``totals`` (B, groups)."""
        return (np.cumsum(totals, axis=1) - (totals - 1.0) / 2.0)[:, self.inv]


def _tied_pairs(totals: np.ndarray) -> np.ndarray:
    """Pairs of resample positions sharing a value (B,): sum m (m - 1) / 2 over value totals m."""
    return np.sum(totals * (totals - 1.0), axis=1) / 2.0


class _GroupedPairs:
    """C - D when ``few`` has G distinct values (each pair counted once, from the item in the higher
    ``few`` group h): for item k, sum over items l of each lower group h' of c_l sign(m_k - m_l)
    (m: ``many``) is prefix[left] + prefix[right] - T(<h') - T(<=h'), where prefix holds the
    cumulative counts in (few group, many) order, left/right its positions of m < m_k and
    m <= m_k within group h', and T the group totals. Index terms: about n (G - 1) / 2."""

    def __init__(self, many: np.ndarray, few: _Groups):
        self.few = few
        self.order = np.lexsort((many, few.inv))
        sizes = np.bincount(few.inv, minlength=few.size)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        sorted_many = many[self.order]
        item, left, right = [], [], []
        for h in range(1, few.size):
            members = np.flatnonzero(few.inv == h)
            for lower in range(h):
                s, e = bounds[lower], bounds[lower + 1]
                item.append(members)
                left.append(s + np.searchsorted(sorted_many[s:e], many[members], side="left"))
                right.append(s + np.searchsorted(sorted_many[s:e], many[members], side="right"))
        empty = [np.zeros(0, dtype=np.int64)]
        self.item, self.left, self.right = (np.concatenate(v or empty) for v in (item, left, right))

    def c_minus_d(self, counts: np.ndarray, few_totals: np.ndarray) -> np.ndarray:
        """C - D (B,) for counts (B, n) and the ``few`` side's value totals (B, G)."""
        by_item = np.ascontiguousarray(counts.T)  # (n, B): the gathers below copy whole rows
        prefix = np.zeros((counts.shape[1] + 1, counts.shape[0]))
        np.cumsum(by_item[self.order], axis=0, out=prefix[1:])
        pairs = np.einsum("tb,tb->b", by_item.take(self.item, axis=0),
                          prefix.take(self.left, axis=0) + prefix.take(self.right, axis=0))
        upto = np.cumsum(few_totals, axis=1)  # T(<= h')
        per_lower = 2.0 * upto - few_totals  # T(< h') + T(<= h')
        base = np.cumsum(per_lower, axis=1) - per_lower  # summed over h' < h
        return pairs - np.sum(few_totals * base, axis=1)


def _weighted_pearson(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pearson's r of rows of ``a``, ``b`` ((B, n) or (n,)) with item weights ``counts`` (B, n)."""
    total = counts.sum(axis=1, keepdims=True)
    da = a - np.sum(counts * a, axis=1, keepdims=True) / total
    db = b - np.sum(counts * b, axis=1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sum(counts * da * db, axis=1) / np.sqrt(np.sum(counts * da * da, axis=1) * np.sum(counts * db * db, axis=1))
    return np.clip(r, -1.0, 1.0)


class ResampledCorrelations:
    """Pearson, Spearman and Kendall tau-b of ``a`` and ``b`` (n,) for batches of resample counts (B, n).

    ``correlations(counts)`` returns (3, B), nan where a resample is constant on one side.
    Kendall takes the grouped path when one side has at most n/16 distinct values (ratings on a
    scale; O(B n G)), else an n x n float32 concordance matrix, so it is available
    (``has_kendall``) for such data or n <= ``KENDALL_DENSE_MAX``; without it the Kendall row is
    nan and callers resample ``scipy.stats.kendalltau``. Raises ValueError when ``a`` and ``b``
    differ in shape.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a = np.asarray(a, dtype=np.float64).ravel()
        self.b = np.asarray(b, dtype=np.float64).ravel()
        if self.a.shape != self.b.shape:
            raise ValueError(f"a has {self.a.size} values but b has {self.b.size}")
        self.n = self.a.size
        self.ga, self.gb = _Groups(self.a), _Groups(self.b)
        self._concordance: np.ndarray | None = None
        few_is_b = self.gb.size <= self.ga.size
        self._few_is_b = few_is_b
        few, many = (self.gb, self.a) if few_is_b else (self.ga, self.b)
        sizes = np.bincount(few.inv, minlength=few.size)
        plan_terms = int(np.sum(sizes * np.arange(few.size)))  # items times the groups below theirs
        self._grouped = _GroupedPairs(many, few) if few.size * 16 <= self.n and plan_terms <= PLAN_TERMS else None
        self.has_kendall = self._grouped is not None or self.n <= KENDALL_DENSE_MAX

    def correlations(self, counts: np.ndarray) -> np.ndarray:
        """(3, B): Pearson's r, Spearman's rho (average ranks within the resample), Kendall's tau-b."""
        ta, tb = self.ga.totals(counts), self.gb.totals(counts)
        out = np.stack([
            _weighted_pearson(self.a, self.b, counts),
            _weighted_pearson(self.ga.ranks(ta), self.gb.ranks(tb), counts),
            self._kendall(counts, ta, tb),
        ])
        out[:, (np.count_nonzero(ta, axis=1) < 2) | (np.count_nonzero(tb, axis=1) < 2)] = np.nan
        return out

    def kendall(self, counts: np.ndarray) -> np.ndarray:
        """Kendall's tau-b of each resample (B,); nan where one side is constant."""
        return self.correlations(counts)[2]

    def _kendall(self, counts: np.ndarray, ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
        if self._grouped is not None:
            few = tb if self._few_is_b else ta
            step = max(1, PAIR_TERMS // max(self._grouped.item.size, 1))
            c_minus_d = np.concatenate([self._grouped.c_minus_d(counts[i:i + step], few[i:i + step])
                                        for i in range(0, counts.shape[0], step)])
        elif self.has_kendall:
            if self._concordance is None:
                sa = np.sign(self.a[:, None] - self.a[None, :])
                sb = np.sign(self.b[:, None] - self.b[None, :])
                self._concordance = (sa * sb).astype(np.float32)
            c_minus_d = np.sum((counts.astype(np.float32) @ self._concordance).astype(np.float64) * counts, axis=1) / 2
        else:
            return np.full(counts.shape[0], np.nan)
        total = counts.sum(axis=1)
        n0 = total * (total - 1.0) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = c_minus_d / np.sqrt((n0 - _tied_pairs(ta)) * (n0 - _tied_pairs(tb)))
        return np.clip(tau, -1.0, 1.0)
