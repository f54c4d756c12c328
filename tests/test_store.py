"""The store: reader API against plain h5py, info counts, verify catching broken stores."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from conftest import read_store, synthetic_plasticc

from snia.bands import BandRegistry
from snia.ingest import run_ingest
from snia.store import Store, summarize, verify


@pytest.fixture
def store_path(tmp_path):
    lc, meta, expected = synthetic_plasticc(tmp_path, 25, 5)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False, split="test")
    return tmp_path / "s.h5", expected


def test_lightcurve_and_batches_match_plain_h5py(store_path):
    path, expected = store_path
    raw = read_store(path)
    with Store(path) as store:
        assert len(store) == 25 and store.n_observations == len(raw["observations/time"])
        lc = store.lightcurve(7)
        np.testing.assert_array_equal(lc["time"], expected[7]["time"])
        np.testing.assert_array_equal(lc["flux"], expected[7]["flux"].astype(np.float32))
        picked = np.array([20, 3, 11])  # any order: returned in the order asked
        batch = store.batch(picked)
        assert list(batch.object_id) == list(raw["objects/object_id"][picked])
        for j, i in enumerate(picked):
            a = raw["objects/offset"][i]
            b = a + raw["objects/length"][i]
            np.testing.assert_array_equal(batch.lightcurve(j)["time"], raw["observations/time"][a:b])
        batches = list(store.iter_batches(10))
        assert [len(b) for b in batches] == [10, 10, 5]
        np.testing.assert_array_equal(np.concatenate([b.obs["flux"] for b in batches]),
                                      raw["observations/flux"])
        assert batches[1].offsets[0] == 0 and batches[1].offsets[-1] == len(batches[1].obs["time"])
        with pytest.raises(KeyError, match="object 999"):
            store.lightcurve(999)


def test_tables_and_attributes_are_plain_hdf5(store_path):
    path, _ = store_path
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == 1
        assert f["bands"][3]["name"] == b"lssti" and f["taxonomy"][0]["name"] == b"Ia"
        for group in ("observations", "objects"):
            for ds in f[group].values():
                assert h5py.check_vlen_dtype(ds.dtype) is None  # no variable-length types
    with Store(path) as store:
        assert store.bands.bands == BandRegistry().bands
        inputs = store.provenance["inputs"]
        assert [p["path"].rsplit("/", 1)[1] for p in inputs] == ["lc.csv", "meta_lc.csv"]
        assert all(len(p["sha256"]) == 64 for p in inputs)


def test_summary_counts_match_the_input(store_path):
    path, expected = store_path
    info = summarize(path)
    bands = np.concatenate([e["band"] for e in expected.values()])
    names = "ugrizy"
    assert info["bands"] == {f"lsst{names[b]}": int(n) for b, n in zip(*np.unique(bands, return_counts=True))}
    times = np.concatenate([e["time"] for e in expected.values()])
    assert info["time_span_mjd"] == [times.min(), times.max()]
    targets = [e["target"] for e in expected.values()]
    assert info["types"].get("Ia", 0) == targets.count(90)
    assert info["splits"] == {"test": 25}


def test_verify_accepts_a_good_store(store_path):
    assert verify(store_path[0]) == []


def _corrupt(path, dataset, index, value):
    shard = path.with_name(path.name + ".shards") / "shard-00000.h5"
    with h5py.File(shard, "r+") as f:
        f[dataset][index] = value


@pytest.mark.parametrize("dataset,index,value,message", [
    ("objects/offset", 3, 0, "offsets not contiguous"),
    ("objects/object_id", 4, 1, "appears more than once"),
    ("observations/flux_err", 10, -1.0, "flux_err <= 0"),
    ("observations/time", 0, 70000.0, "not in time order"),
    ("observations/band", 2, 42, "band index outside"),
])
def test_verify_finds_broken_stores(store_path, dataset, index, value, message):
    path, _ = store_path
    _corrupt(path, dataset, index, value)
    failures = verify(path)
    assert failures and message in " ".join(failures)


def test_verify_notices_changed_inputs_and_missing_shards(store_path, tmp_path):
    path, _ = store_path
    lc = tmp_path / "lc.csv"
    lc.write_text(lc.read_text().replace("1,", "2,", 1))  # same size, different content
    assert any("sha256 differs" in f for f in verify(path))
    assert verify(path, check_inputs=False) == []
    shutil.rmtree(path.with_name(path.name + ".shards"))
    assert any("missing shard file" in f for f in verify(path))


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump not installed (apt-get install hdf5-tools)")
def test_h5dump_reads_the_virtual_store_from_another_folder(store_path, tmp_path):
    import subprocess

    path, expected = store_path
    out = subprocess.run(["h5dump", "-d", "/objects/object_id", "-s", "0", "-c", "3", str(path)],
                         capture_output=True, text=True, cwd="/", check=True).stdout
    first = list(expected)[:3]
    assert f"(0): {first[0]}, {first[1]}, {first[2]}" in out
