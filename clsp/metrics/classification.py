"""Classification metrics of the paper's zero-shot protocol: WA, UA, per-class recall, confusion.

WA (weighted accuracy) is the overall accuracy; UA (unweighted accuracy) is the mean of the
per-class recalls over the classes present in the gold labels, so every class weighs the
same whatever its size. Confidence intervals resample items (percentile bootstrap).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from clsp.metrics.bootstrap import bootstrap_ci


def _as_arrays(y_true: Sequence, y_pred: Sequence) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(list(y_true), dtype=object)
    p = np.asarray(list(y_pred), dtype=object)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {len(t)} items but y_pred has {len(p)}")
    return t, p


def weighted_accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Fraction of items whose prediction equals the gold label (nan when empty)."""
    t, p = _as_arrays(y_true, y_pred)
    return float(np.mean(t == p)) if len(t) else float("nan")


def per_class_recall(y_true: Sequence, y_pred: Sequence) -> dict[str, float]:
    """Recall of each class present in ``y_true`` (sorted by class name)."""
    t, p = _as_arrays(y_true, y_pred)
    return {str(c): float(np.mean(p[t == c] == c)) for c in sorted(set(t.tolist()), key=str)}


def unweighted_accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Mean per-class recall over the gold classes (nan when empty)."""
    recalls = per_class_recall(y_true, y_pred)
    return float(np.mean(list(recalls.values()))) if recalls else float("nan")


def confusion_matrix(y_true: Sequence, y_pred: Sequence, labels: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Counts ``m[i, j]`` of items with gold ``labels[i]`` predicted as ``labels[j]``.

    ``labels`` fixes the order; labels seen in the data but missing from it are appended.
    """
    t, p = _as_arrays(y_true, y_pred)
    order = [str(x) for x in (labels or [])]
    for x in sorted({str(v) for v in (*t.tolist(), *p.tolist())}):
        if x not in order:
            order.append(x)
    index = {x: i for i, x in enumerate(order)}
    m = np.zeros((len(order), len(order)), dtype=np.int64)
    for a, b in zip(t.tolist(), p.tolist()):
        m[index[str(a)], index[str(b)]] += 1
    return order, m


def _encode(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    names = {x: i for i, x in enumerate(sorted({str(v) for v in (*t.tolist(), *p.tolist())}))}
    return (np.array([names[str(x)] for x in t], dtype=np.int64), np.array([names[str(x)] for x in p], dtype=np.int64))


def _wa_int(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(t == p))


def _ua_int(t: np.ndarray, p: np.ndarray) -> float:
    classes = np.unique(t)
    return float(np.mean([np.mean(p[t == c] == c) for c in classes]))


def _defined(value: float) -> float | None:
    return None if value != value else value


def classification_report(
    y_true: Sequence,
    y_pred: Sequence,
    labels: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """WA, UA, per-class recall, confusion matrix and bootstrap CIs of WA and UA, as a dict.

    Values that are undefined (no items) are None, so the report is valid JSON.
    """
    t, p = _as_arrays(y_true, y_pred)
    order, matrix = confusion_matrix(t, p, labels)
    ti, pi = _encode(t, p)
    report = {
        "n": int(len(t)),
        "wa": _defined(weighted_accuracy(t, p)),
        "ua": _defined(unweighted_accuracy(t, p)),
        "per_class_recall": per_class_recall(t, p),
        "support": {str(c): int(np.sum(t == c)) for c in sorted(set(t.tolist()), key=str)},
        "confusion": {"labels": order, "matrix": matrix.tolist()},
    }
    if n_boot > 0 and len(t):
        # a single item, or an interval that misses the estimate (too few resamples), has no
        # interval: (nan, nan) from bootstrap_ci, written as null
        for key, metric in (("wa", _wa_int), ("ua", _ua_int)):
            ci = bootstrap_ci(metric, [ti, pi], n_boot=n_boot, alpha=alpha, seed=seed, estimate=report[key])
            report[f"{key}_ci"] = [_defined(v) for v in ci]
        report["ci_level"] = 1 - alpha
    return report
