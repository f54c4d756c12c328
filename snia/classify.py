"""``snia classify``: P(Ia) of every object of a store, or of raw survey files, to a CSV.

Raw files are ingested to a temporary store first (``snia.ingest``, with the default checks), so
inference itself (``snia.inference``) only ever reads stores. The output folder, the inputs and
the checkpoints are checked before any work, each failure one line naming what is wrong. For LSST
alerts (``--format lsst-alert``) each row also says when: P(Ia) is as of the object's latest
observation (``last_mjd``), ``days_since_first_detection`` (from its first diaSource) and
``n_obs`` (observations in its light curve).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from snia.errors import ConfigError
from snia.inference import default_device, load_members, predict_store
from snia.ingest import run_ingest
from snia.predictions import write_predictions
from snia.progress import counted
from snia.progress import progress as show_progress
from snia.readers import FORMATS, expand_inputs
from snia.store import Store

ALERT_BLOCK = 1 << 22  # observations per read of the alert columns (~50 MiB of time and flag)


def classify(checkpoints, inputs, out_csv, fmt: str | None = None, metadata=(), survey=None,
             allow_other_bands: bool = False, prior: float | None = None,
             progress: bool = True) -> dict:
    """P(Ia) for every object of a store, or of raw survey files (ingested to a temporary store
    first, with the default checks). Returns the number of objects classified and what their
    P(Ia) is (calibrated or not). The output folder, the inputs and the checkpoints are checked
    before any work. ``progress``: a bar on a terminal (log lines otherwise, see snia.progress)."""
    import h5py

    check_output_folder(out_csv)
    inputs = [Path(p) for p in inputs]
    for path in [*inputs, *map(Path, metadata)]:
        if not path.exists():
            raise ConfigError(f"input {path} does not exist")
    is_store = len(inputs) == 1 and inputs[0].is_file() and h5py.is_hdf5(inputs[0])
    if not is_store:
        if fmt is None:
            raise ConfigError(f"raw input needs --format ({', '.join(FORMATS)})")
        try:
            inputs = expand_inputs(inputs, fmt)
        except FileNotFoundError as exc:  # a folder without files of the format
            raise ConfigError(str(exc)) from None
    members = load_members(checkpoints, default_device())
    with tempfile.TemporaryDirectory() as tmp:
        store = inputs[0]
        if not is_store:
            store = Path(tmp) / "input.h5"
            run_ingest(fmt, inputs, store, metadata, survey=survey, progress=progress)
        with Store(store) as opened:
            n_objects = len(opened)
        with show_progress(n_objects, "classify", bar=progress) as bar:  # closed when done
            pred = predict_store(members, store, allow_other_bands=allow_other_bands, prior=prior,
                                 transform=counted(bar))
        extra = alert_columns(store, pred["object_id"]) if fmt == "lsst-alert" else None
    write_predictions(out_csv, pred["object_id"], pred["p_ia"], pred["type"],
                      pred.get("classes", ()), pred.get("class_probs"), pred.get("p_ia_uncalibrated"),
                      extra=extra)
    return {"objects": len(pred["object_id"]), "calibration": pred["calibration"]}


def check_output_folder(path) -> None:
    """Refuse an output file whose folder is missing or not writable, before the work."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: folder {folder} is not writable")


def alert_columns(store_path, object_ids) -> dict[str, np.ndarray]:
    """Per object (in ``object_ids``' order): the time of its latest observation, days from its
    first detection (flag 1: a diaSource) to then (NaN without one), its number of observations.
    The store is read in blocks of about ALERT_BLOCK observations of the two columns it needs:
    memory bounded by the block (and the per-object arrays), not by the store."""
    with Store(store_path) as store:
        ids, lengths = store.objects["object_id"], store.objects["length"]
        last = np.empty(len(store))
        first = np.full(len(store), np.inf)
        for start, block in store.blocks(ALERT_BLOCK, ("time", "flag")):
            n = block.n_objects
            time = np.asarray(block.obs["time"], np.float64)
            last[start:start + n] = np.maximum.reduceat(time, block.offsets[:-1])  # lengths >= 1
            detected = block.obs["flag"] == 1
            obj = np.repeat(np.arange(n), np.diff(block.offsets))
            np.minimum.at(first[start:start + n], obj[detected], time[detected])
    days = np.where(np.isfinite(first), last - first, np.nan)
    order = np.argsort(ids, kind="stable")
    rows = order[np.searchsorted(ids, np.asarray(object_ids, np.int64), sorter=order)]
    return {"last_mjd": last[rows], "days_since_first_detection": days[rows],
            "n_obs": lengths[rows].astype(np.int64)}
