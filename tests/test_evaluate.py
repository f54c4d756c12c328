"""Evaluation (snia.evaluate): the evaluate command's folder (predictions, metrics, plots, early
classification), multi-class evaluation, and a calibration refitted on a survey's labelled half."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import error_line


def test_evaluate_command_writes_predictions_metrics_and_plots(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import synthetic_plasticc

    from snia.cli import main
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    lc, meta, expected = synthetic_plasticc(tmp_path, 40, 31)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    cfg = TrainConfig.from_dict({"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.3,
                                 "min_epoch_samples": 0,
                                 "model": {"channels": [4, 8], "groups": 2, "hidden": 8}})
    run_training(tmp_path / "s.h5", tmp_path / "run", cfg)
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "s.h5"), "--checkpoint", str(tmp_path / "run" / "best.pt"),
                 "-o", str(out)]) == 0
    rows = (out / "predictions.csv").read_text().splitlines()
    # no calibration: the validation split of these 40 objects holds no SN Ia (nothing to fit)
    assert rows[0] == "object_id,p_ia,true_type" and len(rows) == 41
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(expected)
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 40 and m["n_ia"] == sum(e["target"] == 90 for e in expected.values())
    # early classification: the same 40 objects cut 0, 5, ... 50 days after the first detection
    assert [r["days"] for r in m["early"]] == [0, 5, 10, 20, 30, 50, "all"]
    assert all(r["objects"] == 40 for r in m["early"])
    assert m["early"][-1]["auc"] == pytest.approx(m["auc"])  # "all": the whole light curves
    for half in ("development", "report"):
        assert m["early"][-1][f"auc_{half}"] == pytest.approx(m["halves"][half]["auc"], nan_ok=True)
    assert len({r["auc"] for r in m["early"]}) > 1  # cutting the light curves changes the scores
    for name in ("roc.png", "purity_completeness.png", "p_ia_by_type.png", "confusion.png", "tsne.png",
                 "gallery.png", "early.png"):
        assert (out / name).stat().st_size > 5000, name
        assert f"({name})" in (out / "report.md").read_text()

    # classify: the same P(Ia) from the store and from the raw files it was ingested from
    ckpt = str(tmp_path / "run" / "best.pt")
    assert main(["classify", str(tmp_path / "s.h5"), "--checkpoint", ckpt, "-o", str(tmp_path / "a.csv")]) == 0
    assert main(["classify", str(lc), "--format", "plasticc", "--metadata", str(meta), "--checkpoint",
                 ckpt, "-o", str(tmp_path / "b.csv")]) == 0
    from_store = (tmp_path / "a.csv").read_text()
    assert from_store == (tmp_path / "b.csv").read_text() == (out / "predictions.csv").read_text()


def test_multiclass_training_and_evaluation(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import synthetic_plasticc

    from snia.evaluate import evaluate
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    lc, meta, expected = synthetic_plasticc(tmp_path, 40, 32)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    cfg = TrainConfig.from_dict({"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.3,
                                 "min_epoch_samples": 0,
                                 "task": "multiclass",
                                 "model": {"channels": [4, 8], "groups": 2, "hidden": 8}})
    run_training(tmp_path / "s.h5", tmp_path / "run", cfg)
    import torch

    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    classes = state["classes"]
    assert classes == ["Ia", "Ia-91bg", "Iax", "II", "Ibc", "SLSN", "other"]
    assert state["model_config"]["n_classes"] == 7
    m = evaluate(tmp_path / "run" / "best.pt", tmp_path / "s.h5", tmp_path / "eval")
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    assert rows[0].split(",") == (["object_id", "p_ia", "true_type", "p_ia_uncalibrated"]
                                  + [f"p_{c}" for c in classes])
    from snia.calibration import calibrate

    for row in rows[1:]:
        p_ia, raw, *values = [float(v) for v in row.split(",")[1:2] + row.split(",")[3:]]
        assert sum(values) == pytest.approx(1, abs=1e-5)
        assert raw == pytest.approx(values[0], abs=1e-6)  # the score: the Ia column
        assert p_ia == pytest.approx(calibrate(raw, state["calibration"]), abs=3e-5)  # 6 decimals
    assert m["log_loss_objects"] == 40 and 0 < m["weighted_log_loss"] < 20
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["classes"] == classes

    # the Ia share estimated from the store's own P(Ia) (EM), and P(Ia) moved to it: the same as
    # the calibration module's EM on the scores; Brier and purity before (validation share) and
    # after, from the predictions
    from snia.calibration import estimate_prior
    from snia.cli import main
    from snia.metrics import brier_score

    raw = np.array([float(r.split(",")[3]) for r in rows[1:]])
    y = np.array([r.split(",")[2] == "Ia" for r in rows[1:]], dtype=int)
    fitted = state["calibration"]["prior"]
    share = estimate_prior(calibrate(raw, state["calibration"]), fitted)
    assert m["ia_share"]["estimated"] == pytest.approx(share, abs=1e-4)
    assert m["ia_share"]["labelled"] == pytest.approx(y.mean())
    for name, p in (("before", calibrate(raw, state["calibration"])),
                    ("after", calibrate(raw, state["calibration"], share))):
        whole = m["ia_share"][name]["whole"]
        assert whole["brier"] == pytest.approx(brier_score(y, p), abs=1e-4)
        assert whole["completeness"] == pytest.approx(np.mean(p[y == 1] >= 0.5), nan_ok=True)
    assert main(["classify", str(tmp_path / "s.h5"), "--checkpoint", str(tmp_path / "run" / "best.pt"),
                 "-o", str(tmp_path / "moved.csv"), "--ia-prior", "estimate"]) == 0
    moved = [float(r.split(",")[1]) for r in (tmp_path / "moved.csv").read_text().splitlines()[1:]]
    assert moved == pytest.approx(calibrate(raw, state["calibration"], share), abs=2e-4)
    with pytest.raises(SystemExit):
        main(["classify", str(tmp_path / "s.h5"), "--checkpoint", "x.pt", "-o", "y.csv",
              "--ia-prior", "1.5"])


def test_calibrate_refits_platt_on_a_surveys_labelled_half_and_keeps_the_network(models, tmp_path,
                                                                                 capsys):
    """snia calibrate: the copy's calibration is Platt fitted on the chosen half's labelled
    objects and the model's scores there; its predictions are those scores through it; the
    weights are the original's. A store without both classes is one line, exit 2."""
    import torch

    from snia.calibration import calibrate, fit_platt
    from snia.cli import main
    from snia.inference import predict_store
    from snia.metrics import halves
    from snia.taxonomy import INDEX

    assert main(["calibrate", str(models["lsst"]), "--checkpoint", str(models["bands"]),
                 "--half", "development", "-o", str(tmp_path / "cal")]) == 0
    copy = tmp_path / "cal" / models["bands"].parent.name / "best.pt"
    original, refitted = (torch.load(p, weights_only=True) for p in (models["bands"], copy))
    for name, value in original["model"].items():
        assert torch.equal(value, refitted["model"][name]), name
    pred = predict_store(models["bands"], models["lsst"])
    dev = halves(pred["object_id"])["development"] & (pred["type"] != INDEX["unknown"])
    y = (pred["type"][dev] == INDEX["Ia"]).astype(int)
    expected = fit_platt(y, pred["p_ia_uncalibrated"][dev])
    assert refitted["calibration"]["objects"] == dev.sum() == len(y) > 0
    assert "development half" in refitted["calibration"]["fitted_on"]
    for key in ("a", "b", "prior"):
        assert refitted["calibration"][key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9)
    again = predict_store(copy, models["lsst"])
    np.testing.assert_allclose(again["p_ia"], calibrate(pred["p_ia_uncalibrated"],
                                                        refitted["calibration"]), atol=3e-6)
    # a survey sample of SNe Ia only: nothing to fit a calibration on
    from conftest import synthetic_plasticc

    from snia.ingest import run_ingest

    lc, meta, _ = synthetic_plasticc(tmp_path, 6, 8)
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join([lines[0]] + [r.rsplit(",", 1)[0] + ",90" for r in lines[1:]]) + "\n")
    run_ingest("plasticc", [lc], tmp_path / "ia.h5", [meta], progress=False)
    capsys.readouterr()
    assert main(["calibrate", str(tmp_path / "ia.h5"), "--checkpoint", str(models["bands"]),
                 "-o", str(tmp_path / "none")]) == 2
    assert f"{tmp_path / 'ia.h5'}: 6 labelled objects, not of both classes" in error_line(
        capsys.readouterr().err)
    assert not (tmp_path / "none").exists()


