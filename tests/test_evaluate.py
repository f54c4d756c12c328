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


# ------------------------------------------------------------- models meet data they do not fit

TINY_MODEL = {"epochs": 1, "batch_size": 8, "val_fraction": 0.3,
              "model": {"channels": [4, 8], "groups": 2, "hidden": 8}}


def error_line(err: str) -> str:
    """The one line ``snia.cli.main`` logged for a snia error: last, whole, no traceback."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and " ERROR " in lines[-1], err
    return lines[-1]


def des_text_files(folder, n: int) -> list:
    """n DES light curves in griz (SNANA text), four epochs a band."""
    rng = np.random.default_rng(7)
    paths = []
    for k in range(n):
        rows = [f"OBS: {56170 + 4 * j + i:.3f}  {band} NULL  {rng.normal(50, 20):.3f}  {rng.uniform(2, 9):.3f}"
                for j in range(4) for i, band in enumerate("griz")]
        lines = ["SURVEY: DES", f"SNID: {100 + k}", f"SNTYPE: {1 if k % 2 else 20}", "RA: 48.0 deg",
                 "DECL: -1.5 deg", "MWEBV: 0.07", "REDSHIFT_SPEC: -9.0 +- 9.0",
                 "HOST_GALAXY_PHOTO-Z: 0.4 +- 0.04", "", f"NOBS: {len(rows)}", "NVAR: 5",
                 "VARLIST:  MJD  FLT FIELD   FLUXCAL   FLUXCALERR", *rows, "END:"]
        paths.append(folder / f"DES_{k}.DAT")
        paths[-1].write_text("\n".join(lines) + "\n")
    return paths


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Stores (LSST ugrizy, LSST griz only, DES griz) and tiny models trained on LSST data."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import synthetic_plasticc

    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    folder = tmp_path_factory.mktemp("models")
    lc, meta, _ = synthetic_plasticc(folder, 40, 35)
    out = {"lsst": folder / "lsst.h5", "griz": folder / "griz.h5", "des": folder / "des.h5"}
    run_ingest("plasticc", [lc], out["lsst"], [meta], progress=False)
    lines = lc.read_text().splitlines()
    griz = folder / "griz.csv"  # PLAsTiCC passbands 1-4: LSST g, r, i, z
    griz.write_text("\n".join([lines[0]] + [r for r in lines[1:] if r.split(",")[2] in "1234"]) + "\n")
    run_ingest("plasticc", [griz], out["griz"], [meta], on_error="skip", progress=False)
    run_ingest("snana-text", des_text_files(folder, 6), out["des"], progress=False)
    for name, store, extra in (("bands", "lsst", {"kind": "bands"}),
                               ("multiclass", "lsst", {"kind": "bands", "task": "multiclass"}),
                               ("heatmap_griz", "griz", {"kind": "heatmap"})):
        run_training(out[store], folder / name, TrainConfig.from_dict({**TINY_MODEL, **extra}))
        out[name] = folder / name / "best.pt"
    return out


def test_a_model_refuses_data_of_bands_it_was_not_trained_on(models, tmp_path, capsys):
    from snia.cli import EXIT_BAD_INPUT, main

    lsst = "['lsstu', 'lsstg', 'lsstr', 'lssti', 'lsstz', 'lssty']"
    des = "['desg', 'desr', 'desi', 'desz']"
    classify = ["classify", str(models["des"]), "--checkpoint", str(models["bands"]),
                "-o", str(tmp_path / "p.csv")]
    # DES griz into an LSST ugrizy model: it would see empty images
    assert main(classify) == EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert des in line and lsst in line and "--allow-other-bands" in line
    assert not (tmp_path / "p.csv").exists()
    assert main(["evaluate", str(models["des"]), "--checkpoint", str(models["bands"]),
                 "-o", str(tmp_path / "eval")]) == EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert des in line and lsst in line
    # asked for explicitly: it runs, with a warning naming both
    assert main(classify + ["--allow-other-bands"]) == 0
    warnings = [x for x in capsys.readouterr().err.splitlines() if " WARNING " in x]
    assert any(des in x and lsst in x for x in warnings), warnings
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 7
    # a heatmap model places observations by wavelength, yet a band it never saw is refused
    # (u and y light where it never learnt any)
    assert main(["classify", str(models["lsst"]), "--checkpoint", str(models["heatmap_griz"]),
                 "-o", str(tmp_path / "h.csv")]) == EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "['lsstu', 'lssty']" in line and "['lsstg', 'lsstr', 'lssti', 'lsstz']" in line
    # data without some of the model's bands: runs (objects need not be seen in every band),
    # with a warning that those image rows stay empty
    assert main(["classify", str(models["griz"]), "--checkpoint", str(models["bands"]),
                 "-o", str(tmp_path / "g.csv")]) == 0
    assert "['lsstu', 'lssty']" in capsys.readouterr().err


def test_damaged_checkpoints_are_named_in_one_line(models, tmp_path, capsys):
    import torch

    from snia.cli import EXIT_BAD_INPUT, main

    good = models["bands"].read_bytes()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    damaged = {"truncated": good[:len(good) // 2], "empty": b"", "text": b"epoch 1\n",
               "other": (tmp_path / "other.pt").read_bytes()}
    bad = tmp_path / "bad.pt"
    for what, content in damaged.items():
        bad.write_bytes(content)
        for command in (["evaluate", str(models["lsst"]), "--checkpoint", str(bad), "-o", str(tmp_path / "e")],
                        ["classify", str(models["lsst"]), "--checkpoint", str(models["bands"]), str(bad),
                         "-o", str(tmp_path / "p.csv")]):
            capsys.readouterr()
            assert main(command) == EXIT_BAD_INPUT, (what, command[0])
            assert str(bad) in error_line(capsys.readouterr().err), (what, command[0])


def test_ensemble_members_of_other_classes_are_one_line_exit_2(models, tmp_path, capsys):
    from snia.cli import EXIT_BAD_INPUT, main

    assert main(["classify", str(models["lsst"]), "--checkpoint", str(models["bands"]),
                 str(models["multiclass"]), "-o", str(tmp_path / "p.csv")]) == EXIT_BAD_INPUT
    assert "ensemble members predict different classes" in error_line(capsys.readouterr().err)


def test_classify_checks_its_output_folder_before_the_work(models, tmp_path, capsys, monkeypatch):
    import snia.classify
    import snia.inference
    from snia.cli import EXIT_BAD_INPUT, main

    def no_work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(snia.inference, "run_members", no_work)
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


def test_platt_calibration_is_scikit_learns_sigmoid_calibration():
    """fit_platt + calibrate give what CalibratedClassifierCV(method="sigmoid") gives for a
    classifier whose decision function is the logit of the scores."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from snia.calibration import calibrate, fit_platt, logit

    class Scores(ClassifierMixin, BaseEstimator):
        def fit(self, x, y):
            self.classes_ = np.array([0, 1])
            return self

        def decision_function(self, x):
            return x[:, 0]

        def predict(self, x):
            return (x[:, 0] > 0).astype(int)

    rng = np.random.default_rng(3)
    y = (rng.random(800) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, 800) + 1.5 * y - 0.2)))  # overconfident-ish scores
    x = logit(p)[:, None]
    # ensemble=False: one sigmoid fitted on the (frozen) scores of all objects
    sklearn_p = CalibratedClassifierCV(FrozenEstimator(Scores().fit(x, y)), method="sigmoid",
                                       ensemble=False).fit(x, y).predict_proba(x)[:, 1]
    calibration = fit_platt(y, p)
    np.testing.assert_allclose(calibrate(p, calibration), sklearn_p, atol=1e-4)
    assert calibration["objects"] == 800 and calibration["prior"] == pytest.approx(y.mean())
    assert fit_platt(np.ones(5), np.full(5, 0.9)) is None  # one class: nothing to fit


