"""Baseline: features equal the light-curve package's on the same data; the forest's metrics,
intervals, feature importance and provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("light_curve", reason="light-curve not installed (pip install -e '.[train]')")

from conftest import synthetic_plasticc  # noqa: E402

from snia.baseline import MISSING, extractor, features, run_baseline  # noqa: E402
from snia.ingest import run_ingest  # noqa: E402
from snia.store import Store  # noqa: E402


@pytest.fixture
def stores(tmp_path):
    paths = []
    for name, seed, first in (("train", 41, 1), ("test", 42, 5000)):
        lc, meta, _ = synthetic_plasticc(tmp_path, 60, seed, name=f"{name}.csv", first_id=first)
        run_ingest("plasticc", [lc], tmp_path / f"{name}.h5", [meta], progress=False)
        paths.append(tmp_path / f"{name}.h5")
    return paths


def test_features_are_the_light_curve_package_values(stores):
    ids, x, names, types = features(stores[0], kind="light-curve")
    n = len(extractor().names)  # less the absolute peak time, plus 3 derived per band, 4 scalars
    assert x.shape == (60, 6 * (n - 1) + 6 * 3 + 4) and len(names) == x.shape[1]
    assert not any(name.endswith("bazin_fit_reference_time") for name in names)
    with Store(stores[0]) as store:
        fitted = (x[:, names.index("lsstr_bazin_fit_rise_time")] != MISSING) & (store.objects["hostgal_photoz"] > 0)
        i = int(np.flatnonzero(fitted)[np.argmax(store.objects["length"][fitted])])
        lc = store.lightcurve(int(ids[i]))
        z = float(store.objects["hostgal_photoz"][i])
    peak = lc["flux"].astype(float).max()
    ext = extractor()
    peak_times = {}
    for b, band in enumerate("ugrizy"):
        pick = lc["band"] == b
        got = {name: x[i, names.index(f"lsst{band}_{name}")] for name in ext.names
               if name != "bazin_fit_reference_time"}
        if pick.sum() < 5:
            assert all(v == MISSING for v in got.values())
            continue
        values = ext(lc["time"][pick].astype(float), lc["flux"][pick] / peak,
                     lc["flux_err"][pick].astype(float) / peak, sorted=True, fill_value=MISSING)
        want = dict(zip(ext.names, np.where(np.isfinite(values), values, MISSING)))
        for name, value in got.items():
            assert value == pytest.approx(want[name], rel=1e-9)
        # rest-frame times and the peak time against the other bands', by hand
        for name in ("rise", "fall"):
            t = want[f"bazin_fit_{name}_time"]
            assert x[i, names.index(f"lsst{band}_rest_{name}_time")] == pytest.approx(
                t / (1 + z) if t != MISSING else MISSING, rel=1e-9)
        if want["bazin_fit_reference_time"] != MISSING:
            peak_times[band] = want["bazin_fit_reference_time"]
    assert peak_times  # the object was chosen for a fitted r band
    median = np.median(list(peak_times.values()))
    for band, t in peak_times.items():
        assert x[i, names.index(f"lsst{band}_peak_offset")] == pytest.approx(t - median, abs=1e-6)
    assert x[i, names.index("log10_peak_flux")] == pytest.approx(np.log10(peak))
    # d_L in c/H0 for flat LCDM, Om = 0.3, by scipy's quadrature (the code sums a trapezoid rule)
    from scipy.integrate import quad

    d_l = (1 + z) * quad(lambda s: 1 / np.sqrt(0.3 * (1 + s) ** 3 + 0.7), 0, z)[0]
    assert x[i, names.index("log10_luminosity")] == pytest.approx(np.log10(peak) + 2 * np.log10(d_l), abs=1e-5)
    galactic = np.flatnonzero(x[:, names.index("hostgal_photoz")] == 0)
    assert np.all(x[galactic, names.index("log10_luminosity")] == MISSING)


def test_gp_features_are_those_of_the_stores_fits_and_a_luminosity(stores):
    """The default feature set: each object's GP (fitted as `snia gp fit` fits it) read by
    snia.gp.features, and log10 of its GP peak flux times d_L(z)^2 (by quadrature here)."""
    from scipy.integrate import quad

    from snia.gp.features import gp_features
    from snia.gp.file import default_path, fit_store, observation_wavelengths, read_fits

    ids, x, names, types = features(stores[0])
    assert x.shape == (60, 6 * 11 + 5 * 3 + 7 + 1) and len(names) == x.shape[1]
    fit_store(stores[0], progress=False)
    with Store(stores[0]) as store:
        fits = read_fits(default_path(stores[0]), store)
        batch = store.batch(slice(0, len(store)))
        band_wave = np.array([store.bands.bands[b].wavelength for b in store.bands_present()])
        want = gp_features(batch, observation_wavelengths(store, batch), fits.alpha,
                           fits.objects["time_scale"], fits.objects["peak_time"],
                           fits.settings.wave_scale, band_wave)
        z = store.objects["hostgal_photoz"].astype(float)
        np.testing.assert_array_equal(ids, store.objects["object_id"])
        np.testing.assert_array_equal(types, store.objects["type"])
    np.testing.assert_allclose(x[:, :-1], want, rtol=1e-6, atol=1e-6)
    lum = x[:, names.index("gp_log10_luminosity")]
    peak = x[:, names.index("gp_log10_peak_flux")]
    extragalactic = np.flatnonzero(z > 0)
    assert len(extragalactic) and np.all(lum[z == 0] == MISSING)
    for i in extragalactic[:5]:
        d_l = (1 + z[i]) * quad(lambda s: 1 / np.sqrt(0.3 * (1 + s) ** 3 + 0.7), 0, z[i])[0]
        assert lum[i] == pytest.approx(peak[i] + 2 * np.log10(d_l), abs=1e-5)


def test_an_unknown_feature_set_is_refused_by_name(stores, tmp_path):
    from snia.errors import ConfigError

    with pytest.raises(ConfigError, match="'bazin'.*gp, light-curve"):
        run_baseline(stores[0], stores[1], tmp_path / "rf", n_iter=2, kind="bazin")


def test_random_forest_metrics_and_outputs(stores, tmp_path):
    from snia.metrics import metrics
    from snia.predictions import read_predictions

    out = tmp_path / "rf"
    result = run_baseline(stores[0], stores[1], out, n_iter=2)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n"] == 60 and set(saved["best_params"]) >= {"n_estimators", "max_depth"}
    # the one predictions.csv layout of every classifier, true types included
    assert (out / "predictions.csv").read_text().splitlines()[0] == "object_id,p_ia,true_type"
    pred = read_predictions(out / "predictions.csv")
    with Store(stores[1]) as store:
        y = (store.objects["type"] == 0).astype(int)
        np.testing.assert_array_equal(pred["object_id"], store.objects["object_id"])
        np.testing.assert_array_equal(pred["type"], store.objects["type"])
    assert metrics(y, pred["p_ia"])["auc"] == pytest.approx(result["auc"])
    assert (out / "roc.png").stat().st_size > 5000 and (out / "random_forest.joblib").exists()
    # bootstrap intervals, the feature importance as a plot, and where the numbers come from
    assert saved["intervals"]["resamples"] == 1000 and len(saved["intervals"]["at_0.5"]["purity"]) == 2
    assert (out / "feature_importance.png").stat().st_size > 5000
    prov = saved["provenance"]
    assert prov["train_store"]["objects"] == 60 and sum(prov["train_store"]["class_mix"].values()) == 60
    assert prov["store"]["path"] == str(stores[1]) and prov["model"]["search"]["n_iter"] == 2
    assert prov["model"]["search"]["method"] == "successive halving"
    assert prov["model"]["training"]["wall_s"] > 0 and prov["git_commit"] and prov["hardware"]["cpu"]


def test_the_search_halves_candidates_and_triples_objects():
    """12 candidates on 900 objects: rounds of 12, 4 and 2 candidates on 100, 300 and all 900
    objects (factor 3, the last round on every object), then the best is refitted on all."""
    from sklearn.datasets import make_classification

    from snia.baseline import make_search

    x, y = make_classification(n_samples=900, n_features=6, random_state=1)
    space = {"n_estimators": [5], "min_samples_leaf": [1, 2, 4, 8, 16, 32], "max_depth": [3, None]}
    search = make_search(12, seed=0, space=space).fit(x, y)
    assert list(search.n_candidates_) == [12, 4, 2]
    assert list(search.n_resources_) == [100, 300, 900]
    assert search.best_params_["n_estimators"] == 5 and search.best_score_ > 0.8


def test_the_chosen_forest_on_every_core_is_the_forest_on_one():
    """refit_best fits the search's choice with n_jobs=-1: the same trees as scikit-learn's own
    single-core refit would grow (each tree's splits equal; the forest's mean of the trees'
    probabilities is summed in another order on several cores, so equal to rounding)."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from snia.baseline import make_search, refit_best

    x, y = make_classification(n_samples=300, n_features=6, random_state=2)
    space = {"n_estimators": [7], "min_samples_leaf": [1, 4], "max_depth": [3, None]}
    search = make_search(4, seed=3, space=space).fit(x, y)
    forest = refit_best(search, x, y)
    one_core = RandomForestClassifier(random_state=3, n_jobs=1, **search.best_params_).fit(x, y)
    assert forest.n_jobs == -1 and len(forest.estimators_) == 7
    for mine, theirs in zip(forest.estimators_, one_core.estimators_):
        np.testing.assert_array_equal(mine.tree_.feature, theirs.tree_.feature)
        np.testing.assert_array_equal(mine.tree_.threshold, theirs.tree_.threshold)
    np.testing.assert_allclose(forest.predict_proba(x), one_core.predict_proba(x), rtol=0, atol=1e-12)


