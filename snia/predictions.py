"""predictions.csv: one layout for every classifier (CNN, ensemble, random forest, classify).

Columns: ``object_id``, ``p_ia``, ``true_type`` (a taxonomy class name; ``unknown`` when the data
carry no type), ``p_ia_uncalibrated`` when ``p_ia`` is calibrated (the model's score before it),
then ``p_<class>`` for each class of a multi-class model, then any per-object ``extra`` columns
(``snia classify --format lsst-alert``: ``last_mjd``, ``days_since_first_detection``, ``n_obs``).
"""

from __future__ import annotations

import csv
from array import array

import numpy as np

from snia.files import atomic_path
from snia.taxonomy import CLASSES, INDEX

COLUMNS = ("object_id", "p_ia", "true_type")


def write_predictions(path, object_id, p_ia, types, classes=(), class_probs=None,
                      p_uncalibrated=None, extra=None) -> None:
    """Write one row per object (atomically: a predictions file that exists is complete).
    ``extra``: more columns, name -> one value per object (integers as such, other numbers with
    4 decimals, NaN as an empty field)."""
    classes = list(classes)
    raw = [] if p_uncalibrated is None else ["p_ia_uncalibrated"]
    extra = extra or {}
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, *raw, *(f"p_{c}" for c in classes), *extra])
        for i, (oid, p, t) in enumerate(zip(object_id, p_ia, types)):
            more = [f"{p_uncalibrated[i]:.6f}"] if raw else []
            more += [f"{q:.6f}" for q in class_probs[i]] if classes else []
            more += [_cell(values[i]) for values in extra.values()]
            writer.writerow([int(oid), f"{p:.6f}", CLASSES[int(t)], *more])


def _cell(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return "" if np.isnan(value) else f"{value:.4f}"


def read_predictions(path) -> dict:
    """object_id, p_ia and type (taxonomy index) arrays of a predictions.csv, read row by row
    into compact arrays (17 bytes an object; a list of a survey's rows would be ~50x that)."""
    ids, p_ia, types = array("q"), array("d"), array("b")
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            ids.append(int(r["object_id"]))
            p_ia.append(float(r["p_ia"]))
            types.append(INDEX[r["true_type"]])
    return {"object_id": np.frombuffer(ids, dtype=np.int64), "p_ia": np.frombuffer(p_ia),
            "type": np.frombuffer(types, dtype=np.int8)}
