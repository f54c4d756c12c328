"""Metrics (snia.metrics): purity, completeness, FoM, AUC and the weighted log-loss against
hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from snia.metrics import confusion_at, figure_of_merit, metrics, threshold_curves, weighted_log_loss


def test_hand_computed_purity_completeness_and_fom():
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.2])
    m = metrics(y, p)
    half = m["at_0.5"]
    assert (half["tp"], half["fp"], half["fn"], half["tn"]) == (2, 1, 1, 1)
    assert half["purity"] == pytest.approx(2 / 3) and half["completeness"] == pytest.approx(2 / 3)
    assert half["fom"] == pytest.approx(2 / 3 * 2 / (2 + 3 * 1))  # completeness x TP/(TP + 3 FP)
    best = m["at_best_fom"]  # thresholds 0.9, 0.8, 0.7, 0.3, 0.2 give FoM 1/3, 2/3, 4/15, 1/2, 1/3
    assert best["threshold"] == 0.8 and best["fom"] == pytest.approx(2 / 3)
    assert m["purity_at_90pc_completeness"] == pytest.approx(3 / 4)  # first reached at 0.3
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))


def test_fom_of_a_known_confusion():
    assert figure_of_merit({"tp": 80, "fp": 10, "fn": 20, "tn": 90}) == pytest.approx(0.8 * 80 / 110)
    assert figure_of_merit({"tp": 0, "fp": 5, "fn": 5, "tn": 0}) == 0.0


def test_metrics_match_scikit_learn_on_random_scores():
    seed = int(np.random.default_rng().integers(1 << 31))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.35 * y + rng.normal(0.3, 0.25, 500), 0, 1).round(2)  # ties on purpose
    m = metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p)), seed
    assert m["at_0.5"]["purity"] == pytest.approx(precision_score(y, p >= 0.5)), seed
    assert m["at_0.5"]["completeness"] == pytest.approx(recall_score(y, p >= 0.5)), seed
    thresholds, purity, completeness, _ = threshold_curves(y, p)
    for k in rng.integers(0, len(thresholds), 10):
        called = p >= thresholds[k]
        assert purity[k] == pytest.approx(precision_score(y, called), abs=1e-12), seed
        assert completeness[k] == pytest.approx(recall_score(y, called), abs=1e-12), seed
    c = confusion_at(y, p, 0.5)
    assert sum(c.values()) == 500


def test_weighted_log_loss_hand_computed_and_against_scikit_learn():
    from sklearn.metrics import log_loss

    from snia.taxonomy import INDEX

    classes = ["Ia", "II", "Ibc"]
    types = np.array([INDEX["Ia"], INDEX["Ia"], INDEX["II"], INDEX["other"]])
    probs = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.2, 0.8, 0.0], [0.3, 0.3, 0.4]])
    loss, scored = weighted_log_loss(types, probs, classes)
    # Ia: mean(-ln 0.5, -ln 1) = ln2 / 2; II: -ln 0.8; two classes present, equal weights
    assert scored == 3  # 'other' is not a predicted class: not scored
    assert loss == pytest.approx((np.log(2) / 2 - np.log(0.8)) / 2, rel=1e-9)

    rng = np.random.default_rng(5)
    types = rng.choice([INDEX[c] for c in classes], 300, p=[0.6, 0.3, 0.1])
    probs = rng.dirichlet(np.ones(3), 300)
    target = np.array([classes.index(["Ia", "Ia-91bg", "Iax", "II", "Ibc"][t]) for t in types])
    weights = 1.0 / np.bincount(target)[target]  # each class weighs the same in total
    expected = log_loss(target, probs, sample_weight=weights, labels=[0, 1, 2])
    assert weighted_log_loss(types, probs, classes)[0] == pytest.approx(expected, rel=1e-9)
