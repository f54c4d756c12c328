"""The baseline: an optimised random forest on extracted light-curve features.

Features per band from the ``light-curve`` package (amplitude, a Bazin fit, a linear fit, Stetson
K, the fraction beyond 1 std, skewness, the maximum slope, reduced chi2) on fluxes divided by the
object's peak flux, plus host photo-z, its error and log10 of the peak flux. A random forest is tuned
by a cross-validated search on AUC over random candidates, by successive halving (each round keeps
the best third of the candidates and triples their training objects, the last round on all of
them), and judged with the same metrics as the CNN.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from snia.files import write_text_atomic
from snia.metrics import metrics
from snia.plots import plot_feature_importance, plot_purity_completeness, plot_roc
from snia.predictions import write_predictions
from snia.provenance import describe_store, environment
from snia.store import Store
from snia.taxonomy import INDEX

log = logging.getLogger(__name__)

MIN_POINTS = 5  # fewer observations in a band: its features are missing
MISSING = -999.0  # what the forest sees for a missing feature

SEARCH_SPACE = {
    "n_estimators": [200, 400],
    "max_depth": [None, 12, 24],
    "min_samples_leaf": [1, 2, 4, 8],
    "max_features": ["sqrt", 0.3, 0.5],
    "class_weight": ["balanced", None],
}


CV_FOLDS = 3
HALVING_FACTOR = 3


def make_search(n_candidates: int = 12, seed: int = 0, space: dict | None = None):
    """The forest's hyper-parameter search: ``n_candidates`` random draws from SEARCH_SPACE, 3-fold
    cross-validated AUC, successive halving from a ninth of the training objects (for 12
    candidates) to all of them. Side by side with the randomised search of every candidate on
    every object, it chose a forest of the same test AUC in a fraction of the time
    (``bench/rf_search.py``, docs/results.md)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (still experimental)
    from sklearn.model_selection import HalvingRandomSearchCV

    # min_resources="exhaust": the first round uses as many objects as lets the last one use all
    # (scikit-learn's default starts from a dozen objects, too few to rank forests)
    # refit=False: the chosen forest is fitted on every core by refit_best (the search's own
    # refit runs in this process on one)
    return HalvingRandomSearchCV(RandomForestClassifier(random_state=seed), space or SEARCH_SPACE,
                                 n_candidates=n_candidates, factor=HALVING_FACTOR,
                                 min_resources="exhaust", cv=CV_FOLDS, scoring="roc_auc",
                                 random_state=seed, n_jobs=-1, refit=False)


def refit_best(search, x, y):
    """The chosen forest fitted on all of ``x`` with every core (the same forest as on one:
    each tree's draws come from the forest's random_state, not from the worker)."""
    from sklearn.base import clone

    return clone(search.estimator).set_params(**search.best_params_, n_jobs=-1).fit(x, y)


def extractor():
    import light_curve as lcf

    return lcf.Extractor(lcf.Amplitude(), lcf.BazinFit("lmsder"), lcf.LinearFit(), lcf.StetsonK(),
                         lcf.BeyondNStd(1.0), lcf.Skew(), lcf.MaximumSlope(), lcf.ReducedChi2())


def features(store_path, batch_size: int = 4096):
    """(object ids, feature matrix, feature names, types) for every object of a store."""
    ext = extractor()
    ids, rows, types = [], [], []
    with Store(store_path) as store:
        bands = list(store.bands_present())
        names = [f"{store.bands.bands[b].name}_{n}" for b in bands for n in ext.names]
        names += ["hostgal_photoz", "hostgal_photoz_err", "log10_peak_flux"]
        for batch in store.iter_batches(batch_size):
            rows.append(_batch_features(ext, batch, bands))
            ids.append(batch.object_id)
            types.append(batch.meta["type"])
    return np.concatenate(ids), np.concatenate(rows), names, np.concatenate(types)


def _batch_features(ext, batch, bands) -> np.ndarray:
    n_feat = len(ext.names)
    out = np.full((len(batch), len(bands) * n_feat + 3), MISSING)
    for i in range(len(batch)):
        lc = batch.lightcurve(i)
        f = lc["flux"].astype(np.float64)
        peak = f.max() if len(f) and f.max() > 0 else 1.0
        for k, b in enumerate(bands):
            pick = lc["band"] == b
            if pick.sum() < MIN_POINTS:
                continue
            t = lc["time"][pick].astype(np.float64)
            if np.any(np.diff(t) <= 0):  # light-curve needs strictly increasing times
                t = t + np.arange(len(t)) * 1e-6
            with np.errstate(all="ignore"):
                values = ext(t, f[pick] / peak, lc["flux_err"][pick].astype(np.float64) / peak,
                             sorted=True, fill_value=MISSING)
            out[i, k * n_feat:(k + 1) * n_feat] = np.where(np.isfinite(values), values, MISSING)
        z, ze = batch.meta["hostgal_photoz"][i], batch.meta["hostgal_photoz_err"][i]
        out[i, -3:] = [z if np.isfinite(z) else MISSING, ze if np.isfinite(ze) else MISSING,
                       np.log10(max(peak, 1e-3))]
    return out


def run_baseline(train_store, test_store, out_dir, n_iter: int = 12, seed: int = 0) -> dict:
    """Tune a random forest on the training store, evaluate on the test store: metrics.json
    (with ``provenance``: the environment, both data sets, the search and its wall time),
    predictions.csv, feature_importance.txt/.png, the forest (random_forest.joblib), plots."""
    import joblib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _, x_train, names, t_train = features(train_store)
    known = t_train != INDEX["unknown"]
    y_train = (t_train[known] == INDEX["Ia"]).astype(int)
    search = make_search(n_iter, seed)
    search.fit(x_train[known], y_train)
    forest = refit_best(search, x_train[known], y_train)
    wall_s = time.perf_counter() - start  # features of the training set, the search and the refit
    ids, x_test, _, t_test = features(test_store)
    labelled = t_test != INDEX["unknown"]
    p = forest.predict_proba(x_test)[:, 1]
    y = (t_test[labelled] == INDEX["Ia"]).astype(int)
    result = metrics(y, p[labelled])
    result["best_params"] = {k: v for k, v in search.best_params_.items()}
    result["cv_auc"] = float(search.best_score_)
    result["provenance"] = {
        **environment(), "store": describe_store(test_store), "train_store": describe_store(train_store),
        "model": {"path": str(out / "random_forest.joblib"), "kind": "random forest",
                  "search": {"n_iter": n_iter, "method": "successive halving",
                             "factor": HALVING_FACTOR, "rounds": int(search.n_iterations_),
                             "cv": CV_FOLDS, "scoring": "roc_auc", "seed": seed},
                  "training": {"wall_s": wall_s, "objects": int(known.sum())}}}
    write_text_atomic(out / "metrics.json", json.dumps(result, indent=2, default=str))
    write_predictions(out / "predictions.csv", ids, p, t_test)
    importance = sorted(zip(forest.feature_importances_, names), reverse=True)
    write_text_atomic(out / "feature_importance.txt",
                      "\n".join(f"{v:.4f} {n}" for v, n in importance) + "\n")
    plot_feature_importance(importance, out / "feature_importance.png")
    joblib.dump(forest, out / "random_forest.joblib")
    plot_roc({"random forest": (y, p[labelled])}, out / "roc.png")
    plot_purity_completeness(y, p[labelled], out / "purity_completeness.png")
    return result
