"""The report (CNN vs baseline side by side) and the scaling summary, on constructed inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from snia.metrics import metrics


def write_run(folder, ids, p, types):
    folder.mkdir(parents=True)
    y = np.array([t == "Ia" for t in types], dtype=int)
    (folder / "metrics.json").write_text(json.dumps(metrics(y, p)))
    with open(folder / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["object_id", "p_ia", "true_type"])
        w.writerows(zip(ids, p, types))


def test_report_puts_both_classifiers_side_by_side(tmp_path):
    from snia.report import write_report

    rng = np.random.default_rng(1)
    ids = np.arange(100, 300)
    types = rng.choice(["Ia", "II", "Ibc"], len(ids))
    truth = (types == "Ia").astype(float)
    write_run(tmp_path / "cnn", ids, np.clip(truth * 0.6 + rng.uniform(0, 0.5, len(ids)), 0, 1), types)
    write_run(tmp_path / "rf", ids, rng.uniform(0, 1, len(ids)), types)
    (tmp_path / "cnn" / "tsne.png").write_bytes(b"\x89PNG")
    history = tmp_path / "history.csv"
    history.write_text("epoch,train_loss,samples_per_s,steps,val_loss,val_auc,lr,seconds\n"
                       "1,0.6,100,5,0.6,0.70,0.001,30\n2,0.5,300,5,0.5,0.80,0.001,90\n")
    md = write_report(tmp_path / "report", tmp_path / "cnn", tmp_path / "rf", history).read_text()
    cnn = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    rf = json.loads((tmp_path / "rf" / "metrics.json").read_text())
    assert "|  | CNN | random forest |" in md
    assert f"| AUC | {cnn['auc']:.4f} | {rf['auc']:.4f} |" in md
    assert f"| objects (Ia) | 200 ({cnn['n_ia']}) | 200 ({rf['n_ia']}) |" in md
    assert "weighted log-loss" not in md  # a row only where some column has the number
    assert "2 epochs in 2.0 min (median 200 samples/s), best validation AUC 0.8000" in md
    assert "![t-SNE of the CNN's penultimate embeddings](../cnn/tsne.png)" in md
    assert (tmp_path / "report" / "roc_cnn_vs_rf.png").stat().st_size > 5000
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<td>AUC</td>" in html and "src='../cnn/tsne.png'" in html


def test_scaling_summary_speedup_and_efficiency(tmp_path):
    from snia.scaling import summarize

    rows = [("strong", 1, 64, 100.0), ("strong", 2, 64, 150.0), ("weak", 2, 128, 180.0),
            ("weak", 1, 64, 100.0)]
    files = []
    for mode, world, batch, rate in rows:
        path = tmp_path / f"{mode}_{world}.json"
        path.write_text(json.dumps({"mode": mode, "world_size": world, "global_batch": batch,
                                    "steps": 10, "seconds": 10 * batch / rate,
                                    "samples_per_s": rate, "device": "cpu", "threads_per_rank": 1}))
        files.append(path)
    out = summarize(files, tmp_path / "scaling.csv", plot=tmp_path / "scaling.png")
    assert [(r["mode"], r["world_size"]) for r in out] == [("strong", 1), ("strong", 2),
                                                           ("weak", 1), ("weak", 2)]
    assert out[1]["speedup"] == pytest.approx(1.5) and out[1]["efficiency"] == pytest.approx(0.75)
    assert out[3]["efficiency"] == pytest.approx(0.9)
    with open(tmp_path / "scaling.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (tmp_path / "scaling.png").stat().st_size > 5000


def test_report_sums_an_ensembles_training(tmp_path):
    from snia.report import write_report

    ids = np.arange(40)
    types = np.array(["Ia", "II"] * 20)
    write_run(tmp_path / "cnn", ids, np.linspace(0, 1, 40), types)
    histories = []
    for k, (seconds, auc) in enumerate(((60, 0.9), (120, 0.95))):
        path = tmp_path / f"h{k}.csv"
        path.write_text("epoch,train_loss,samples_per_s,steps,val_loss,val_auc,lr,seconds\n"
                        f"1,0.6,100,5,0.6,{auc},0.001,{seconds}\n")
        histories.append(path)
    md = write_report(tmp_path / "report", tmp_path / "cnn", history=histories).read_text()
    assert "2 models (an ensemble, and the model distilled from it if any), 1, 1 epochs, " \
           "3.0 min in all" in md
    assert "best validation AUC of each: 0.9000, 0.9500" in md
    assert "random forest" not in md.split("## ")[0]  # no baseline column without a baseline


def test_report_adds_the_ensemble_a_distilled_cnn_learnt_from(tmp_path):
    from snia.report import write_report

    ids = np.arange(60)
    types = np.array(["Ia", "II", "Ibc"] * 20)
    p_student = np.linspace(0, 1, 60)
    p_ensemble = (types == "Ia") * 0.5 + np.linspace(0, 0.4, 60)  # separates perfectly: AUC 1
    write_run(tmp_path / "cnn", ids, p_student, types)
    write_run(tmp_path / "ens", ids, p_ensemble, types)
    write_run(tmp_path / "rf", ids, p_student[::-1], types)
    md = write_report(tmp_path / "report", tmp_path / "cnn", tmp_path / "rf",
                      ensemble_dir=tmp_path / "ens").read_text()
    assert "|  | CNN | CNN ensemble | random forest |" in md
    cnn = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    rf = json.loads((tmp_path / "rf" / "metrics.json").read_text())
    assert f"| AUC | {cnn['auc']:.4f} | 1.0000 | {rf['auc']:.4f} |" in md
    assert (tmp_path / "report" / "roc_cnn_vs_rf.png").stat().st_size > 5000