# ----------------------------------------------------------------------------- at survey size


def test_tsne_sample_is_capped_seeded_uniform_and_costs_the_cap_not_n():
    import tracemalloc

    from snia.evaluate import TSNE_OBJECTS, tsne_sample

    assert list(tsne_sample(7, cap=10)) == list(range(7))  # fewer than the cap: every object
    pick = tsne_sample(100_000, cap=3000, seed=0)
    assert len(pick) == len(np.unique(pick)) == 3000 and np.all(np.diff(pick) > 0)
    assert np.array_equal(pick, tsne_sample(100_000, cap=3000, seed=0))  # the same every run
    assert not np.array_equal(pick, tsne_sample(100_000, cap=3000, seed=1))
    # uniform: the first fifth of the objects holds a fifth of the sample (binomial, 4 sigma)
    assert abs(np.mean(pick < 20_000) - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 3000)
    assert len(tsne_sample(10**6)) == TSNE_OBJECTS
    tracemalloc.start()  # a billion objects: the sample, not a permutation of them all
    try:
        assert len(tsne_sample(10**9, cap=3000)) == 3000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak


def test_evaluate_embeds_only_the_tsne_sample_says_so_and_logs_progress(models, tmp_path, monkeypatch,
                                                                        caplog):
    """40 objects, a t-SNE cap of 15: the figure gets the 15 sampled objects' embeddings (those
    predict_store gives them), metrics.json and report.md say 15 of 40; a log file gets progress
    lines over the 9 passes (predictions, the Ia share, 7 early cuts) of 40 light curves."""
    import logging

    import snia.evaluate
    import snia.progress
    from snia.evaluate import evaluate, tsne_sample
    from snia.inference import predict_store

    monkeypatch.setattr(snia.evaluate, "TSNE_OBJECTS", 15)
    monkeypatch.setattr(snia.progress, "MIN_SECONDS", 0.0)
    drawn = {}
    real_plot = snia.evaluate.plot_tsne

    def plot_tsne(embedding, types, path, **kw):
        drawn.update(embedding=embedding, types=types)
        real_plot(embedding, types, path, **kw)

    monkeypatch.setattr(snia.evaluate, "plot_tsne", plot_tsne)
    caplog.set_level(logging.INFO, logger="snia.progress")
    m = evaluate(models["bands"], models["lsst"], tmp_path / "eval")

    full = predict_store(models["bands"], models["lsst"], embeddings=True)
    rows = tsne_sample(40, cap=15, seed=0)  # every object of this store is labelled
    assert len(full["object_id"]) == 40 and np.all(full["type"] != snia.evaluate.INDEX["unknown"])
    assert drawn["embedding"].shape == (15, full["embedding"].shape[1])
    np.testing.assert_allclose(drawn["embedding"], full["embedding"][rows], atol=1e-5)
    assert np.array_equal(drawn["types"], full["type"][rows])
    assert m["tsne"] == {"objects": 15, "labelled": 40, "cap": 15, "seed": 0,
                         "sample": "uniform random (seeded)"}
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["tsne"] == m["tsne"]
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "15 of the 40 labelled objects, a uniform random sample (seed 0" in report

    logged = [r.getMessage() for r in caplog.records]
    passes = [line for line in logged if re.match(r"evaluate: \d+ %", line)]
    assert passes[-1].startswith("evaluate: 100 % (360 of 360 LC)"), logged  # 9 passes x 40
    assert any("(early classification, 10 days)" in line for line in passes), logged
    assert "evaluate: bootstrap: 100 % (1,000 of 1,000 resamples)" in "\n".join(logged)
    assert "evaluate: figures: 100 % (7 of 7 figures) (early.png)" in "\n".join(logged)


