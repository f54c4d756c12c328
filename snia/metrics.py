"""The numbers the field reports for an Ia sample, from true labels and P(Ia).

purity = TP / (TP + FP), completeness (efficiency) = TP / (TP + FN) of the objects called Ia, at
P(Ia) >= 0.5 and at the threshold maximising the SPCC figure of merit
FoM = completeness x TP / (TP + W FP) with W = 3 (Kessler et al. 2010), plus the AUC, the purity
reached at 90 % and 95 % completeness, and PLAsTiCC's weighted log-loss for multi-class models.
Used alike by the CNN's evaluation, the random-forest baseline, training's validation and the report.

Uncertainties: ``bootstrap`` resamples the objects with replacement (seeded; 1,000 resamples by
default) and recomputes every statistic on each resample, a block of resamples at a time from
tied-group counts (vectorised over the block; a block holds about ``RESAMPLED_CELLS`` counts, so
memory is bounded by it and by O(N) per-object arrays, never N x resamples); ``metrics``
reports their 16th-84th percentiles, a 68 % interval. At the best-FoM threshold the threshold
stays the one chosen on the full sample: the intervals are the spread of purity, completeness and
FoM at the operating point the table reports. Re-optimising it per resample would add the
threshold's own instability (FoM is flat near its maximum) to them; that instability is reported
on its own, as the interval of the threshold re-optimised per resample. Calibration: the Brier
score and the reliability diagram's bins (``brier_score``, ``reliability``: the same numbers as
scikit-learn's ``brier_score_loss`` and ``calibration_curve``).

Development and report halves (``halves``, ``half_metrics``): every test set splits into two fixed
halves by a hash of the object id. Settings are chosen on the development half (the best-FoM
threshold among them); the report half is scored at the settings chosen there, never at its own.
"""

from __future__ import annotations

import numpy as np

from snia.taxonomy import class_targets

FOM_WEIGHT = 3.0
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
INTERVAL_PERCENTILES = (16.0, 84.0)  # a 68 % interval: +-1 sigma for a normal spread
RESAMPLED_CELLS = 1 << 22  # resamples x objects drawn at a time (bounded memory for any size)
HALF_SEED = 2026  # the fixed split of every test set into a development and a report half


