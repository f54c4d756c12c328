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


# ----------------------------------------------------------------------------- bootstrap at scale


def naive_intervals(y, p, n_resamples, seed, threshold):
    """The bootstrap the plain way: each resample's object indices drawn in turn from the same
    seeded generator, the statistics recomputed on the resampled objects by scikit-learn and
    ``confusion_at``, then their 16th and 84th percentiles."""
    rng = np.random.default_rng(seed)
    auc, purity, completeness = [], [], []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(y), size=len(y))
        yy, pp = y[pick], p[pick]
        auc.append(roc_auc_score(yy, pp) if 0 < yy.sum() < len(yy) else np.nan)
        c = confusion_at(yy, pp, threshold)
        purity.append(c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else np.nan)
        completeness.append(c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else np.nan)

    def interval(v):
        v = np.asarray(v)
        return list(np.percentile(v[np.isfinite(v)], [16, 84]))
    return {"auc": interval(auc), "purity": interval(purity), "completeness": interval(completeness)}


@pytest.mark.parametrize("cells", [1, 97, 1 << 22])  # one resample per block, a few, all at once
def test_bootstrap_intervals_equal_the_naive_resampling_whatever_the_block(monkeypatch, cells):
    import snia.metrics

    monkeypatch.setattr(snia.metrics, "RESAMPLED_CELLS", cells)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 61)  # odd: a block of draws would not split into resamples evenly
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 61), 0, 1).round(2)  # ties on purpose
    got = metrics(y, p, n_resamples=150, seed=9)["intervals"]
    expected = naive_intervals(y, p, 150, 9, 0.5)
    assert got["auc"] == pytest.approx(expected["auc"], abs=1e-12)
    assert got["at_0.5"]["purity"] == pytest.approx(expected["purity"], abs=1e-12)
    assert got["at_0.5"]["completeness"] == pytest.approx(expected["completeness"], abs=1e-12)


def test_bootstrap_memory_is_bounded_by_the_block_not_by_objects_times_resamples(monkeypatch):
    """50,000 objects x 400 resamples would be 160 MB as one matrix of counts (float64); drawn in
    blocks of RESAMPLED_CELLS = 2^17 counts the peak is a dozen such blocks (~13 MB) plus O(N)
    per-object arrays."""
    import tracemalloc

    import snia.metrics

    monkeypatch.setattr(snia.metrics, "RESAMPLED_CELLS", 1 << 17)
    n, resamples = 50_000, 400
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    tracemalloc.start()
    try:
        m = metrics(y, p, n_resamples=resamples)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * resamples * 8 / 4, f"peak {peak / 2**20:.1f} MiB"
    lo, hi = m["intervals"]["auc"]
    assert lo < m["auc"] < hi
