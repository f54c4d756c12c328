"""The model that ships with snia (snia.shipped): packaging keeps the model's answers and records
its provenance, `snia classify` uses it without --checkpoint, `snia model info` tells what it is,
and the packaged model itself scores the PLAsTiCC test example as its provenance says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import error_line

pytest.importorskip("torch", reason="PyTorch not installed")


@pytest.fixture(scope="module")
def packaged(trained, tmp_path_factory):
    from snia.cli import main

    folder = tmp_path_factory.mktemp("shipped")
    assert main(["evaluate", str(trained["store"]), "--checkpoint", str(trained["model"]),
                 "-o", str(folder / "eval")]) == 0
    assert main(["model", "package", str(trained["model"]), "--evaluation", str(folder / "eval"),
                 "--train-store", str(trained["store"]), "-o", str(folder / "model")]) == 0
    return folder


def test_packaging_drops_only_what_resuming_needs_and_keeps_the_answers(trained, packaged, tmp_path):
    import torch

    from snia.cli import main

    original = torch.load(trained["model"], weights_only=True)
    shipped = torch.load(packaged / "model" / "snia_plasticc.pt", weights_only=True)
    assert set(original) - set(shipped) == {"optimizer", "scheduler", "torch_rng"}
    for key in original["model"]:
        assert torch.equal(original["model"][key], shipped["model"][key])
    store = str(trained["store"])
    assert main(["classify", store, "--checkpoint", str(trained["model"]), "-o", str(tmp_path / "a.csv")]) == 0
    assert main(["classify", store, "--checkpoint", str(packaged / "model" / "snia_plasticc.pt"),
                 "-o", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_provenance_and_model_info_say_what_the_model_is(trained, packaged, capsys, monkeypatch):
    from snia import shipped
    from snia.cli import main
    from snia.files import sha256_of

    metrics = json.loads((packaged / "eval" / "metrics.json").read_text())
    prov = json.loads((packaged / "model" / "provenance.json").read_text())
    assert prov["sha256"] == sha256_of(packaged / "model" / "snia_plasticc.pt")
    assert prov["metrics"]["auc"] == metrics["auc"] and prov["metrics"]["objects"] == 40
    assert prov["trained_on"]["objects"] == 40 and prov["trained_on"]["inputs"][0]["file"] == "lc.csv"
    assert prov["git_commit"] == metrics["provenance"]["git_commit"]
    monkeypatch.setattr(shipped, "SHIPPED", packaged / "model")
    assert main(["model", "info"]) == 0
    out = capsys.readouterr().out
    assert f"AUC         {metrics['auc']:.4f}" in out and "store: 40 objects" in out


def test_classify_without_a_checkpoint_uses_the_packaged_model(trained, packaged, tmp_path, monkeypatch,
                                                               capsys):
    from snia import shipped
    from snia.cli import main

    monkeypatch.setattr(shipped, "SHIPPED", packaged / "model")
    assert main(["classify", str(trained["store"]), "-o", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text() == (packaged / "eval" / "predictions.csv").read_text()
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "nothing")
    assert main(["classify", str(trained["store"]), "-o", str(tmp_path / "q.csv")]) == 2
    assert "no model ships with this install" in error_line(capsys.readouterr().err)


def test_a_model_is_packaged_only_with_its_own_evaluation(trained, packaged, tmp_path, capsys):
    from snia.cli import main

    other = packaged / "model" / "snia_plasticc.pt"  # another file (its sha256 differs)
    assert main(["model", "package", str(other), "--evaluation", str(packaged / "eval"),
                 "--train-store", str(trained["store"]), "-o", str(tmp_path / "m")]) == 2
    assert "package a model with its own evaluation" in error_line(capsys.readouterr().err)
    # packaging over the very checkpoint it reads is refused before any work, the file intact
    before = other.read_bytes()
    assert main(["model", "package", str(other), "--evaluation", str(packaged / "eval"),
                 "--train-store", str(trained["store"]), "-o", str(other.parent)]) == 2
    line = error_line(capsys.readouterr().err)
    assert "would replace that input" in line and str(other) in line and other.read_bytes() == before


def test_the_shipped_model_scores_the_plasticc_test_example_as_documented(plasticc_data, tmp_path):
    """A fresh install: the packaged model classifies the PLAsTiCC test example and gets the AUC
    its provenance.json (and the README) gives."""
    from snia import shipped
    from snia.cli import main
    from snia.metrics import auc

    if not (shipped.SHIPPED / shipped.CHECKPOINT_NAME).is_file():
        pytest.fail(f"no packaged model in {shipped.SHIPPED}")
    prov = json.loads((shipped.SHIPPED / shipped.PROVENANCE_NAME).read_text())
    store = tmp_path / "test.h5"
    assert main(["ingest", "--format", "plasticc", str(plasticc_data / "sniabcii_test_lightcurves_example.csv"),
                 "--metadata", str(plasticc_data / "sniabcii_test_metadata_example.csv"), "-o", str(store),
                 "--no-progress"]) == 0
    assert main(["classify", str(store), "-o", str(tmp_path / "p.csv")]) == 0
    rows = [r.split(",") for r in (tmp_path / "p.csv").read_text().splitlines()[1:]]
    y = np.array([r[2] == "Ia" for r in rows], dtype=int)
    p = np.array([float(r[1]) for r in rows])
    assert len(rows) == prov["metrics"]["objects"] == 5000
    assert auc(y, p) == pytest.approx(prov["metrics"]["auc"], abs=2e-4)
