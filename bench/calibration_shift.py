"""Does P(Ia) mean what it says on a survey unlike the training set? Calibration under shift.

    python bench/calibration_shift.py [--checkpoint results/model/student/best.pt]
                                      [--train-store S] [--test-store S] [--draws 5]
                                      [--reobserved]

A model is calibrated (Platt) on its validation split: objects of the training set, bright and
at low redshift, with the training set's Ia share. This script compares, on the development and
the report half of the test example and on the whole, with the Brier score and purity and
completeness at P(Ia) >= 0.5:

- ``validation``: the shipped calibration (the plain validation split);
- ``augmented``: Platt refitted on the validation objects as training augments them (moved to
  higher redshift, thinned, shifted; ``--draws`` draws each), i.e. nearer the faint survey;
- ``re-observed`` (``--reobserved``): Platt refitted on the validation objects re-observed as the
  test set would (``augment.reobserve_probability`` 1 through its schedules, errors and photo-z;
  needs ``snia gp fit`` of the training store);
- ``known share``: the shipped calibration moved to the test set's true Ia share (an oracle:
  what ``--ia-prior`` gives a survey that knows its share);
- ``development half``: Platt refitted on the development half's labels (a survey's own
  spectroscopically confirmed subsample), scored on the report half only;

and for each calibration the Ia share that EM (``snia.calibration.estimate_prior``, Saerens et
al. 2002) estimates from the unlabelled test objects, against the true share.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from stores import REPO, plasticc_store  # bench/stores.py, beside this script


def validation_scores(train_store, checkpoint, draws: int, survey=None):
    """The model's scores and labels on its validation split, plain and as training augments it
    (with ``survey``, re-observed through that store's light curves instead)."""
    import torch

    from snia.inference import p_ia_of
    from snia.parallel import Dist
    from snia.train import TrainConfig, close, open_trainer

    state = torch.load(checkpoint, weights_only=False, map_location="cpu")
    settings = dict(state["train_config"])
    settings.pop("distill", None)  # the split and augmentation only; no teachers needed
    from snia.models.registry import DERIVED_FIELDS

    settings["model"] = {k: v for k, v in settings["model"].items() if k not in DERIVED_FIELDS}
    if survey is not None:
        settings["survey"] = str(survey)
        settings["augment"] = {**settings["augment"], "reobserve_probability": 1.0}
    trainer = open_trainer(train_store, tempfile.mkdtemp(), TrainConfig.from_dict(settings),
                           dist=Dist())
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.model.eval()
        index = trainer.data.val_index

        def scores(train: bool, epoch: int) -> np.ndarray:
            out = []
            with torch.no_grad():
                for a in range(0, len(index), 512):
                    x, s, _ = trainer.data.tensors(index[a:a + 512], epoch, train=train)
                    out.append(p_ia_of(trainer.model(*x, s).float(), trainer.data.classes).numpy())
            return np.concatenate(out)

        labels = trainer.data.labels(index)
        plain = scores(False, 0)
        # epochs past any training run's: augmentation draws the model never trained on
        augmented = np.concatenate([scores(True, 10_000 + k) for k in range(draws)])
        return labels, plain, np.tile(labels, draws), augmented
    finally:
        close(trainer)


def main() -> None:
    from snia.calibration import calibrate, estimate_prior, fit_platt
    from snia.inference import predict_store
    from snia.metrics import auc, brier_score, confusion_at, halves, purity_completeness
    from snia.taxonomy import INDEX

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=REPO / "results/model/student/best.pt")
    ap.add_argument("--train-store")
    ap.add_argument("--test-store")
    ap.add_argument("--draws", type=int, default=5, help="augmentation draws per validation object")
    ap.add_argument("--reobserved", action="store_true",
                    help="also Platt refitted on validation objects re-observed as the test set")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train_store = plasticc_store("plasticc_train", args.train_store, Path(tmp))
        test_store = plasticc_store("plasticc_test", args.test_store, Path(tmp))
        y_val, plain, y_aug, augmented = validation_scores(train_store, args.checkpoint, args.draws)
        reobserved = (validation_scores(train_store, args.checkpoint, args.draws, test_store)[2:]
                      if args.reobserved else None)
        pred = predict_store([args.checkpoint], test_store)
    print(f"validation split: {len(y_val)} objects, Ia share {y_val.mean():.3f}; AUC plain "
          f"{auc(y_val, plain):.4f}, augmented {auc(y_aug, augmented):.4f}")
    y = (pred["type"] == INDEX["Ia"]).astype(int)
    scores = pred["p_ia_uncalibrated"]
    parts = {**halves(pred["object_id"]), "whole": np.ones(len(y), bool)}
    shipped = fit_platt(y_val, plain)
    dev = parts["development"]
    calibrations = {"validation": (shipped, None), "augmented": (fit_platt(y_aug, augmented), None),
                    **({"re-observed": (fit_platt(*reobserved), None)} if reobserved else {}),
                    "known share": (shipped, "true"),
                    "development half": (fit_platt(y[dev], scores[dev], "development half"), None)}
    print("| calibration | part | objects | Ia share | EM estimate | Brier | purity at 0.5 | "
          "completeness at 0.5 |\n|---|---|---|---|---|---|---|---|")
    for label, (calibration, prior) in calibrations.items():
        for name, mask in parts.items():
            if label == "development half" and name != "report":
                continue  # fitted there: only the report half is out of sample
            share = float(y[mask].mean())
            p = calibrate(scores[mask], calibration, share if prior == "true" else None)
            estimate = estimate_prior(calibrate(scores[mask], calibration), calibration["prior"])
            purity, completeness = purity_completeness(confusion_at(y[mask], p, 0.5))
            print(f"| {label} | {name} | {int(mask.sum()):,} | {share:.3f} | "
                  f"{estimate:.3f} | {brier_score(y[mask], p):.4f} | {purity:.3f} | "
                  f"{completeness:.3f} |")


if __name__ == "__main__":
    main()
