"""WA / UA / per-class recall / confusion against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from clsp.metrics.classification import (
    classification_report,
    confusion_matrix,
    per_class_recall,
    unweighted_accuracy,
    weighted_accuracy,
)

# gold: 4 a, 2 b, 1 c ; pred: a a a b | b a | a
GOLD = ["a", "a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "a", "b", "b", "a", "a"]


def test_hand_computed_case():
    assert weighted_accuracy(GOLD, PRED) == pytest.approx(4 / 7)
    assert per_class_recall(GOLD, PRED) == {"a": 0.75, "b": 0.5, "c": 0.0}
    assert unweighted_accuracy(GOLD, PRED) == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    labels, m = confusion_matrix(GOLD, PRED, labels=["c", "b", "a"])
    assert labels == ["c", "b", "a"]
    assert m.tolist() == [[0, 0, 1], [0, 1, 1], [0, 1, 3]]


def test_ua_ignores_classes_only_predicted():
    # "z" is predicted but never gold: it is not a class of UA (as in the paper's code)
    assert unweighted_accuracy(["a", "b"], ["a", "z"]) == pytest.approx(0.5)
    labels, m = confusion_matrix(["a", "b"], ["a", "z"])
    assert labels == ["a", "b", "z"] and m.sum() == 2


def test_report_has_cis_that_bracket_the_point_estimate():
    rng = np.random.default_rng(1)
    gold = rng.choice(["x", "y", "z"], size=300).tolist()
    pred = [g if rng.random() < 0.7 else "x" for g in gold]
    rep = classification_report(gold, pred, n_boot=300, seed=3)
    assert rep["n"] == 300
    assert rep["wa_ci"][0] < rep["wa"] < rep["wa_ci"][1]
    assert rep["ua_ci"][0] < rep["ua"] < rep["ua_ci"][1]
    assert rep["wa_ci"][1] - rep["wa_ci"][0] < 0.2
    assert sum(rep["support"].values()) == 300
    assert rep == classification_report(gold, pred, n_boot=300, seed=3)  # deterministic


def test_one_resample_gives_no_interval_rather_than_one_that_misses_the_estimate():
    rng = np.random.default_rng(1)
    gold = rng.choice(["x", "y", "z"], size=110).tolist()
    pred = [g if rng.random() < 0.8 else "x" for g in gold]
    for seed in range(5):
        rep = classification_report(gold, pred, n_boot=1, seed=seed)
        for key in ("wa", "ua"):
            lo, hi = rep[f"{key}_ci"]
            assert (lo is None and hi is None) or lo <= rep[key] <= hi


def test_empty_and_mismatched_inputs():
    assert np.isnan(weighted_accuracy([], []))
    assert np.isnan(unweighted_accuracy([], []))
    with pytest.raises(ValueError):
        weighted_accuracy(["a"], [])