def hashed_share(object_id, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask choosing about ``fraction`` of the objects by a hash of (id, seed): the same
    objects on every run and rank, whatever their order (splitmix64's finaliser)."""
    # the seed's mixing constant is wrapped to 64 bits in Python (exact, and no numpy overflow
    # warning); the uint64 arithmetic below wraps by design
    x = np.asarray(object_id).astype(np.uint64) + np.uint64(seed * 0x9E3779B97F4A7C15 % 2 ** 64)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    return (x % np.uint64(10_000)) < np.uint64(round(fraction * 10_000))


def halves(object_id) -> dict:
    """The development and the report half of a test set: name -> boolean mask."""
    report = hashed_share(object_id, 0.5, HALF_SEED)
    return {"development": ~report, "report": report}


def half_metrics(y, p, object_id) -> dict:
    """AUC of each half, and purity, completeness and FoM at the best-FoM threshold chosen on the
    development half (on both halves: the report half is scored at the development half's
    threshold, as a survey would apply a threshold chosen beforehand)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    parts = halves(object_id)
    dev = parts["development"]
    thresholds, _, _, fom = threshold_curves(y[dev], p[dev])
    chosen = (float(thresholds[int(np.nanargmax(fom))])
              if len(fom) and np.isfinite(fom).any() else 0.5)
    out = {"threshold_from": "development", "threshold": chosen}
    for name, mask in parts.items():
        c = confusion_at(y[mask], p[mask], chosen)
        purity, completeness = purity_completeness(c)
        out[name] = {"n": int(mask.sum()), "n_ia": int(y[mask].sum()), "auc": auc(y[mask], p[mask]),
                     "purity": purity, "completeness": completeness, "fom": figure_of_merit(c)}
    return out


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


def metrics(y, p, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
            progress=None) -> dict:
    """Every number of metrics.json for a binary Ia-vs-rest classification; with
    ``n_resamples`` > 0, their bootstrap 68 % intervals under ``intervals`` (see the module
    docstring; ``progress``: see ``bootstrap``)."""
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
    out["brier"] = brier_score(y, p) if len(y) else float("nan")
    if n_resamples > 0 and len(y):
        out["intervals"] = intervals(y, p, out.get("at_best_fom", {}).get("threshold"),
                                     n_resamples, seed, progress)
    return out


def intervals(y, p, best_threshold=None, n_resamples: int = BOOTSTRAP_RESAMPLES,
              seed: int = BOOTSTRAP_SEED, progress=None) -> dict:
    """Bootstrap 68 % intervals ([16th, 84th percentile]) of the AUC and of purity, completeness,
    FoM (and accuracy) at P(Ia) >= 0.5 and at ``best_threshold`` (held fixed), plus the interval
    of the best-FoM threshold re-optimised on each resample. Resamples where a statistic is
    undefined (no Ia drawn, say) are left out of its interval."""
    fixed = [0.5] + ([best_threshold] if best_threshold is not None else [])
    draws = bootstrap(y, p, n_resamples, seed, thresholds=fixed, progress=progress)
    out = {"resamples": int(n_resamples), "seed": int(seed),
           "percentiles": list(INTERVAL_PERCENTILES),
           "best_fom_threshold": "fixed at the full sample's; 'threshold' is re-optimised per "
                                 "resample",
           "auc": percentile_interval(draws["auc"])}
    for key, t in zip(("at_0.5", "at_best_fom"), fixed):
        out[key] = {name: percentile_interval(v) for name, v in draws["at"][t].items()}
    if best_threshold is not None:
        out["at_best_fom"]["threshold"] = percentile_interval(draws["best_threshold"])
    return out


def percentile_interval(values) -> list[float]:
    """[16th, 84th] percentile of the finite values ([nan, nan] when there are none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return [float("nan"), float("nan")]
    return [float(v) for v in np.percentile(values, INTERVAL_PERCENTILES)]


def resample_counts(n: int, n_resamples: int, seed: int = BOOTSTRAP_SEED):
    """Bootstrap resamples of ``n`` objects as counts (how often each object is drawn), in blocks
    of [resamples, n] holding about ``RESAMPLED_CELLS`` counts (one resample at least): memory
    bounded by the block, never [n_resamples, n]. The generator's draws fill the block row by row,
    as one call per resample would, so the same seed gives the same resamples whatever the block
    (tests/test_metrics.py)."""
    rng = np.random.default_rng(seed)
    per_block = max(1, min(n_resamples, RESAMPLED_CELLS // max(n, 1)))
    for start in range(0, n_resamples, per_block):
        r = min(per_block, n_resamples - start)
        drawn = rng.integers(0, n, size=(r, n)) + (np.arange(r) * n)[:, None]
        yield np.bincount(drawn.ravel(), minlength=r * n).reshape(r, n)


def bootstrap(y, p, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
              thresholds=(0.5,), fpr_grid=None, threshold_grid=None, progress=None) -> dict:
    """The statistics of each bootstrap resample (arrays with one row per resample):
    ``auc``; ``best_threshold`` and ``best_fom`` (re-optimised per resample); ``at[t]``: purity,
    completeness, fom and accuracy at each fixed threshold t; with ``fpr_grid``, ``roc_tpr``
    (the true-positive rate at each false-positive rate of the grid); with ``threshold_grid``,
    ``curves``: purity, completeness and fom at each threshold of the grid. ``progress``: told
    of each block's resamples done (``update(n)``, e.g. ``snia.progress.Progress``).

    All from one sort: objects in tied groups of descending P(Ia); a resample is a vector of
    counts, so its true and false positives above each group's threshold are cumulative sums of
    counted group totals, the same numbers ``metrics`` computes on the resampled objects."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    p_sorted, is_ia = p[order], (y[order] == 1).astype(float)
    starts = np.r_[0, np.flatnonzero(np.diff(p_sorted)) + 1]
    group_thresholds = p_sorted[starts]

    def group_index(t):  # the last group called Ia at threshold t (-1: none)
        return np.searchsorted(-group_thresholds, -np.asarray(t, dtype=float), side="right") - 1

    fixed = {float(t): group_index(t) for t in thresholds}
    grid_index = None if threshold_grid is None else group_index(threshold_grid)
    parts: dict = {"auc": [], "best_threshold": [], "best_fom": [], "roc_tpr": [],
                   "at": {t: [] for t in fixed}, "curves": []}
    for counts in resample_counts(len(y), n_resamples, seed):
        w = counts[:, order].astype(float)
        pos = np.add.reduceat(w * is_ia, starts, axis=1)
        neg = np.add.reduceat(w, starts, axis=1) - pos
        tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
        n_pos, n_neg = tp[:, -1:], fp[:, -1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            # positives of a group beat the negatives of every lower group, tie with their own
            parts["auc"].append(np.sum(pos * (n_neg - fp + 0.5 * neg), axis=1)
                                / (n_pos * n_neg)[:, 0])
            # FoM at each group's threshold; NaN at thresholds no drawn object sits at (no choice)
            fom = np.where(tp + fp > 0, tp / n_pos * tp / (tp + FOM_WEIGHT * fp), np.nan)
            has_best = np.isfinite(fom).any(axis=1)
            best = np.where(has_best, np.nanargmax(np.where(has_best[:, None], fom, 0), axis=1), 0)
            rows = np.arange(len(w))
            parts["best_threshold"].append(np.where(has_best, group_thresholds[best], np.nan))
            parts["best_fom"].append(np.where(has_best, fom[rows, best], np.nan))
            for t, k in fixed.items():
                parts["at"][t].append(_stats(*_counts_at(tp, fp, k), n_pos[:, 0], n_neg[:, 0]))
            if grid_index is not None:
                parts["curves"].append(_stats(*_counts_at(tp, fp, grid_index), n_pos, n_neg))
            if fpr_grid is not None:
                tpr = np.c_[np.zeros(len(w)), tp / n_pos]
                fpr = np.c_[np.zeros(len(w)), fp / n_neg]
                parts["roc_tpr"].append(np.array([np.interp(fpr_grid, a, b) if np.isfinite(a[-1])
                                                  and np.isfinite(b[-1]) else
                                                  np.full(len(fpr_grid), np.nan)
                                                  for a, b in zip(fpr, tpr)]))
        if progress is not None:
            progress.update(len(w))
    out = {k: np.concatenate(parts[k]) for k in ("auc", "best_threshold", "best_fom")}
    out["at"] = {t: {k: np.concatenate([d[k] for d in parts["at"][t]]) for k in parts["at"][t][0]}
                 for t in fixed}
    if grid_index is not None:
        out["curves"] = {k: np.concatenate([d[k] for d in parts["curves"]])
                         for k in parts["curves"][0]}
    if fpr_grid is not None:
        out["roc_tpr"] = np.concatenate(parts["roc_tpr"])
    return out


def _counts_at(tp, fp, k):
    """True and false positives called at group index (or indices) k; none called at k = -1."""
    k = np.asarray(k)
    safe = np.maximum(k, 0)
    return np.where(k >= 0, tp[:, safe], 0.0), np.where(k >= 0, fp[:, safe], 0.0)


def _stats(tp, fp, n_pos, n_neg) -> dict:
    """purity, completeness, fom, accuracy from counts (arrays), as ``purity_completeness``,
    ``figure_of_merit`` and ``metrics`` define them for one confusion matrix."""
    with np.errstate(invalid="ignore", divide="ignore"):
        completeness = tp / n_pos
        purity = tp / (tp + fp)
        fom = np.where(tp > 0, completeness * tp / (tp + FOM_WEIGHT * fp), 0.0)
        accuracy = (tp + n_neg - fp) / (n_pos + n_neg)
    return {"purity": purity, "completeness": completeness, "fom": fom, "accuracy": accuracy}


def brier_score(y, p) -> float:
    """Mean squared difference between P(Ia) and the outcome (1 for Ia, 0 otherwise)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return float(np.mean((p - y) ** 2))


def reliability(y, p, n_bins: int = 10) -> dict:
    """The reliability diagram's bins: ``n_bins`` equal-width bins of P(Ia) (scikit-learn's
    ``calibration_curve`` binning: (a, b], the first [0, b]); for each non-empty bin its mean
    P(Ia) (``p_mean``), the fraction of Ia (``fraction_ia``), its objects (``count``), the
    binomial standard error of that fraction (``error``) and its index (``bin``)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], p)
    count = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    full = count > 0
    fraction = sum_y[full] / count[full]
    return {"edges": edges, "p_mean": sum_p[full] / count[full], "fraction_ia": fraction,
            "count": count[full], "error": np.sqrt(fraction * (1 - fraction) / count[full]),
            "bin": np.flatnonzero(full)}


def auc(y, p) -> float:
    """ROC AUC, NaN when only one class is present (it is undefined then)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
