"""The device check in its CPU smoke mode: one command, one table (as CI runs it; on a GPU the
same command measures the kernels and training on the device)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, synthetic_plasticc

from snia.ingest import run_ingest


def train_and_test_stores(folder, train: tuple, test: tuple) -> list:
    """Two synthetic stores, train.h5 and test.h5, each (objects, first id; the id is also its
    seed)."""
    stores = []
    for name, (n, first) in (("train", train), ("test", test)):
        lc, meta, _ = synthetic_plasticc(folder, n, first, name=f"{name}.csv", first_id=first)
        run_ingest("plasticc", [lc], folder / f"{name}.h5", [meta], progress=False)
        stores.append(folder / f"{name}.h5")
    return stores


def test_device_check_smoke_prints_one_table(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    lc, meta, _ = synthetic_plasticc(tmp_path, 300, 7)
    run_ingest("plasticc", [lc], tmp_path / "train.h5", [meta], progress=False)
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "bench" / "device_check.sh"), "--smoke", "--store",
                           str(tmp_path / "train.h5"), "--objects", "600", "--steps", "2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout[done.stdout.index("| section | item | value |"):]
    assert "| rasterize | heatmap 16x60, cpu |" in table and "LC/s (600 objects)" in table
    assert "| GPU tests | tests/test_augment.py |" in table and "passed" in table
    assert "pipeline efficiency" in table and "samples/s" in table
    archs = [line for line in table.splitlines() if line.startswith("| archs |")]
    assert [line.split()[4] for line in archs[:2]] == ["cnn", "gru"], archs  # one row each


def test_survey_tiles_real_light_curves_and_prints_a_row_per_stage_and_fraction(tmp_path):
    """bench/survey.py at N = 42: the store holds exactly N objects, ids 1..N, each object the
    light curve of template k mod T (training templates, then test ones) read back from the CSV
    it wrote; the table has a row per stage and fraction with that many objects."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import _mpiexec, read_store

    stores = train_and_test_stores(tmp_path, (7, 1), (5, 1000))
    work, n = tmp_path / "work", 42
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "survey.py"), "--objects", str(n),
                           "--ranks", "2", "--train-store", str(stores[0]), "--test-store",
                           str(stores[1]), "--workdir", str(work), "--keep"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| stage")]
    expected = [("build CSV", "objects 0..N/4", 10), ("build CSV", "objects N/4..N/2", 11),
                ("build CSV", "objects N/2..N", 21)]
    for stage in ("ingest", "store info", "store verify", "classify"):
        expected += [(stage, "1/4", 10), (stage, "1/2", 21), (stage, "all", 42)]
    assert [(r[0], r[1], int(r[2])) for r in rows] == expected
    ranks = 2 if _mpiexec() is not None else 1
    for r in rows:
        seconds, speed = float(r[3]), float(r[4].replace(",", ""))
        # the wall time is printed rounded (2 decimals under a second, else 1), the rate from the
        # time itself: the rate lies within what half a unit of the last digit allows
        half = 0.5 * 10.0 ** -len(r[3].split(".")[1])
        assert seconds > 0
        assert int(r[2]) / (seconds + half) - 1 <= speed <= int(r[2]) / max(seconds - half, 1e-9) + 1
        peaks = [float(p) for p in r[5].split(" / ")]
        assert len(peaks) == (ranks if r[0] == "ingest" else 1) and all(p > 10 for p in peaks)
        if r[1] in ("1/4", "objects 0..N/4"):
            assert r[6] == "(reference)"
        elif r[1] in ("1/2", "objects N/4..N/2"):
            assert r[6] == ""
        else:
            assert r[6].startswith(("flat", "GROWS")), r
    assert f"N = {n:,} objects; ingest on {ranks} " in done.stdout

    big = read_store(work / "survey_3.h5")
    ids = big["objects/object_id"]
    assert len(ids) == n and np.array_equal(np.sort(ids), np.arange(1, n + 1))
    templates = [read_store(s) for s in stores]
    sources = [(t, i) for t in templates for i in range(len(t["objects/object_id"]))]
    for k in range(n):
        tpl, i = sources[k % len(sources)]
        mine = slice(big["objects/offset"][k], big["objects/offset"][k] + big["objects/length"][k])
        theirs = slice(tpl["objects/offset"][i], tpl["objects/offset"][i] + tpl["objects/length"][i])
        assert ids[k] == k + 1
        for column in ("time", "band", "flux", "flux_err", "flag"):
            assert np.array_equal(big[f"observations/{column}"][mine],
                                  tpl[f"observations/{column}"][theirs]), (k, column)
        for column in ("source_type", "hostgal_photoz", "ra", "ddf"):
            assert big[f"objects/{column}"][k] == tpl[f"objects/{column}"][i], (k, column)
    with open(work / "p_ia_3.csv") as f:
        assert sorted(int(line.split(",")[0]) for line in list(f)[1:]) == list(range(1, n + 1))


def test_forest_reobserved_prints_a_row_per_training_set_and_blend(tmp_path):
    """bench/forest_reobserved.py on small stores: a row per number of copies, each with a
    CNN blend row (weight chosen on the development half), AUCs in [0, 1]."""
    pytest.importorskip("light_curve", reason="light-curve not installed")
    from snia.gp.file import fit_store
    from snia.gp.fit import GPSettings

    stores = train_and_test_stores(tmp_path, (60, 1), (80, 5000))
    fit_store(stores[0], settings=GPSettings(steps=2), progress=False)
    from snia.predictions import write_predictions
    from snia.store import Store

    with Store(stores[1]) as store:
        ids, types = store.objects["object_id"], store.objects["type"]
    write_predictions(tmp_path / "cnn.csv", ids, np.linspace(0, 1, len(ids)), types)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "forest_reobserved.py"), "--train",
                           str(stores[0]), "--test", str(stores[1]), "--copies", "0", "1", "--cnn",
                           str(tmp_path / "cnn.csv")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| forest")]
    assert [r[0] for r in rows] == ["(the CNN alone)", "the training set",
                                    rows[2][0], "the training set + 1 re-observed copies", rows[4][0]]
    assert rows[2][0].startswith("CNN + that forest, rank average at")
    assert all(0 <= float(v) <= 1 for r in rows for v in r[1:])
    assert "60 training objects, 60 re-observed rows" in done.stdout


def test_gp_features_prints_a_row_per_model_feature_set_and_copies(tmp_path):
    """bench/gp_features.py on small stores: boosted trees and a forest on each feature set
    (light-curve, GP, both) with 0 and 1 copies, AUCs in [0, 1], and the one best on the
    development half written as a predictions.csv of every test object."""
    pytest.importorskip("light_curve", reason="light-curve not installed")
    from snia.gp.file import fit_store
    from snia.gp.fit import GPSettings
    from snia.predictions import read_predictions

    stores = train_and_test_stores(tmp_path, (60, 1), (80, 5000))
    fit_store(stores[0], settings=GPSettings(steps=2), progress=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gp_features.py"), "--train",
                           str(stores[0]), "--test", str(stores[1]), "--copies", "1", "--write",
                           str(tmp_path / "best.csv")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| model")]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (m, f, c) for c in ("0", "1") for f in ("light-curve", "GP", "both")
        for m in ("boosted trees", "random forest")]
    assert all(0 <= float(v) <= 1 for r in rows for v in r[3:6])
    assert "60 training objects, 60 re-observed rows" in done.stdout
    assert len(read_predictions(tmp_path / "best.csv")["object_id"]) == 80
