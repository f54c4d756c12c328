"""The numbers the field reports for an Ia sample, from true labels and P(Ia).

purity = TP / (TP + FP), completeness (efficiency) = TP / (TP + FN) of the objects called Ia, at
P(Ia) >= 0.5 and at the threshold maximising the SPCC figure of merit
FoM = completeness x TP / (TP + W FP) with W = 3 (Kessler et al. 2010), plus the AUC, the purity
reached at 90 % and 95 % completeness, and PLAsTiCC's weighted log-loss for multi-class models.
Used alike by the CNN's evaluation, the random-forest baseline, training's validation and the report.
"""

from __future__ import annotations

import numpy as np

from snia.taxonomy import class_targets

FOM_WEIGHT = 3.0


def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    called = p >= threshold
    tp = int(np.sum(called & (y == 1)))
    fp = int(np.sum(called & (y == 0)))
    fn = int(np.sum(~called & (y == 1)))
    tn = int(np.sum(~called & (y == 0)))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def purity_completeness(c: dict) -> tuple[float, float]:
    purity = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else float("nan")
    completeness = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else float("nan")
    return purity, completeness


def figure_of_merit(c: dict, weight: float = FOM_WEIGHT) -> float:
    """SPCC figure of merit: completeness x TP / (TP + W FP) (0 when nothing is called Ia)."""
    if c["tp"] == 0:
        return 0.0
    return c["tp"] / (c["tp"] + c["fn"]) * c["tp"] / (c["tp"] + weight * c["fp"])


def threshold_curves(y: np.ndarray, p: np.ndarray):
    """Purity, completeness and FoM at every distinct threshold (descending P(Ia))."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]  # ends of tied groups
    tp = np.cumsum(y_sorted == 1)[last].astype(float)
    fp = np.cumsum(y_sorted == 0)[last].astype(float)
    positives = float(np.sum(y == 1))
    completeness = tp / positives if positives else np.full_like(tp, np.nan)
    purity = tp / (tp + fp)
    fom = completeness * tp / (tp + FOM_WEIGHT * fp)
    return p_sorted[last], purity, completeness, fom


def weighted_log_loss(types, class_probs, classes) -> tuple[float, int]:
    """PLAsTiCC's weighted log-loss with equal class weights (each true class counts the same
    however many objects it has): -sum_c (1/N_c) sum_{i in c} ln p_ic / (number of classes present).
    Probabilities are clipped to [1e-15, 1 - 1e-15] and rows renormalised, as in the challenge.
    Objects whose true type is not one of ``classes`` cannot be scored; returns (loss, scored)."""
    target = class_targets(types, list(classes))
    scored = target >= 0
    p = np.clip(np.asarray(class_probs, float)[scored], 1e-15, 1 - 1e-15)
    p /= p.sum(axis=1, keepdims=True)
    target = target[scored]
    per_class = [-np.mean(np.log(p[target == c, c])) for c in np.unique(target)]
    return (float(np.mean(per_class)) if per_class else float("nan")), int(scored.sum())


def metrics(y, p) -> dict:
    """Every number of metrics.json for a binary Ia-vs-rest classification."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    out = {"n": int(len(y)), "n_ia": int(y.sum())}
    out["auc"] = auc(y, p)
    at_half = confusion_at(y, p, 0.5)
    purity, completeness = purity_completeness(at_half)
    out["at_0.5"] = {**at_half, "purity": purity, "completeness": completeness,
                     "accuracy": (at_half["tp"] + at_half["tn"]) / max(len(y), 1),
                     "fom": figure_of_merit(at_half)}
    thresholds, pur, comp, fom = threshold_curves(y, p)
    best = int(np.nanargmax(fom)) if len(fom) and np.isfinite(fom).any() else None
    if best is not None:
        c = confusion_at(y, p, thresholds[best])
        out["at_best_fom"] = {**c, "threshold": float(thresholds[best]),
                              "purity": purity_completeness(c)[0],
                              "completeness": purity_completeness(c)[1], "fom": float(fom[best])}
    for level in (0.90, 0.95):
        reach = np.flatnonzero(comp >= level)
        out[f"purity_at_{int(level * 100)}pc_completeness"] = (float(pur[reach[0]]) if reach.size
                                                               else float("nan"))
    return out


def auc(y, p) -> float:
    """ROC AUC, NaN when only one class is present (it is undefined then)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