def test_a_known_ia_share_moves_the_prior_odds():
    """Bayes: the likelihood ratio stays, the prior odds change. Identity map fitted at an Ia
    share of 0.5: a score of 0.5 becomes the new share, and the odds scale by q / (1 - q)."""
    from snia.calibration import calibrate

    identity = {"method": "platt", "a": 1.0, "b": 0.0, "prior": 0.5}
    assert calibrate(0.5, identity, prior=0.8) == pytest.approx(0.8)
    p = calibrate(0.6, identity, prior=0.2)
    assert p / (1 - p) == pytest.approx((0.6 / 0.4) * (0.2 / 0.8))
    np.testing.assert_allclose(calibrate([0.1, 0.9], identity), [0.1, 0.9])
    with pytest.raises(ValueError, match="prior"):
        calibrate(0.5, identity, prior=1.0)


def test_em_finds_the_ia_share_of_data_whose_likelihood_ratios_are_exact():
    """Two Gaussian score classes with a known likelihood ratio: the exact posterior at a
    fitted share of 0.3 holds enough for EM (Saerens et al. 2002) to find the data's share, 0.7,
    to within its sampling error; data of the fitted share give the fitted share back."""
    from snia.calibration import estimate_prior, shift_prior

    rng = np.random.default_rng(11)

    def posterior_at(fitted, share, n=20_000):
        y = rng.random(n) < share
        x = rng.normal(np.where(y, 1.0, -1.0), 1.0)
        ratio = np.exp(2 * x)  # N(x; 1, 1) / N(x; -1, 1)
        odds = ratio * fitted / (1 - fitted)
        return odds / (1 + odds), y.mean()

    p, true = posterior_at(0.3, 0.7)
    assert estimate_prior(p, 0.3) == pytest.approx(true, abs=0.01)
    p, true = posterior_at(0.3, 0.3)
    assert estimate_prior(p, 0.3) == pytest.approx(true, abs=0.01)
    assert shift_prior(0.3, 0.3, 0.7) == pytest.approx(0.7)  # the mean object moves with the share
    with pytest.raises(ValueError, match="no objects"):
        estimate_prior([], 0.3)


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
        {"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.3,
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


def test_what_an_ensembles_p_ia_is_is_said_without_one_members_numbers():
    from types import SimpleNamespace

    from snia.inference import calibration_of

    platt = {"method": "platt", "a": 1.0, "b": 0.0, "fitted_on": "validation split", "objects": 10,
             "prior": 0.3}
    one = SimpleNamespace(path="m0/best.pt", calibration=platt)
    other = SimpleNamespace(path="m1/best.pt", calibration={**platt, "a": 2.0})
    assert calibration_of([one]).startswith("calibrated (platt scaling") and "a 1.000" in calibration_of([one])
    both = calibration_of([one, other], prior=0.6)
    assert both == ("mean of 2 members' P(Ia), each calibrated by its own platt scaling fitted on "
                    "its validation split, moved to an Ia share of 0.600")
    bare = SimpleNamespace(path="m2/best.pt", calibration=None)
    assert calibration_of([one, bare]).startswith("uncalibrated") and "m2/best.pt" in calibration_of([one, bare])


def test_scalar_inputs_are_photo_z_its_error_and_log_scale_standardised():
    """Hand-computed: missing photo-z (NaN) reads -1, the flux scale is floored at 1e-3 before
    its log10, and the forward pass's standardised tensor matches the host's statistics input."""
    import torch

    from snia.models.inputs import scalar_inputs, scalars_of

    meta = {"hostgal_photoz": np.array([0.1, np.nan, 0.5]),
            "hostgal_photoz_err": np.array([0.02, np.nan, 0.2])}
    scale = np.array([10.0, 1e-5, 1000.0])
    expected = np.array([[0.1, 0.02, 1.0], [-1.0, -1.0, -3.0], [0.5, 0.2, 3.0]])
    np.testing.assert_allclose(scalars_of(meta, scale), expected)
    mean, std = np.array([0.5, 0.1, 1.0]), np.array([2.0, 0.5, 4.0])
    scaled = scalar_inputs(meta, scale, mean, std, torch.device("cpu"))
    assert scaled.dtype == torch.float32
    np.testing.assert_allclose(scaled.numpy(), (expected - mean) / std, rtol=1e-6)
