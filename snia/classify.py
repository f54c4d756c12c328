"""``snia classify``: P(Ia) of every object of a store, or of raw survey files, to a CSV.

Raw files are ingested to a temporary store first (``snia.ingest``, with the default checks), so
inference itself (``snia.inference``) only ever reads stores. The output folder, the inputs and
the checkpoints are checked before any work, each failure one line naming what is wrong.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from snia.errors import ConfigError
from snia.inference import default_device, load_members, predict_store
from snia.ingest import run_ingest
from snia.predictions import write_predictions
from snia.readers import expand_inputs


def classify(checkpoints, inputs, out_csv, fmt: str | None = None, metadata=(), survey=None,
             allow_other_bands: bool = False, prior: float | None = None) -> dict:
    """P(Ia) for every object of a store, or of raw survey files (ingested to a temporary store
    first, with the default checks). Returns the number of objects classified and what their
    P(Ia) is (calibrated or not). The output folder, the inputs and the checkpoints are checked
    before any work."""
    import h5py

    check_output_folder(out_csv)
    inputs = [Path(p) for p in inputs]
    for path in [*inputs, *map(Path, metadata)]:
        if not path.exists():
            raise ConfigError(f"input {path} does not exist")
    is_store = len(inputs) == 1 and inputs[0].is_file() and h5py.is_hdf5(inputs[0])
    if not is_store:
        if fmt is None:
            raise ConfigError("raw input needs --format (plasticc, snana-fits or snana-text)")
        try:
            inputs = expand_inputs(inputs, fmt)
        except FileNotFoundError as exc:  # a folder without files of the format
            raise ConfigError(str(exc)) from None
    members = load_members(checkpoints, default_device())
    with tempfile.TemporaryDirectory() as tmp:
        store = inputs[0]
        if not is_store:
            store = Path(tmp) / "input.h5"
            run_ingest(fmt, inputs, store, metadata, survey=survey, progress=False)
        pred = predict_store(members, store, allow_other_bands=allow_other_bands, prior=prior)
    write_predictions(out_csv, pred["object_id"], pred["p_ia"], pred["type"],
                      pred.get("classes", ()), pred.get("class_probs"), pred.get("p_ia_uncalibrated"))
    return {"objects": len(pred["object_id"]), "calibration": pred["calibration"]}


def check_output_folder(path) -> None:
    """Refuse an output file whose folder is missing or not writable, before the work."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: folder {folder} is not writable")
