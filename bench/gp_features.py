"""Features read off each light curve's GP (``snia.gp.features``, the baseline's ``gp`` kind)
side by side with the light-curve package's (``light-curve``), docs/results.md row 52.

    python bench/gp_features.py [--train STORE] [--test STORE] [--copies 2] [--cache FILE.npz]
                                [--write PREDICTIONS.csv]

The training store needs its GP fits (``snia gp fit STORE``): each training object is also
re-observed ``copies`` times through the test store's schedules (``snia.baseline.
reobserved_features``: the test example's times, bands, errors and photo-z, never its fluxes or
labels); GP features fit every light curve's GP afresh, the copies' too. For each feature set
(light-curve, GP, both) and 0 or ``copies`` copies: gradient-boosted trees (row 47's best
setting) and a fixed random forest (row 38's), AUC on the development half, the report half and
the whole test example. ``--cache``: the features are kept there and read back on a rerun.
``--write``: the model best on the development half writes its P(Ia) of every test object.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

BOOSTED = {"learning_rate": 0.05, "max_iter": 500, "max_leaf_nodes": 31}
FOREST = {"n_estimators": 400, "min_samples_leaf": 2, "max_features": 0.3, "max_depth": 24,
          "class_weight": "balanced"}


def feature_sets(train, test, copies: int, seed: int) -> dict:
    """Both feature kinds of the training store, its copies and the test store (one array each)."""
    from snia.baseline import features, reobserved_features

    data = {}
    for kind, key in (("light-curve", "b"), ("gp", "g")):
        _, data[f"x{key}_train"], _, data["t_train"] = features(train, kind=kind)
        data["ids"], data[f"x{key}_test"], _, data["t_test"] = features(test, kind=kind)
        data[f"x{key}_copy"], data["t_copy"] = reobserved_features(train, test, copies, seed, kind=kind)
    return data


def models(seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    return {"boosted trees": HistGradientBoostingClassifier(**BOOSTED, class_weight="balanced",
                                                            random_state=seed),
            "random forest": RandomForestClassifier(**FOREST, n_jobs=-1, random_state=seed)}


def main() -> None:
    from snia.baseline import MISSING
    from snia.metrics import auc, halves
    from snia.predictions import write_predictions
    from snia.taxonomy import INDEX

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="results/stores/plasticc_train.h5")
    ap.add_argument("--test", default="results/stores/plasticc_test.h5")
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", help="an .npz the features are kept in (read when it exists)")
    ap.add_argument("--write", help="the best on the development half writes its P(Ia) here")
    args = ap.parse_args()

    start = time.perf_counter()
    if args.cache and Path(args.cache).is_file():
        data = dict(np.load(args.cache))
    else:
        data = feature_sets(args.train, args.test, args.copies, args.seed)
        if args.cache:
            np.savez(args.cache, **data)
    print(f"features: {time.perf_counter() - start:.0f} s ({len(data['t_train'])} training objects, "
          f"{len(data['t_copy'])} re-observed rows)", flush=True)
    ids, t_test = data["ids"], data["t_test"]
    labelled = t_test != INDEX["unknown"]
    y = (t_test[labelled] == INDEX["Ia"]).astype(int)
    parts = halves(ids[labelled])
    dev, rep = parts["development"], parts["report"]
    as_nan = lambda a: np.where(a == MISSING, np.nan, a)  # noqa: E731
    sets = {"light-curve": lambda p: data[f"xb_{p}"], "GP": lambda p: data[f"xg_{p}"],
            "both": lambda p: np.hstack([data[f"xb_{p}"], data[f"xg_{p}"]])}
    n = len(data["t_train"])
    print("| model | features | copies | AUC dev | AUC report | AUC whole | seconds |\n"
          "|---|---|---|---|---|---|---|")
    best, best_auc = None, -1.0
    for copies in sorted({0, args.copies}):
        for name, columns in sets.items():
            x = np.vstack([columns("train"), columns("copy")[:copies * n]])
            t = np.concatenate([data["t_train"], data["t_copy"][:copies * n]])
            known = t != INDEX["unknown"]
            for kind, model in models(args.seed).items():
                began = time.perf_counter()
                as_input = as_nan if kind == "boosted trees" else (lambda a: a)
                model.fit(as_input(x[known]), (t[known] == INDEX["Ia"]).astype(int))
                p_all = model.predict_proba(as_input(columns("test")))[:, 1]
                p = p_all[labelled]
                print(f"| {kind} | {name} | {copies} | {auc(y[dev], p[dev]):.3f} | "
                      f"{auc(y[rep], p[rep]):.3f} | {auc(y, p):.3f} | {time.perf_counter() - began:.0f} |",
                      flush=True)
                if auc(y[dev], p[dev]) > best_auc:
                    best, best_auc = p_all, auc(y[dev], p[dev])
    if args.write:
        write_predictions(args.write, ids, best, t_test)
        print(f"the best on the development half's P(Ia): {args.write}")


if __name__ == "__main__":
    main()
