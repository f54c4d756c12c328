"""The baseline: an optimised random forest on extracted light-curve features.

Two feature sets (``kind``). ``gp`` (the default): each light curve's GP in time x wavelength
(``snia.gp.fit``, fitted here in batches) read in every band on a rest-frame grid around its peak
(``snia.gp.features``) and log10 of its peak flux times d_L(z)^2: on the PLAsTiCC test example it
lifted the forest's AUC from 0.879 to 0.944 on the development half (docs/results.md row 52).
``light-curve``: the ``light-curve`` package's features per band (amplitude, a Bazin fit without
its absolute peak time, a linear fit, Stetson K, beyond 1 std, skewness, maximum slope, reduced
chi2) on fluxes over the peak flux; each band's rest-frame Bazin rise and fall times and peak
time less the median over bands; host photo-z, its error, log10 of the peak flux and a
luminosity. A random forest is tuned by a cross-validated search on AUC over random candidates,
by successive halving (each round keeps the best third of the candidates and triples their
training objects), and judged with the same metrics as the CNN.

With a survey (``survey=``), the chosen forest is then fitted on the training objects together
with ``copies`` re-observations of each as the survey would see it (``snia.augment.reobserve``:
never the survey's fluxes or labels), Avocado's recipe: +0.05 AUC on the PLAsTiCC test example
(docs/results.md row 38); and each copy is scored by a forest fitted without its object
(reobserved_predictions.csv, for ``snia.train.blend``). The search itself runs on the training
objects only: copies of one object in two folds would score a forest on objects it was fitted on.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from snia.errors import ConfigError
from snia.files import write_text_atomic
from snia.gp.features import MISSING  # what the forest sees for a missing feature, in both feature sets
from snia.metrics import metrics
from snia.plots import plot_feature_importance, plot_purity_completeness, plot_roc
from snia.predictions import write_predictions
from snia.provenance import describe_store, environment
from snia.store import Store
from snia.taxonomy import INDEX

log = logging.getLogger(__name__)

MIN_POINTS = 5  # fewer observations in a band: its features are missing
FEATURE_KINDS = ("gp", "light-curve")

SEARCH_SPACE = {
    "max_depth": [None, 12, 24],
    "min_samples_leaf": [1, 2, 4, 8],
    "max_features": ["sqrt", 0.3, 0.5],
    "class_weight": ["balanced", None],
}


CV_FOLDS = 3
HALVING_FACTOR = 3
# Trees are not searched: more only average more, so a search over their number picks the most.
# The search ranks forests of SEARCH_TREES (the other settings rank alike), and the chosen one is
# fitted with FOREST_TREES. Against searching 200 or 400 trees and fitting 400, this chose a
# forest of the same AUC on the development half in a third of the time (docs/results.md row 42).
SEARCH_TREES = 100
FOREST_TREES = 200


def make_search(n_candidates: int = 12, seed: int = 0, space: dict | None = None):
    """The forest's search: ``n_candidates`` draws from SEARCH_SPACE, forests of SEARCH_TREES,
    3-fold cross-validated AUC, successive halving from a ninth of the training objects (for 12
    candidates) to all: the test AUC of a full search in a fraction of the time (bench/rf_search.py)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (still experimental)
    from sklearn.model_selection import HalvingRandomSearchCV

    # min_resources="exhaust": the first round uses as many objects as lets the last one use all
    # (scikit-learn's default starts from a dozen objects, too few to rank forests)
    # refit=False: the chosen forest is fitted on every core by refit_best (the search's own
    # refit runs in this process on one)
    forest = RandomForestClassifier(n_estimators=SEARCH_TREES, random_state=seed)
    return HalvingRandomSearchCV(forest, space or SEARCH_SPACE,
                                 n_candidates=n_candidates, factor=HALVING_FACTOR,
                                 min_resources="exhaust", cv=CV_FOLDS, scoring="roc_auc",
                                 random_state=seed, n_jobs=-1, refit=False)


