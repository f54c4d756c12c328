"""The random forest's hyper-parameter search, side by side: today's randomised search against
successive halving (scikit-learn's HalvingRandomSearchCV), in one run on this machine.

    python bench/rf_search.py [--train STORE] [--test STORE] [--seed 0] [--halving-candidates 12 24]

Prints one row per search: wall time of the search and refit (features excluded, computed once),
its ratio to the randomised search, the cross-validated AUC of the chosen forest, and the AUC on
the test store's development and report halves (snia.metrics.halves) and on the whole. The
choice between searches is made on the cross-validated AUC and the time; the test columns are
there to show the choice does not cost on data the search never saw.
"""

from __future__ import annotations

import argparse
import time


def searches(seed: int, halving_candidates: list[int]):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import RandomizedSearchCV

    from snia.baseline import SEARCH_SPACE, make_search

    forest = RandomForestClassifier(random_state=seed)
    yield "randomised, 12 x 3 folds", RandomizedSearchCV(
        forest, SEARCH_SPACE, n_iter=12, cv=3, scoring="roc_auc", random_state=seed, n_jobs=-1)
    for n in halving_candidates:  # as snia.baseline runs it: the chosen forest refitted on every core
        yield f"halving, {n} candidates (factor 3)", make_search(n, seed)


def main() -> None:
    from snia.baseline import features, refit_best
    from snia.metrics import auc, halves
    from snia.taxonomy import INDEX

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default="results/stores/plasticc_train.h5")
    ap.add_argument("--test", default="results/stores/plasticc_test.h5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--halving-candidates", type=int, nargs="+", default=[12],
                    help="one halving search per number of candidates (default: 12, as snia ships)")
    args = ap.parse_args()

    _, x_train, _, t_train = features(args.train)
    known = t_train != INDEX["unknown"]
    x_train, y_train = x_train[known], (t_train[known] == INDEX["Ia"]).astype(int)
    ids, x_test, _, t_test = features(args.test)
    labelled = t_test != INDEX["unknown"]
    ids, x_test = ids[labelled], x_test[labelled]
    y_test = (t_test[labelled] == INDEX["Ia"]).astype(int)
    parts = halves(ids)

    print(f"training objects {len(y_train)}, test objects {len(y_test)}")
    print("| search | wall s | ratio | CV AUC | dev AUC | report AUC | all AUC | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    reference = None
    for name, search in searches(args.seed, args.halving_candidates):
        start = time.perf_counter()
        search.fit(x_train, y_train)
        forest = search.best_estimator_ if search.refit else refit_best(search, x_train, y_train)
        wall = time.perf_counter() - start
        reference = reference or wall
        p = forest.predict_proba(x_test)[:, 1]
        row = [auc(y_test[m], p[m]) for m in (parts["development"], parts["report"])]
        print(f"| {name} | {wall:.0f} | {wall / reference:.2f} | {search.best_score_:.3f} | "
              f"{row[0]:.3f} | {row[1]:.3f} | {auc(y_test, p):.3f} | {search.best_params_} |",
              flush=True)


if __name__ == "__main__":
    main()