def test_the_search_ranks_small_forests_and_the_chosen_one_is_fitted_larger():
    """Trees are not searched (SEARCH_SPACE has no n_estimators): candidates are forests of
    SEARCH_TREES, the chosen one is refitted with FOREST_TREES and its other settings."""
    from sklearn.datasets import make_classification

    from snia.baseline import FOREST_TREES, SEARCH_SPACE, SEARCH_TREES, make_search, refit_best

    assert "n_estimators" not in SEARCH_SPACE and SEARCH_TREES < FOREST_TREES
    x, y = make_classification(n_samples=200, n_features=5, random_state=4)
    search = make_search(2, seed=1, space={"max_depth": [2, 4]}).fit(x, y)
    assert search.estimator.n_estimators == SEARCH_TREES
    assert refit_best(search, x, y).n_estimators == FOREST_TREES
    forest = refit_best(search, x, y, trees=9)
    assert len(forest.estimators_) == 9 and forest.max_depth == search.best_params_["max_depth"]


def test_a_survey_adds_reobserved_copies_to_the_forests_fit(stores, tmp_path):
    """With a survey, the chosen forest is fitted on the training objects and `copies`
    re-observations of each (from the training store's GP fits); the search still ranks forests on
    the training objects alone; the copies come from the survey's schedules, not its labels."""
    from snia.baseline import reobserved_features
    from snia.gp.file import fit_store
    from snia.gp.fit import GPSettings

    fit_store(stores[0], settings=GPSettings(steps=2), progress=False)  # beside it: train.gp.h5
    plain = run_baseline(stores[0], stores[1], tmp_path / "plain", n_iter=2)
    result = run_baseline(stores[0], stores[1], tmp_path / "rf", n_iter=2, survey=stores[1], copies=2)
    training = result["provenance"]["model"]["training"]
    # every labelled training object twice more (a copy keeps its object's label)
    assert training["reobserved"]["copies"] == 2 and training["reobserved"]["rows"] == 2 * training["objects"]
    assert training["reobserved"]["survey"]["path"] == str(stores[1])
    assert plain["provenance"]["model"]["training"]["reobserved"] is None
    assert result["cv_auc"] == pytest.approx(plain["cv_auc"])  # the same search
    assert result["auc"] != plain["auc"]  # a different fit
    # each copy is the re-observation stream's epoch k: copy 0 of two is the single copy
    two, types = reobserved_features(stores[0], stores[1], 2)
    one, _ = reobserved_features(stores[0], stores[1], 1)
    np.testing.assert_array_equal(two[:60], one)
    assert len(two) == 120 and not np.array_equal(two[:60], two[60:])
    # each copy's out-of-fold P(Ia), by object id and copy, with the stream's seed
    from snia.predictions import read_predictions

    held = read_predictions(tmp_path / "rf" / "reobserved_predictions.csv")
    with Store(stores[0]) as store:
        ids, own = store.objects["object_id"], store.objects["type"]
    np.testing.assert_array_equal(held["object_id"], np.tile(ids, 2))
    np.testing.assert_array_equal(held["type"], np.tile(own, 2))  # a copy is of its object's type
    lines = (tmp_path / "rf" / "reobserved_predictions.csv").read_text().splitlines()
    assert lines[0].endswith(",copy,seed") and lines[1].endswith(",0,0") and lines[-1].endswith(",1,0")
    assert not (tmp_path / "plain" / "reobserved_predictions.csv").exists()


def test_each_copy_is_scored_by_a_forest_fitted_without_its_object():
    """Labels no feature explains, and copies identical to their objects: a forest that saw an
    object (or a copy of it) scores its copies by memory, AUC near 1; held_out_copies' forests,
    fitted without it, at chance."""
    from types import SimpleNamespace

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    from snia.baseline import held_out_copies, refit_best
    from snia.taxonomy import INDEX

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4))
    t = np.where(rng.random(300) < 0.5, INDEX["Ia"], INDEX["II"]).astype(np.int8)
    copies, t_copies = np.vstack([x, x]), np.concatenate([t, t])
    search = SimpleNamespace(estimator=RandomForestClassifier(random_state=0),
                             best_params_={"min_samples_leaf": 1})
    y = (t_copies == INDEX["Ia"]).astype(int)
    seen = refit_best(search, np.vstack([x, copies]), np.concatenate([y[:300], y]), trees=20)
    assert roc_auc_score(y, seen.predict_proba(copies)[:, 1]) > 0.99
    held = held_out_copies(search, x, t, copies, t_copies, seed=0)
    assert abs(roc_auc_score(y, held) - 0.5) < 0.1
