"""predictions.csv: one layout for every classifier (CNN, ensemble, random forest, classify).

Columns: ``object_id``, ``p_ia``, ``true_type`` (a taxonomy class name; ``unknown`` when the data
carry no type), ``p_ia_uncalibrated`` when ``p_ia`` is calibrated (the model's score before it),
then ``p_<class>`` for each class of a multi-class model.
"""

from __future__ import annotations

import csv

import numpy as np

from snia.files import atomic_path
from snia.taxonomy import CLASSES, INDEX

COLUMNS = ("object_id", "p_ia", "true_type")


def write_predictions(path, object_id, p_ia, types, classes=(), class_probs=None,
                      p_uncalibrated=None) -> None:
    """Write one row per object (atomically: a predictions file that exists is complete)."""
    classes = list(classes)
    raw = [] if p_uncalibrated is None else ["p_ia_uncalibrated"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, *raw, *(f"p_{c}" for c in classes)])
        for i, (oid, p, t) in enumerate(zip(object_id, p_ia, types)):
            extra = [f"{p_uncalibrated[i]:.6f}"] if raw else []
            extra += [f"{q:.6f}" for q in class_probs[i]] if classes else []
            writer.writerow([int(oid), f"{p:.6f}", CLASSES[int(t)], *extra])


def read_predictions(path) -> dict:
    """object_id, p_ia and type (taxonomy index) arrays of a predictions.csv."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {"object_id": np.array([int(r["object_id"]) for r in rows], dtype=np.int64),
            "p_ia": np.array([float(r["p_ia"]) for r in rows]),
            "type": np.array([INDEX[r["true_type"]] for r in rows], dtype=np.int8)}
