"""snia classify (snia.classify): checks before the work, and calibrated P(Ia) said as such."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import error_line


def test_classify_checks_its_output_folder_before_the_work(models, tmp_path, capsys, monkeypatch):
    import snia.classify
    import snia.inference.predict
    from snia.cli import EXIT_BAD_INPUT, main

    def no_work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(snia.inference.predict, "run_members", no_work)
    monkeypatch.setattr(snia.classify, "run_ingest", no_work)
    out = tmp_path / "no" / "such" / "dir" / "p.csv"
    assert main(["classify", str(models["lsst"]), "--checkpoint", str(models["bands"]),
                 "-o", str(out)]) == EXIT_BAD_INPUT
    assert str(out.parent) in error_line(capsys.readouterr().err)
    lc = tmp_path / "lc.csv"
    lc.write_text("object_id,mjd,passband,flux,flux_err,detected_bool\n")
    assert main(["classify", str(lc), "--format", "plasticc", "--metadata", str(lc),
                 "--checkpoint", str(models["bands"]), "-o", str(out)]) == EXIT_BAD_INPUT
    assert str(out.parent) in error_line(capsys.readouterr().err)


def test_classify_writes_calibrated_p_ia_and_says_so(tmp_path, capsys):
    pytest.importorskip("torch", reason="PyTorch not installed")
    import torch
    from conftest import synthetic_plasticc

    from snia.calibration import calibrate
    from snia.cli import main
    from snia.ingest import run_ingest
    from snia.predictions import read_predictions
    from snia.train import TrainConfig, run_training

    lc, meta, _ = synthetic_plasticc(tmp_path, 40, 34)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    run_training(tmp_path / "s.h5", tmp_path / "run", TrainConfig.from_dict(
        {"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.3, "min_epoch_samples": 0,
         "model": {"channels": [4, 8], "groups": 2, "hidden": 8}}))
    ckpt = tmp_path / "run" / "best.pt"
    calibration = torch.load(ckpt, weights_only=True)["calibration"]
    assert calibration["method"] == "platt" and calibration["fitted_on"] == "validation split"
    capsys.readouterr()
    assert main(["classify", str(tmp_path / "s.h5"), "--checkpoint", str(ckpt), "-o",
                 str(tmp_path / "p.csv"), "--ia-prior", "0.6"]) == 0
    said = capsys.readouterr().err  # the command line logs to stderr
    assert "calibrated (platt scaling fitted on the validation split" in said
    assert "moved to an Ia share of 0.600" in said
    import csv

    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    raw = np.array([float(r["p_ia_uncalibrated"]) for r in rows])
    np.testing.assert_allclose(read_predictions(tmp_path / "p.csv")["p_ia"],
                               calibrate(raw, calibration, prior=0.6), atol=3e-5)


def test_classify_says_how_far_it_is(small_store, tmp_path, capsys, monkeypatch):
    """Off a terminal one log line per 5 % of the objects, counted as the batches are run."""
    import snia.progress
    from snia.cli import main

    monkeypatch.setattr(snia.progress, "MIN_SECONDS", 0.0)  # every 5 % step, however fast

    assert main(["classify", str(small_store), "-o", str(tmp_path / "p.csv"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert re.findall(r"classify: +(\d+) % \((\d+) of 25 objects", err) == [("100", "25")], err


def test_alert_columns_read_the_store_in_blocks(tmp_path, monkeypatch):
    """The alert columns (latest MJD, days since the first detection, observations) equal a plain
    per-object reckoning, and 4x the objects costs only the per-object arrays, not 4x the
    observations: those are read in blocks of ALERT_BLOCK (here 500) observations."""
    import tracemalloc

    from conftest import read_store, synthetic_plasticc

    import snia.classify
    from snia.ingest import run_ingest

    monkeypatch.setattr(snia.classify, "ALERT_BLOCK", 500, raising=False)
    peaks = []
    for n in (200, 800):
        lc, meta, _ = synthetic_plasticc(tmp_path, n, n, name=f"lc{n}.csv")
        store = tmp_path / f"s{n}.h5"
        run_ingest("plasticc", [lc], store, [meta], progress=False)
        raw = read_store(store)
        asked = raw["objects/object_id"][::-1]  # any order
        got = snia.classify.alert_columns(store, asked)
        for j, oid in enumerate(asked):
            i = int(np.flatnonzero(raw["objects/object_id"] == oid)[0])
            rows = slice(raw["objects/offset"][i], raw["objects/offset"][i] + raw["objects/length"][i])
            t, flag = raw["observations/time"][rows], raw["observations/flag"][rows]
            assert got["last_mjd"][j] == t.max() and got["n_obs"][j] == len(t)
            days = got["days_since_first_detection"][j]
            assert (np.isnan(days) if not (flag == 1).any()
                    else days == t.max() - t[flag == 1].min()), (oid, days)
        tracemalloc.start()
        snia.classify.alert_columns(store, asked)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 600 more objects of ~20 observations: read whole, ~1 MB more; per object ~100 B
    assert peaks[1] - peaks[0] < 600 * 250, peaks
