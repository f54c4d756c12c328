"""Test-time augmentation (docs/results.md row 48): a model's P(Ia) averaged over K augmented
views of each test light curve, side by side with the plain pass, AUC on the development half,
the report half and the whole test example.

    python bench/tta.py CHECKPOINT STORE [--views 8] [--drop-fraction 0.3]

The views are the augmentation the student saw on the survey's light curves (time shift and
dropped points, no move to another redshift: ``snia.train.survey``), keyed by object id like
training's; the mean is taken of logits (of the uncalibrated scores), with and without the
plain pass among the views.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from functools import partial

import numpy as np


def main() -> None:
    from snia.augment.config import AugmentConfig
    from snia.augment.dispatch import augment
    from snia.calibration import logit
    from snia.inference import Member, predict_store
    from snia.metrics import auc, halves
    from snia.store import Store
    from snia.taxonomy import INDEX

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("store")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--drop-fraction", type=float, default=AugmentConfig().drop_fraction)
    args = ap.parse_args()

    member = Member(args.checkpoint, "cpu")
    with Store(args.store) as store:
        member.spec = member.spec_for(store.bands)
    cfg = replace(AugmentConfig(), redshift_probability=0.0, drop_fraction=args.drop_fraction)
    plain = predict_store([member], args.store)
    labelled = plain["type"] != INDEX["unknown"]
    y = (plain["type"][labelled] == INDEX["Ia"]).astype(int)
    parts = halves(plain["object_id"][labelled])

    def row(name, p):
        p = p[labelled]
        print(f"| {name} | {auc(y[parts['development']], p[parts['development']]):.4f} | "
              f"{auc(y[parts['report']], p[parts['report']]):.4f} | {auc(y, p):.4f} |", flush=True)

    print("| P(Ia) | AUC dev | AUC report | AUC whole |\n|---|---|---|---|")
    row("plain", plain["p_ia_uncalibrated"])
    views = []
    for k in range(args.views):
        start = time.perf_counter()
        view = predict_store([member], args.store, transform=partial(
            augment, epoch=10_000 + k, seed=12345, cfg=cfg, band_wave=member.spec.wavelengths))
        assert np.array_equal(view["object_id"], plain["object_id"])
        views.append(logit(view["p_ia_uncalibrated"]))
        if k + 1 in (1, 2, 4, 8, 16, 32):
            row(f"mean logit of {k + 1} views ({time.perf_counter() - start:.1f} s a view)",
                np.mean(views, axis=0))
            row(f"mean logit of the plain pass and {k + 1} views",
                np.mean(views + [logit(plain["p_ia_uncalibrated"])], axis=0))


if __name__ == "__main__":
    main()
