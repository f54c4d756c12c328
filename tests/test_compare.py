"""The architecture comparison: each row's numbers are the trained model's, its history's and its
evaluation's; the CSV, the plot and the report's table carry them; missing inputs are named."""

from __future__ import annotations

import csv
import json
import statistics

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (make test installs torch==2.13.0)")

from conftest import synthetic_plasticc  # noqa: E402

from snia.compare import EARLY_DAY, markdown_table, quality, read_csv, training_speed  # noqa: E402
from snia.errors import ConfigError  # noqa: E402
from snia.ingest import run_ingest  # noqa: E402
from snia.train import TrainConfig, run_training  # noqa: E402

# two tiny models of different kinds: images (cnn) and observation sequences (gru)
MODELS = {"cnn": {"channels": [4, 8], "groups": 2, "hidden": 8},
          "gru": {"arch": "gru", "hidden": 8, "layers": 1}}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Two models trained and evaluated on a small store, then `snia compare` on them."""
    from snia.cli import main

    folder = tmp_path_factory.mktemp("compare")
    lc, meta, _ = synthetic_plasticc(folder, 40, 5)
    store = folder / "s.h5"
    run_ingest("plasticc", [lc], store, [meta], progress=False)
    runs = []
    for name, model in MODELS.items():
        run = folder / name
        cfg = TrainConfig.from_dict({"kind": "heatmap", "epochs": 2, "batch_size": 8,
                                     "val_fraction": 0.25, "min_epoch_samples": 0, "model": model})
        run_training(store, run, cfg)
        assert main(["evaluate", str(store), "--checkpoint", str(run / "best.pt"),
                     "-o", str(run / "evaluate")]) == 0
        runs.append(str(run))
    out = folder / "out"
    out.mkdir()
    assert main(["compare", *runs, "--store", str(store), "-o", str(out / "compare.csv"),
                 "--plot", str(out / "compare.png")]) == 0
    return {"store": store, "folder": folder, "csv": out / "compare.csv", "rows": read_csv(out / "compare.csv")}


def test_each_row_is_its_models_size_history_and_evaluation(compared):
    from snia.inference import Member
    from snia.models.registry import example_inputs, flops_per_sample, parameter_count

    rows = compared["rows"]
    assert [(r["model"], r["arch"]) for r in rows] == [("cnn", "cnn"), ("gru", "gru")]
    for r in rows:
        run = compared["folder"] / r["model"]
        member = Member(run / "best.pt")
        model = member.model
        assert r["parameters"] == parameter_count(model) > 0
        # images of the geometry the model was trained on; sequences of 100 observations
        inputs = example_inputs(model, tuple(member.spec.shape[1:]), 100)
        assert r["mflop_per_lc"] == pytest.approx(flops_per_sample(model, inputs) / 1e6, rel=1e-5)
        with open(run / "history.csv", newline="") as f:
            rates = [float(x["samples_per_s"]) for x in csv.DictReader(f)]
        assert r["epochs"] == len(rates) == 2
        assert r["train_samples_per_s"] == pytest.approx(statistics.median(rates), rel=1e-5)
        m = json.loads((run / "evaluate" / "metrics.json").read_text())
        assert r["auc"] == pytest.approx(m["auc"], rel=1e-5)
        assert r["auc_development"] == pytest.approx(m["halves"]["development"]["auc"], rel=1e-5)
        assert r["auc_report"] == pytest.approx(m["halves"]["report"]["auc"], rel=1e-5)
        assert r["purity"] == pytest.approx(m["at_best_fom"]["purity"], rel=1e-5)
        assert r["brier"] == pytest.approx(m["brier"], rel=1e-5)
        early = next(x for x in m["early"] if x["days"] == EARLY_DAY)
        assert r[f"auc_{EARLY_DAY}d"] == pytest.approx(early["auc"], rel=1e-5)
        assert np.isfinite(r["infer_lc_per_s"]) and r["infer_lc_per_s"] > 0
        assert r["device"] == "cpu"


def test_the_plot_and_the_reports_table(compared, tmp_path):
    import matplotlib.image

    from snia.report import write_report

    plot = compared["csv"].with_suffix(".png")
    assert matplotlib.image.imread(plot).shape[2] in (3, 4)  # a PNG that decodes
    header, cells = markdown_table(compared["rows"])
    assert len(header) == len(cells[0]) and [c[0] for c in cells] == ["cnn", "gru"]
    r = compared["rows"][1]
    assert cells[1][5] == f"{r['auc_development']:.3f} / {r['auc_report']:.3f} / {r['auc']:.3f}"
    cnn = compared["folder"] / "cnn" / "evaluate"
    report = write_report(tmp_path / "report", cnn, compare_csv=compared["csv"],
                          n_resamples=20).read_text()
    section = report[report.index("## Architectures"):]
    assert f"| gru | {int(r['parameters']):,} |" in section
    assert "compare.png)" in section  # the plot, as a figure of the section
    html = (tmp_path / "report" / "report.html").read_text()
    assert "id='architectures'" in html or 'id="architectures"' in html


def test_training_speed_is_the_median_over_epochs(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,train_loss,samples_per_s\n1,0.5,100\n2,0.4,300\n3,0.3,200\n"
                       "4,0.3,1000\n")
    assert training_speed(history) == (250.0, 4)  # the median of 100, 200, 300, 1000
    history.write_text("epoch,train_loss,samples_per_s\n")
    with pytest.raises(ConfigError, match="history.csv: no epoch"):
        training_speed(history)


def test_quality_columns_come_from_metrics_json(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({
        "auc": 0.9, "brier": 0.1, "at_best_fom": {"purity": 0.8, "completeness": 0.7, "fom": 0.5},
        "halves": {"development": {"auc": 0.88}, "report": {"auc": 0.92}},
        "early": [{"days": 0, "auc": 0.6}, {"days": EARLY_DAY, "auc": 0.75}, {"days": "all", "auc": 0.9}]}))
    assert quality(path) == {"auc": 0.9, "auc_development": 0.88, "auc_report": 0.92,
                             "purity": 0.8, "completeness": 0.7, "fom": 0.5, "brier": 0.1,
                             f"auc_{EARLY_DAY}d": 0.75}
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="metrics.json: cannot read"):
        quality(path)


def test_a_run_without_its_evaluation_is_named_exit_2(compared, tmp_path, capsys):
    from snia.cli import main

    bare = tmp_path / "resnet"
    bare.mkdir()
    (bare / "best.pt").write_bytes(b"")
    code = main(["compare", str(compared["folder"] / "cnn"), str(bare), "--store",
                 str(compared["store"]), "-o", str(tmp_path / "c.csv")])
    assert code == 2
    assert f"{bare}: no history.csv, evaluate/metrics.json" in capsys.readouterr().err
    assert not (tmp_path / "c.csv").exists()