def refit_best(search, x, y, trees: int = FOREST_TREES):
    """The chosen forest, of ``trees`` trees (or the number the search chose, where its space had
    one), fitted on all of ``x`` with every core (the same forest as on one: each tree's draws
    come from the forest's random_state, not from the worker)."""
    from sklearn.base import clone

    params = {"n_estimators": trees, **search.best_params_, "n_jobs": -1}
    return clone(search.estimator).set_params(**params).fit(x, y)


def held_out_copies(search, x_train, t_train, x_copies, t_copies, seed: int = 0) -> np.ndarray:
    """The chosen forest's P(Ia) on each re-observed copy (``x_copies``: copy-major, the training
    objects' order), each from a forest fitted without the copy's object: CV_FOLDS folds of
    objects, each forest (of SEARCH_TREES) fitted on the other folds' objects and their copies."""
    n = len(x_train)
    fold = np.random.default_rng(seed).permutation(n) % CV_FOLDS
    copy_fold = np.tile(fold, len(x_copies) // n) if n else fold
    p = np.full(len(x_copies), np.nan)
    for f in range(CV_FOLDS):
        x = np.vstack([x_train[fold != f], x_copies[copy_fold != f]])
        t = np.concatenate([t_train[fold != f], t_copies[copy_fold != f]])
        known = t != INDEX["unknown"]
        forest = refit_best(search, x[known], (t[known] == INDEX["Ia"]).astype(int), SEARCH_TREES)
        if (copy_fold == f).any():
            p[copy_fold == f] = forest.predict_proba(x_copies[copy_fold == f])[:, 1]
    return p


def extractor():
    import light_curve as lcf

    return lcf.Extractor(lcf.Amplitude(), lcf.BazinFit("lmsder"), lcf.LinearFit(), lcf.StetsonK(),
                         lcf.BeyondNStd(1.0), lcf.Skew(), lcf.MaximumSlope(), lcf.ReducedChi2())


BAZIN = ("bazin_fit_rise_time", "bazin_fit_fall_time", "bazin_fit_reference_time")
SCALARS = ["hostgal_photoz", "hostgal_photoz_err", "log10_peak_flux", "log10_luminosity"]


def feature_names(ext, band_names) -> list[str]:
    """Column names of the ``light-curve`` features: per band the extractor's features less the
    absolute peak time, then per band the rest-frame rise and fall times and the peak time
    offset, then SCALARS."""
    kept = [n for n in ext.names if n != "bazin_fit_reference_time"]
    names = [f"{b}_{n}" for b in band_names for n in kept]
    for derived in ("rest_rise_time", "rest_fall_time", "peak_offset"):
        names += [f"{b}_{derived}" for b in band_names]
    return names + SCALARS


class FeatureMaker:
    """The rows of one feature set (``kind``, one of FEATURE_KINDS) for batches of a store's
    light curves (or of their re-observations, whose bands are the store's)."""

    def __init__(self, kind: str, store: Store):
        if kind not in FEATURE_KINDS:
            raise ConfigError(f"baseline features: {kind!r} is not one of {', '.join(FEATURE_KINDS)}")
        self.kind, self.store = kind, store
        self.bands = list(store.bands_present())
        band_names = [store.bands.bands[b].name for b in self.bands]
        if kind == "gp":
            from snia.gp import features as gp_features
            from snia.gp.fit import GPSettings

            self.settings = GPSettings()
            self.band_wave = np.array([store.bands.bands[b].wavelength for b in self.bands])
            self.names = gp_features.feature_names(band_names) + ["gp_log10_luminosity"]
        else:
            self.ext = extractor()
            self.names = feature_names(self.ext, band_names)

    def rows(self, batch) -> np.ndarray:
        if self.kind == "light-curve":
            return _batch_features(self.ext, batch, self.bands)
        from snia.gp import features as gp_features
        from snia.gp.file import observation_wavelengths
        from snia.gp.fit import fit_batch

        wave = observation_wavelengths(self.store, batch)
        fit = fit_batch(batch, wave, self.settings)
        x = gp_features.gp_features(batch, wave, fit["alpha"], fit["time_scale"], fit["peak_time"],
                                    self.settings.wave_scale, self.band_wave)
        peak = x[:, self.names.index("gp_log10_peak_flux")]
        z = np.asarray(batch.meta["hostgal_photoz"], dtype=np.float64)
        luminosity = [_log10_luminosity(10.0 ** p, zi) if p != MISSING else MISSING
                      for p, zi in zip(peak, z)]
        return np.hstack([x, np.array(luminosity)[:, None]])


def features(store_path, batch_size: int = 4096, kind: str = "gp"):
    """(object ids, feature matrix, feature names, types) for every object of a store."""
    ids, rows, types = [], [], []
    with Store(store_path) as store:
        maker = FeatureMaker(kind, store)
        for batch in store.iter_batches(batch_size):
            rows.append(maker.rows(batch))
            ids.append(batch.object_id)
            types.append(batch.meta["type"])
    return np.concatenate(ids), np.concatenate(rows), maker.names, np.concatenate(types)


def reobserved_features(train_store, survey_store, copies: int, seed: int = 0,
                        batch_size: int = 1024, kind: str = "gp"):
    """(feature matrix, types) of ``copies`` re-observations of every training object through the
    survey's schedules (copy k: epoch k of the re-observation stream), from the training store's
    GP fits (``snia gp fit``). An object without a fit, or with no draw the survey would detect,
    keeps its own light curve in that copy. GP features fit each copy's GP afresh, as the
    survey's own light curves are."""
    from snia.augment.reobserve import GPCurves, Schedules, reobserved_copy
    from snia.gp.file import default_path, read_fits

    rows, types = [], []
    with Store(train_store) as train, Store(survey_store) as survey:
        maker = FeatureMaker(kind, train)  # the columns of ``features`` of the training store
        curves = GPCurves.from_fits(train, read_fits(default_path(train.path), train))
        schedules = Schedules.from_store(survey, seed=seed)  # times, bands, errors, photo-z only
        wave = np.array([b.wavelength for b in train.bands.bands], dtype=np.float64)
        for copy in range(copies):
            for start in range(0, len(train), batch_size):
                index = np.arange(start, min(start + batch_size, len(train)))
                batch = reobserved_copy(train.batch(index), index, copy, seed, curves, schedules, wave)
                rows.append(maker.rows(batch))
                types.append(batch.meta["type"])
    return (np.concatenate(rows) if rows else np.empty((0, len(maker.names))),
            np.concatenate(types) if types else np.empty(0, np.int8))


def _batch_features(ext, batch, bands) -> np.ndarray:
    names = list(ext.names)
    n_feat, nb = len(names), len(bands)
    rise, fall, ref = (names.index(n) for n in BAZIN)
    per_band = np.full((len(batch), nb, n_feat), MISSING)
    scalars = np.full((len(batch), len(SCALARS)), MISSING)
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
            per_band[i, k] = np.where(np.isfinite(values), values, MISSING)
        z, ze = float(batch.meta["hostgal_photoz"][i]), float(batch.meta["hostgal_photoz_err"][i])
        scalars[i] = [z if np.isfinite(z) else MISSING, ze if np.isfinite(ze) else MISSING,
                      np.log10(max(peak, 1e-3)), _log10_luminosity(peak, z)]
    z = np.where(scalars[:, :1] > 0, scalars[:, :1], 0.0)  # galactic, unknown: no stretch
    present = per_band[:, :, ref] != MISSING
    peaks = np.where(present, per_band[:, :, ref], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an object with no fitted band
        median = np.nanmedian(peaks, axis=1, keepdims=True)
    derived = [np.where(per_band[:, :, col] != MISSING, per_band[:, :, col] / (1 + z), MISSING)
               for col in (rise, fall)]
    derived.append(np.where(present, peaks - median, MISSING))
    kept = np.delete(per_band, ref, axis=2).reshape(len(batch), -1)
    return np.hstack([kept, *derived, scalars])


def _log10_luminosity(peak: float, z: float) -> float:
    """log10(peak flux x d_L(z)^2), d_L in units of c/H0: a brightness that does not fall with distance
    (MISSING for galactic objects, z = 0, or an unknown redshift)."""
    from snia.augment.reference import luminosity_distance

    if not (np.isfinite(z) and z > 0):
        return MISSING
    return float(np.log10(max(peak, 1e-3)) + 2 * np.log10(luminosity_distance(z)))


def run_baseline(train_store, test_store, out_dir, n_iter: int = 12, seed: int = 0,
                 survey=None, copies: int = 2, kind: str = "gp") -> dict:
    """Tune a random forest on the training store, evaluate on the test store: metrics.json
    (with ``provenance``: the environment, both data sets, the search and its wall time),
    predictions.csv, feature_importance.txt/.png, the forest (random_forest.joblib), plots. With
    a ``survey`` store, the chosen forest is fitted on the training objects and ``copies``
    re-observations of each through the survey's schedules (the training store's GP fits needed),
    and reobserved_predictions.csv is written (held_out_copies). ``kind``: FEATURE_KINDS."""
    import joblib

    if copies < 0:
        raise ConfigError(f"copies (re-observations of each training object) must be >= 0, not {copies}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ids_train, x_train, names, t_train = features(train_store, kind=kind)
    known = t_train != INDEX["unknown"]
    y_train = (t_train[known] == INDEX["Ia"]).astype(int)
    search = make_search(n_iter, seed)
    search.fit(x_train[known], y_train)
    x_fit, t_fit = x_train, t_train
    if survey is not None and copies > 0:
        x_copies, t_copies = reobserved_features(train_store, survey, copies, seed, kind=kind)
        x_fit, t_fit = np.vstack([x_train, x_copies]), np.concatenate([t_train, t_copies])
        log.info("forest fitted on %d training objects and %d re-observed copies through %s",
                 len(x_train), len(x_copies), survey)
        write_predictions(out / "reobserved_predictions.csv", np.tile(ids_train, copies),
                          held_out_copies(search, x_train, t_train, x_copies, t_copies, seed),
                          t_copies, extra={"copy": np.repeat(np.arange(copies), len(ids_train)),
                                           "seed": np.full(len(x_copies), seed)})
    fit = t_fit != INDEX["unknown"]
    forest = refit_best(search, x_fit[fit], (t_fit[fit] == INDEX["Ia"]).astype(int))
    wall_s = time.perf_counter() - start  # features, the search and the fit
    ids, x_test, _, t_test = features(test_store, kind=kind)
    labelled = t_test != INDEX["unknown"]
    p = forest.predict_proba(x_test)[:, 1]
    y = (t_test[labelled] == INDEX["Ia"]).astype(int)
    result = metrics(y, p[labelled])
    result["best_params"] = {**search.best_params_, "n_estimators": forest.n_estimators}
    result["cv_auc"] = float(search.best_score_)
    result["provenance"] = {
        **environment(), "store": describe_store(test_store), "train_store": describe_store(train_store),
        "model": {"path": str(out / "random_forest.joblib"), "kind": "random forest",
                  "features": kind,
                  "search": {"n_iter": n_iter, "method": "successive halving",
                             "trees": search.estimator.n_estimators,
                             "factor": HALVING_FACTOR, "rounds": int(search.n_iterations_),
                             "cv": CV_FOLDS, "scoring": "roc_auc", "seed": seed},
                  "training": {"wall_s": wall_s, "objects": int(known.sum()),
                               "reobserved": {"survey": describe_store(survey), "copies": copies,
                                              "rows": int(fit.sum() - known.sum())}
                               if survey is not None and copies > 0 else None}}}
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
