"""Evaluation: metrics against scikit-learn and hand-computed values; the evaluate command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from snia.metrics import confusion_at, figure_of_merit, metrics, threshold_curves, weighted_log_loss


def test_hand_computed_purity_completeness_and_fom():
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.2])
    m = metrics(y, p)
    half = m["at_0.5"]
    assert (half["tp"], half["fp"], half["fn"], half["tn"]) == (2, 1, 1, 1)
    assert half["purity"] == pytest.approx(2 / 3) and half["completeness"] == pytest.approx(2 / 3)
    assert half["fom"] == pytest.approx(2 / 3 * 2 / (2 + 3 * 1))  # completeness x TP/(TP + 3 FP)
    best = m["at_best_fom"]  # thresholds 0.9, 0.8, 0.7, 0.3, 0.2 give FoM 1/3, 2/3, 4/15, 1/2, 1/3
    assert best["threshold"] == 0.8 and best["fom"] == pytest.approx(2 / 3)
    assert m["purity_at_90pc_completeness"] == pytest.approx(3 / 4)  # first reached at 0.3
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))


def test_fom_of_a_known_confusion():
    assert figure_of_merit({"tp": 80, "fp": 10, "fn": 20, "tn": 90}) == pytest.approx(0.8 * 80 / 110)
    assert figure_of_merit({"tp": 0, "fp": 5, "fn": 5, "tn": 0}) == 0.0


def test_metrics_match_scikit_learn_on_random_scores():
    seed = int(np.random.default_rng().integers(1 << 31))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.35 * y + rng.normal(0.3, 0.25, 500), 0, 1).round(2)  # ties on purpose
    m = metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p)), seed
    assert m["at_0.5"]["purity"] == pytest.approx(precision_score(y, p >= 0.5)), seed
    assert m["at_0.5"]["completeness"] == pytest.approx(recall_score(y, p >= 0.5)), seed
    thresholds, purity, completeness, _ = threshold_curves(y, p)
    for k in rng.integers(0, len(thresholds), 10):
        called = p >= thresholds[k]
        assert purity[k] == pytest.approx(precision_score(y, called), abs=1e-12), seed
        assert completeness[k] == pytest.approx(recall_score(y, called), abs=1e-12), seed
    c = confusion_at(y, p, 0.5)
    assert sum(c.values()) == 500


def test_evaluate_command_writes_predictions_metrics_and_plots(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import synthetic_plasticc

    from snia.cli import main
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    lc, meta, expected = synthetic_plasticc(tmp_path, 40, 31)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    cfg = TrainConfig.from_dict({"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.3,
                                 "model": {"channels": [4, 8], "groups": 2, "hidden": 8}})
    run_training(tmp_path / "s.h5", tmp_path / "run", cfg)
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "s.h5"), "--checkpoint", str(tmp_path / "run" / "best.pt"),
                 "-o", str(out)]) == 0
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "object_id,p_ia,true_type" and len(rows) == 41
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(expected)
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 40 and m["n_ia"] == sum(e["target"] == 90 for e in expected.values())
    for name in ("roc.png", "purity_completeness.png", "p_ia_by_type.png", "confusion.png", "tsne.png",
                 "gallery.png"):
        assert (out / name).stat().st_size > 5000, name
        assert f"({name})" in (out / "report.md").read_text()

    # classify: the same P(Ia) from the store and from the raw files it was ingested from
    ckpt = str(tmp_path / "run" / "best.pt")
    assert main(["classify", str(tmp_path / "s.h5"), "--checkpoint", ckpt, "-o", str(tmp_path / "a.csv")]) == 0
    assert main(["classify", str(lc), "--format", "plasticc", "--metadata", str(meta), "--checkpoint",
                 ckpt, "-o", str(tmp_path / "b.csv")]) == 0
    from_store = (tmp_path / "a.csv").read_text()
    assert from_store == (tmp_path / "b.csv").read_text() == (out / "predictions.csv").read_text()


def test_weighted_log_loss_hand_computed_and_against_scikit_learn():
    from sklearn.metrics import log_loss

    from snia.taxonomy import INDEX

    classes = ["Ia", "II", "Ibc"]
    types = np.array([INDEX["Ia"], INDEX["Ia"], INDEX["II"], INDEX["other"]])
    probs = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.2, 0.8, 0.0], [0.3, 0.3, 0.4]])
    loss, scored = weighted_log_loss(types, probs, classes)
    # Ia: mean(-ln 0.5, -ln 1) = ln2 / 2; II: -ln 0.8; two classes present, equal weights
    assert scored == 3  # 'other' is not a predicted class: not scored
    assert loss == pytest.approx((np.log(2) / 2 - np.log(0.8)) / 2, rel=1e-9)

    rng = np.random.default_rng(5)
    types = rng.choice([INDEX[c] for c in classes], 300, p=[0.6, 0.3, 0.1])
    probs = rng.dirichlet(np.ones(3), 300)
    target = np.array([classes.index(["Ia", "Ia-91bg", "Iax", "II", "Ibc"][t]) for t in types])
    weights = 1.0 / np.bincount(target)[target]  # each class weighs the same in total
    expected = log_loss(target, probs, sample_weight=weights, labels=[0, 1, 2])
    assert weighted_log_loss(types, probs, classes)[0] == pytest.approx(expected, rel=1e-9)


def test_multiclass_training_and_evaluation(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import synthetic_plasticc

    from snia.evaluate import evaluate
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    lc, meta, expected = synthetic_plasticc(tmp_path, 40, 32)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    cfg = TrainConfig.from_dict({"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.3,
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
    assert rows[0].split(",") == ["object_id", "p_ia", "true_type"] + [f"p_{c}" for c in classes]
    for row in rows[1:]:
        values = [float(v) for v in row.split(",")[3:]]
        assert sum(values) == pytest.approx(1, abs=1e-5)
        assert float(row.split(",")[1]) == pytest.approx(values[0], abs=1e-6)  # P(Ia) = the Ia column
    assert m["log_loss_objects"] == 40 and 0 < m["weighted_log_loss"] < 20
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["classes"] == classes


def test_an_ensemble_averages_its_members(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import synthetic_plasticc

    from snia.inference import predict_store
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    lc, meta, _ = synthetic_plasticc(tmp_path, 30, 33)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    runs = []
    for seed, raster in ((0, {}), (1, {}), (2, {"n_time": 45})):  # the last draws other images
        cfg = TrainConfig.from_dict({"kind": "heatmap", "epochs": 1, "batch_size": 8, "seed": seed,
                                     "val_fraction": 0.3, "raster": raster,
                                     "model": {"channels": [4, 8], "groups": 2, "hidden": 8}})
        run_training(tmp_path / "s.h5", tmp_path / f"r{seed}", cfg)
        runs.append(tmp_path / f"r{seed}" / "best.pt")
    alone = [predict_store(r, tmp_path / "s.h5")["p_ia"] for r in runs]
    both = predict_store(runs, tmp_path / "s.h5")
    np.testing.assert_allclose(both["p_ia"], np.mean(alone, axis=0), rtol=1e-5, atol=1e-7)
    assert not np.allclose(alone[0], alone[1])  # the members do differ
