"""The random forest trained on re-observed light curves (docs/results.md, row 38), side by side.

    python bench/forest_reobserved.py [--train STORE] [--test STORE] [--copies 0 1 4]
                                      [--cnn PREDICTIONS.csv] [--boosted [PREDICTIONS.csv]]

For each number of copies: the baseline's features of the training store plus that many
re-observations of each training object through the test store's schedules
(``snia.baseline.reobserved_features``: times, bands, flux errors and photo-z of the test
example's light curves; never their fluxes or labels), one fixed forest (the one the baseline's
search chose on PLAsTiCC, so rows differ only in their training data), AUC on the development
half, the report half and the whole test example (``snia.metrics.halves``). With ``--cnn``
(a predictions.csv of the test store, e.g. results/evaluate/plasticc_test/predictions.csv), also
the rank average of the CNN and each forest at the weight best on the development half. Needs
the training store's GP fits (``snia gp fit``, the workflow's gp_fit rule).

``--boosted`` (row 47): gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier,
the baseline's features with their missing values as NaN) in place of the forest, on the largest
number of copies, for each of ``BOOSTED``; with a path, the one best on the development half
writes its P(Ia) of every test object there (a predictions.csv, e.g. a student's
``distill.survey_predictions``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

FOREST = {"n_estimators": 400, "min_samples_leaf": 2, "max_features": 0.3, "max_depth": 24,
          "class_weight": "balanced"}
BOOSTED = [{"learning_rate": 0.05, "max_iter": 500, "max_leaf_nodes": 31},
           {"learning_rate": 0.1, "max_iter": 300, "max_leaf_nodes": 31},
           {"learning_rate": 0.05, "max_iter": 1000, "max_leaf_nodes": 15}]


def main() -> None:
    from scipy.stats import rankdata
    from sklearn.ensemble import RandomForestClassifier

    from snia.baseline import features, reobserved_features
    from snia.metrics import auc, halves
    from snia.predictions import read_predictions
    from snia.taxonomy import INDEX

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="results/stores/plasticc_train.h5")
    ap.add_argument("--test", default="results/stores/plasticc_test.h5")
    ap.add_argument("--copies", type=int, nargs="+", default=[0, 1, 4])
    ap.add_argument("--cnn", help="the CNN's predictions.csv on the test store (for the blend)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boosted", nargs="?", const="", metavar="PREDICTIONS.csv",
                    help="also gradient-boosted trees; with a path, write the best one's P(Ia)")
    args = ap.parse_args()

    start = time.perf_counter()
    _, x_train, _, t_train = features(args.train)
    ids, x_test, _, t_test = features(args.test)
    x_copies, t_copies = reobserved_features(args.train, args.test, max(args.copies), args.seed)
    print(f"features: {time.perf_counter() - start:.0f} s ({len(x_train)} training objects, "
          f"{len(x_copies)} re-observed rows)", flush=True)
    labelled = t_test != INDEX["unknown"]
    y = (t_test[labelled] == INDEX["Ia"]).astype(int)
    parts = halves(ids[labelled])
    dev, rep = parts["development"], parts["report"]
    cnn = None
    if args.cnn:
        pred = read_predictions(args.cnn)
        where = {int(i): k for k, i in enumerate(pred["object_id"])}
        cnn = pred["p_ia"][[where[int(i)] for i in ids[labelled]]]

    def row(name, p):
        print(f"| {name} | {auc(y[dev], p[dev]):.3f} | {auc(y[rep], p[rep]):.3f} | {auc(y, p):.3f} |",
              flush=True)

    print("| forest trained on | AUC dev | AUC report | AUC whole |\n|---|---|---|---|")
    if cnn is not None:
        row("(the CNN alone)", cnn)
    n = len(x_train)

    def with_copies(copies):
        """The training rows and their types, with that many re-observed copies of each."""
        return (np.vstack([x_train, x_copies[:copies * n]]),
                np.concatenate([t_train, t_copies[:copies * n]]))

    for copies in args.copies:
        x, t = with_copies(copies)
        known = t != INDEX["unknown"]
        forest = RandomForestClassifier(**FOREST, n_jobs=-1, random_state=args.seed)
        forest.fit(x[known], (t[known] == INDEX["Ia"]).astype(int))
        p = forest.predict_proba(x_test[labelled])[:, 1]
        name = "the training set" + (f" + {copies} re-observed copies" if copies else "")
        row(name, p)
        if cnn is not None:
            blends = {w: w * rankdata(p) + (1 - w) * rankdata(cnn) for w in np.arange(0.1, 0.6, 0.1)}
            best = max(blends, key=lambda w: auc(y[dev], blends[w][dev]))
            row(f"CNN + that forest, rank average at {best:.1f} (chosen on dev)", blends[best])
    if args.boosted is not None:
        boosted(*with_copies(max(args.copies)), x_test, t_test, ids, labelled, y, dev, row, args)


def boosted(x, t, x_test, t_test, ids, labelled, y, dev, row, args) -> None:
    """Each of BOOSTED fitted on (x, t); the one best on the development half (``dev`` of the
    labelled test objects, whose Ia labels are ``y``) written if asked."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from snia.baseline import MISSING
    from snia.metrics import auc
    from snia.predictions import write_predictions
    from snia.taxonomy import INDEX

    known = t != INDEX["unknown"]
    as_nan = lambda a: np.where(a == MISSING, np.nan, a)  # noqa: E731
    best, best_auc = None, -1.0
    for setting in BOOSTED:
        start = time.perf_counter()
        model = HistGradientBoostingClassifier(**setting, class_weight="balanced",
                                               random_state=args.seed)
        model.fit(as_nan(x[known]), (t[known] == INDEX["Ia"]).astype(int))
        p_all = model.predict_proba(as_nan(x_test))[:, 1]
        row(f"boosted trees {setting} ({time.perf_counter() - start:.0f} s)", p_all[labelled])
        dev_auc = auc(y[dev], p_all[labelled][dev])
        if dev_auc > best_auc:
            best, best_auc = p_all, dev_auc
    if args.boosted:
        write_predictions(args.boosted, ids, best, t_test)
        print(f"the best on the development half's P(Ia): {args.boosted}")


if __name__ == "__main__":
    main()