def test_evaluate_refuses_a_store_without_types_in_one_line(models, tmp_path, capsys):
    from conftest import synthetic_plasticc

    from snia.cli import main
    from snia.ingest import run_ingest

    lc, meta, _ = synthetic_plasticc(tmp_path, 6, 9)
    rows = [r.split(",") for r in meta.read_text().splitlines()]
    k = rows[0].index("target")
    meta.write_text("\n".join(",".join(r[:k] + r[k + 1:]) for r in rows) + "\n")  # no types
    run_ingest("plasticc", [lc], tmp_path / "u.h5", [meta], progress=False, split="test")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "u.h5"), "--checkpoint", str(models["bands"]), "-o",
                 str(tmp_path / "e")]) == 2
    assert error_line(capsys.readouterr().err).endswith(
        f"{tmp_path / 'u.h5'}: no object of a known type, nothing to evaluate against (snia classify "
        "gives P(Ia) without types)")
    assert not (tmp_path / "e").exists()


def test_evaluate_command_passes_no_progress(monkeypatch, tmp_path):
    import snia.evaluate
    from snia.cli import main

    seen = {}

    def evaluate(*args, **kw):
        seen.update(kw)
        return {"auc": 0.5, "at_0.5": {"purity": 0.5, "completeness": 0.5}}

    monkeypatch.setattr(snia.evaluate, "evaluate", evaluate)
    store = tmp_path / "s.h5"
    store.write_bytes(b"")
    for extra, expected in (([], True), (["--no-progress"], False)):
        assert main(["evaluate", str(store), "--checkpoint", str(store), "-o", str(tmp_path / "e"),
                     *extra]) == 0
        assert seen["progress"] is expected
