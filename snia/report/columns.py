"""One column of the report per classifier: its evaluation folder (predictions.csv, metrics.json)
read back, and the comparison table of all columns with bootstrap intervals.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snia.metrics import (
    FOM_WEIGHT,
    brier_score,
    half_metrics,
    metrics,
)
from snia.predictions import read_predictions
from snia.report.document import Table
from snia.taxonomy import INDEX

ROWS = [  # (label, path into metrics.json, format); intervals from metrics.json's "intervals"
    ("objects (Ia)", None, None),
    ("AUC", ("auc",), "{:.3f}"),
    ("purity at P(Ia) >= 0.5", ("at_0.5", "purity"), "{:.3f}"),
    ("completeness at P(Ia) >= 0.5", ("at_0.5", "completeness"), "{:.3f}"),
    ("FoM at P(Ia) >= 0.5", ("at_0.5", "fom"), "{:.3f}"),
    ("accuracy at P(Ia) >= 0.5", ("at_0.5", "accuracy"), "{:.3f}"),
    ("best-FoM threshold", ("at_best_fom", "threshold"), "{:.3f}"),
    ("purity at best FoM", ("at_best_fom", "purity"), "{:.3f}"),
    ("completeness at best FoM", ("at_best_fom", "completeness"), "{:.3f}"),
    (f"FoM (W = {FOM_WEIGHT:g}) at best FoM", ("at_best_fom", "fom"), "{:.3f}"),
    ("purity at 90 % completeness", ("purity_at_90pc_completeness",), "{:.3f}"),
    ("purity at 95 % completeness", ("purity_at_95pc_completeness",), "{:.3f}"),
    ("Brier score", ("brier",), "{:.4f}"),
    ("Brier score before calibration", ("brier_uncalibrated",), "{:.4f}"),
    ("weighted log-loss (multi-class)", ("weighted_log_loss",), "{:.4f}"),
    ("cross-validated AUC (training set)", ("cv_auc",), "{:.3f}"),
    ("AUC, development half", ("halves", "development", "auc"), "{:.3f}"),
    ("AUC, report half", ("halves", "report", "auc"), "{:.3f}"),
    ("threshold chosen on the development half (best FoM)", ("halves", "threshold"), "{:.3f}"),
    ("purity, report half, at that threshold", ("halves", "report", "purity"), "{:.3f}"),
    ("completeness, report half, at that threshold", ("halves", "report", "completeness"),
     "{:.3f}"),
]


DEFINITIONS = [
    ("Ia sample", "the objects called Ia: P(Ia) >= the threshold. TP, FP: Ia and non-Ia in it; "
                  "FN: Ia left out."),
    ("purity", "TP / (TP + FP): the share of the sample that is Ia."),
    ("completeness", "TP / (TP + FN) (efficiency): the share of all Ia that are in the sample."),
    ("FoM", f"the SPCC figure of merit, completeness x TP / (TP + W FP) with W = {FOM_WEIGHT:g} "
            "(Kessler et al. 2010): a false positive costs W true ones."),
    ("AUC", "area under the ROC curve (true against false positive rate over all thresholds): "
            "the chance that a random Ia gets a higher P(Ia) than a random non-Ia."),
    ("thresholds", "0.5, and the threshold that maximises the FoM on these test objects (chosen on "
                   "the data it is scored on, so its FoM is slightly optimistic)."),
    ("intervals", "[a, b]: the 16th and 84th percentiles (a 68 % interval) over bootstrap "
                  "resamples of the test objects (seeded). At the best-FoM threshold the threshold "
                  "stays fixed; the threshold's own interval is re-optimised per resample."),
    ("halves", "every test set splits into a fixed development and report half by a hash of the "
               "object id; settings (here the best-FoM threshold) are chosen on the development "
               "half, and the report half is scored at them."),
    ("Brier score", "mean of (P(Ia) - 1 for Ia, 0 otherwise)^2; 0 is perfect, 0.25 is P(Ia) = 0.5 "
                    "for every object."),
    ("reliability diagram", "the fraction of Ia against the mean P(Ia) in bins of P(Ia): on the "
                            "diagonal, P(Ia) is a probability for this data set's class mix."),
]


@dataclass
class Column:
    """One classifier: its folder's metrics.json and predictions.csv."""

    label: str
    folder: Path
    metrics: dict
    object_id: np.ndarray
    p_ia: np.ndarray
    types: np.ndarray
    p_uncalibrated: np.ndarray | None = None

    @property
    def labelled(self) -> np.ndarray:
        return self.types != INDEX["unknown"]

    @property
    def y(self) -> np.ndarray:
        return (self.types[self.labelled] == INDEX["Ia"]).astype(int)

    @property
    def p(self) -> np.ndarray:
        return self.p_ia[self.labelled]

    @property
    def best_threshold(self) -> float | None:
        return self.metrics.get("at_best_fom", {}).get("threshold")

    @property
    def provenance(self) -> dict:
        return self.metrics.get("provenance") or {}


def _csv_column(path, name) -> np.ndarray | None:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if name not in (reader.fieldnames or []):
            return None
        return np.fromiter((float(r[name]) for r in reader), dtype=np.float64)


def load_column(label: str, folder, n_resamples: int, seed: int, progress=None) -> Column:
    """A classifier's folder (written by ``snia evaluate`` or ``snia baseline``). Its binary
    metrics and their intervals are recomputed from predictions.csv, so that the table and the
    figures (drawn from it) agree to the object: metrics.json's were computed before P(Ia) was
    rounded to 6 decimals there, which can move an object across a threshold. What only
    metrics.json has (the multi-class log-loss, the forest's search, the provenance) is kept;
    the Brier score before calibration is added when predictions.csv has ``p_ia_uncalibrated``."""
    folder = Path(folder)
    recorded = json.loads((folder / "metrics.json").read_text())
    table = read_predictions(folder / "predictions.csv")
    column = Column(label, folder, recorded, table["object_id"], table["p_ia"], table["type"],
                    _csv_column(folder / "predictions.csv", "p_ia_uncalibrated"))
    computed = metrics(column.y, column.p, n_resamples, seed, progress)
    computed["halves"] = half_metrics(column.y, column.p, column.object_id[column.labelled])
    column.metrics = {**computed, **{k: v for k, v in recorded.items() if k not in computed}}
    if column.p_uncalibrated is not None:
        column.metrics["brier_uncalibrated"] = brier_score(column.y,
                                                           column.p_uncalibrated[column.labelled])
    return column


def lookup(result: dict, path):
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def cell(result: dict, path, fmt) -> str:
    if path is None:
        return f"{result['n']:,} ({result['n_ia']:,})"
    value = lookup(result, path)
    if value is None:
        return "-"
    text = fmt.format(value)
    interval = lookup(result.get("intervals", {}), path)
    if isinstance(interval, list) and len(interval) == 2 and all(np.isfinite(interval)):
        text += " [" + ", ".join(fmt.format(v) for v in interval) + "]"
    return text


def comparison_table(columns: list[Column]) -> Table:
    rows = [[label, *(cell(c.metrics, path, fmt) for c in columns)] for label, path, fmt in ROWS]
    rows = [row for row in rows if any(v != "-" for v in row[1:])]
    first = next((c.metrics.get("intervals") for c in columns if c.metrics.get("intervals")), {})
    note = (f"; [a, b]: 68 % bootstrap interval ({first.get('resamples', 0):,} resamples)"
            if first else "")
    return Table(f"Table 1. The classifiers on the same test objects (Ia vs rest){note}.",
                 ["", *(c.label for c in columns)], rows, id="comparison")
