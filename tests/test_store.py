"""The store: reader API against plain h5py, info counts, verify catching broken stores."""

from __future__ import annotations

import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest
from conftest import read_store, synthetic_plasticc

from snia.bands import BandRegistry
from snia.ingest import run_ingest
from snia.store import Store, StoreError, summarize, verify


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
        # rows by object id, in the order asked; -1 for one the store does not hold
        ids = raw["objects/object_id"]
        np.testing.assert_array_equal(store.rows_of([ids[20], 999, ids[3], ids[20]]), [20, -1, 3, 20])
        assert store.index_of(ids[11]) == 11


def test_resident_store_gathers_what_the_store_reads(store_path, monkeypatch):
    """A resident store (read in blocks, here of 40 observations) returns the same batches as
    the HDF5 store, in any order, repeats included; the device's way of finding the rows (a
    search in the batch offsets, run here with NumPy) gives the same rows as the host's."""
    from snia.store import resident

    path, _ = store_path
    monkeypatch.setattr(resident, "READ_BLOCK", 40)
    with Store(path) as store:
        memory = resident.ResidentStore(store)
        picked = np.array([20, 3, 11, 3, 0, 24])
        want, got = store.batch(picked), memory.batch(picked)
        np.testing.assert_array_equal(got.object_id, want.object_id)
        np.testing.assert_array_equal(got.offsets, want.offsets)
        for key in resident.COLUMNS:
            np.testing.assert_array_equal(got.obs[key], want.obs[key], err_msg=key)
        np.testing.assert_array_equal(got.meta["type"], want.meta["type"])
        first = memory.offset[picked]
        rows = resident.device_rows(np, first, got.offsets, int(got.offsets[-1]))
        expected = np.concatenate([np.arange(a, a + n) for a, n in zip(first, memory.length[picked])])
        np.testing.assert_array_equal(rows, expected)
        assert len(memory.batch(np.array([], np.int64)).obs["time"]) == 0


def test_a_nodes_ranks_share_one_copy_of_the_columns(store_path, tmp_path, monkeypatch):
    """Published once (here in tmp_path for node memory), mapped by every rank: the ranks' batches
    are the HDF5 store's, read from the one file's pages (maps, not copies), and they stay
    readable once the names are gone."""
    from snia.parallel import Dist
    from snia.store import resident, shared

    path, _ = store_path
    monkeypatch.setattr(resident, "READ_BLOCK", 40)  # several blocks
    node = tmp_path / "shm"
    node.mkdir()
    with Store(path) as store:
        shared.publish(store, node, "job")
        assert sorted(p.name for p in node.iterdir()) == [f"job.{k}.npy" for k in sorted(resident.COLUMNS)]
        ranks = [resident.ResidentStore(store, obs=shared.mapped(node, "job")) for _ in range(2)]
        shared.unlink(node, "job")
        assert list(node.iterdir()) == [] and shared.mapped(node, "job") is None
        picked = np.array([20, 3, 11, 3, 0, 24])
        want = store.batch(picked)
        for rank in ranks:
            assert all(isinstance(v.base, np.memmap) or isinstance(v, np.memmap) for v in rank.obs.values())
            got = rank.batch(picked)
            for key in resident.COLUMNS:
                np.testing.assert_array_equal(got.obs[key], want.obs[key], err_msg=key)
        # one rank: nothing to share, nothing written, no process group needed
        assert shared.node_shared_columns(store, Dist(), folder=node) is None
        assert list(node.iterdir()) == []
        # several ranks on the node, but a node memory too small for a copy: not shared
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        assert shared.worth_sharing(store, node, 0.5)
        monkeypatch.setattr(shared, "resident_bytes", lambda store: 1 << 60)
        assert not shared.worth_sharing(store, node, 0.5)


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


# ----------------------------------------------------------------------------- damaged stores


def _shard(path):
    return path.with_name(path.name + ".shards") / "shard-00000.h5"


def _byte_of(path, dataset, index):
    """File offset of element ``index`` of ``dataset``: through its chunk when chunked (shards),
    else the dataset's contiguous storage."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        size = ds.dtype.itemsize
        if ds.chunks is None:
            return ds.id.get_offset() + index * size
        first = index // ds.chunks[0] * ds.chunks[0]
        return ds.id.get_chunk_info_by_coord((first,)).byte_offset + (index - first) * size


def _flip(path, offset, mask=0x01):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


@pytest.mark.parametrize("dataset,index,byte", [
    ("observations/flux", 17, 0),  # lowest mantissa bits: still a plausible, finite flux
    ("objects/object_id", 4, 5),  # a large, unique id: no invariant notices
])
def test_verify_names_flipped_bytes_in_a_shard(store_path, dataset, index, byte):
    path, _ = store_path
    _flip(_shard(path), _byte_of(_shard(path), dataset, index) + byte)
    failures = verify(path)
    named = [f for f in failures if f.startswith(f"{dataset} in {_shard(path)}")]
    assert named and "damaged" in named[0], failures
    # read through the store's virtual datasets, HDF5's fletcher32 refuses the chunk
    with Store(path) as store, pytest.raises(StoreError, match=rf"{path}: the store is corrupt"):
        store.batch(slice(0, 25))


def test_verify_catches_data_rewritten_through_hdf5(store_path):
    # HDF5 recomputes its own fletcher32 on a write; only the sha256 recorded at ingest notices.
    path, _ = store_path
    _corrupt(path, "observations/flux", 3, 1234.5)
    failures = verify(path)
    assert f"observations/flux in {_shard(path)}: checksum mismatch" in " ".join(failures)


def _single_file_copy(path, dest):
    """The single-file layout as the collective writer makes it: contiguous datasets, each with
    the per-rank sha256_parts (here taken over from the virtual store)."""
    with h5py.File(path, "r") as src, h5py.File(dest, "w", libver=("v110", "latest")) as out:
        for name in (f"{g}/{k}" for g in ("observations", "objects") for k in src[g]):
            out.create_dataset(name, data=src[name][...]).attrs.update(src[name].attrs)
        for name in ("bands", "taxonomy"):
            src.copy(src[name], out, name)
        out.attrs.update(src.attrs)
        out.attrs["layout"] = np.bytes_(b"single")
    return dest


@pytest.mark.parametrize("dataset", ["observations/flux", "objects/object_id", "bands"])
def test_verify_names_flipped_bytes_in_a_single_file_store(store_path, tmp_path, dataset):
    path, _ = store_path
    single = _single_file_copy(path, tmp_path / "single.h5")
    assert verify(single) == []
    _flip(single, _byte_of(single, dataset, 4) + 5)
    failures = verify(single)
    assert any(f.startswith(f"{dataset} in {single}") and "checksum mismatch" in f
               for f in failures), failures


def test_a_shard_from_another_store_is_refused(store_path, tmp_path):
    path, _ = store_path
    other = tmp_path / "other"
    other.mkdir()
    lc, meta, _ = synthetic_plasticc(other, 25, 5)  # same objects and counts ...
    lc.write_text(lc.read_text().replace(".", "1.", 1))  # ... one value differs
    run_ingest("plasticc", [lc], other / "s.h5", [meta], progress=False, split="test")
    shutil.copy(_shard(other / "s.h5"), _shard(path))
    with pytest.raises(StoreError, match=r"shard-00000.h5: .* is not the data the store was written with"):
        Store(path)
    assert any("is not the data the store was written with" in f for f in verify(path))


def _run(capsys, *args):
    from snia.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_damaged_lengths_are_refused_at_open_and_reported_by_verify(store_path, tmp_path, capsys):
    path, _ = store_path
    with h5py.File(_shard(path), "r+") as f:
        f["objects/length"][3] += 1  # HDF5 checks pass: the value itself is wrong
    with Store(path) as store, pytest.raises(
            StoreError, match=rf"{path}: the store is corrupt: offsets not contiguous: object 5 \(row 4\)"):
        store.batch(slice(0, 10))
    code, _, err = _run(capsys, "rasterize", path, "-o", tmp_path / "img.h5", "--backend", "cpu",
                        "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "offsets not contiguous" in err
    assert not (tmp_path / "img.h5").exists()
    failures = verify(path)  # every broken rule, no IndexError
    text = " ".join(failures)
    assert "offsets not contiguous" in text and "lengths add up to" in text
    assert "objects/length in" in text and "checksum mismatch" in text


@pytest.mark.parametrize("value", [42, -3])
def test_type_outside_the_taxonomy_is_reported_by_info_and_verify(store_path, capsys, value):
    path, _ = store_path
    _corrupt(path, "objects/type", 2, value)
    code, out, err = _run(capsys, "store", "info", path)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert f"object 3 (row 2) has type code {value}" in err and str(path) in err
    assert "with a type outside the taxonomy table" in " ".join(verify(path))


def test_verify_names_the_object_and_row_of_bad_observations(store_path):
    path, _ = store_path
    raw = read_store(path)
    i = int(np.flatnonzero(raw["objects/length"] >= 3)[1])
    oid, first = raw["objects/object_id"][i], int(raw["objects/offset"][i])
    _corrupt(path, "observations/time", first, 70000.0)  # after the object's second row
    _corrupt(path, "observations/flux_err", first + 2, -1.0)
    text = " ".join(verify(path))
    assert f"not in time order within their object; the first: object {oid}, observation row {first + 1}" in text
    assert f"flux_err <= 0; the first: object {oid}, observation row {first + 2}" in text


def _truncate(path):
    os.truncate(path, path.stat().st_size // 2)


def _zero_header(path):
    with open(path, "r+b") as f:
        f.write(bytes(512))


@pytest.mark.parametrize("damage", [_truncate, _zero_header], ids=["truncated", "zeroed_header"])
@pytest.mark.parametrize("which", ["store", "shard"])
def test_damaged_files_give_one_line_not_a_traceback(store_path, tmp_path, capsys, damage, which):
    path, _ = store_path
    damaged = path if which == "store" else _shard(path)
    damage(damaged)
    for command in (["store", "info", path], ["rasterize", path, "-o", tmp_path / "img.h5",
                                              "--backend", "cpu", "--no-progress"]):
        code, out, err = _run(capsys, *command)
        assert code == 2 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert "the store is corrupt" in err and str(damaged) in err
    code, out, err = _run(capsys, "store", "verify", path)
    assert "Traceback" not in err
    if which == "store":  # nothing to verify: one line, as above
        assert code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err
    else:  # the store opens: the damaged shard is a failure it reports
        assert code == 1 and out.startswith(f"FAIL shard file {damaged} cannot be read")


def test_redshift_quantiles_are_the_extragalactic_photo_z_quantiles(tmp_path, capsys):
    """`snia store redshifts`: quantiles of the metadata's hostgal_photoz over the objects with a
    photo-z > 0 (galactic objects have 0), read back from the CSV independently of the store."""
    import csv

    import yaml

    from snia.cli import main
    from snia.store import redshift_quantiles

    lc, meta, _ = synthetic_plasticc(tmp_path, 60, 4)
    rows = meta.read_text().splitlines()
    # a third of the objects galactic (photo-z 0): left out of the distribution
    rows = [rows[0]] + [",".join(r.split(",")[:5] + ["0"] + r.split(",")[6:]) if k % 3 == 0 else r
                        for k, r in enumerate(rows[1:])]
    meta.write_text("\n".join(rows) + "\n")
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    with open(meta, newline="") as f:
        z = np.array([float(r["hostgal_photoz"]) for r in csv.DictReader(f)])
    expected = np.quantile(z[z > 0], np.linspace(0, 1, 5))
    np.testing.assert_allclose(redshift_quantiles(tmp_path / "s.h5", 5), expected, atol=1e-4)
    assert main(["store", "redshifts", str(tmp_path / "s.h5"), "--quantiles", "5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)["augment"]["redshift_quantiles"]
    np.testing.assert_allclose(printed, expected, atol=1e-4)
    with pytest.raises(StoreError, match="too few"):
        redshift_quantiles(tmp_path / "s.h5", 100)


def test_blocks_are_whole_objects_of_bounded_size_in_whole_batches(store_path):
    """Block reads: consecutive, covering every object once, each within the observation budget
    unless one batch alone exceeds it, a whole number of batches but the last; only the columns
    asked for are read, and they are the store's rows."""
    with Store(store_path[0]) as store:
        lengths = store.objects["length"]
        for budget, objects in ((40, 1), (40, 3), (10**6, 4), (1, 1)):
            bounds = store.block_bounds(budget, objects)
            assert [b[0] for b in bounds] == [0] + [b[1] for b in bounds[:-1]]
            assert bounds[-1][1] == len(store)
            for start, stop in bounds:
                if stop != len(store):
                    assert (stop - start) % objects == 0
                if stop - start > objects:
                    assert lengths[start:stop - objects].sum() <= budget
        for start, block in store.blocks(40, ("time", "band"), 3):
            assert set(block.obs) == {"time", "band"}
            every = store.batch(slice(start, start + len(block)))
            for key in ("time", "band"):
                np.testing.assert_array_equal(block.obs[key], every.obs[key])


def test_bands_present_are_recorded_at_ingest_and_read_without_a_scan(store_path, monkeypatch):
    """Ingest records the bands observed; readers take the record instead of scanning, a store
    written without one is scanned, and verify names a record that disagrees with the data."""
    path, expected = store_path
    with h5py.File(path, "r") as f:  # the whole column, read plainly
        observed = sorted(np.unique(f["observations/band"][...]).tolist())
    assert len(observed) == len({int(b) for lc in expected.values() for b in lc["band"]})
    with Store(path) as store:
        assert store.recorded_bands_present() == tuple(observed)

        def no_scan(self):
            raise AssertionError("scanned observations/band despite the record")
        with monkeypatch.context() as m:
            m.setattr(Store, "scan_bands_present", no_scan)
            assert store.bands_present() == tuple(observed)
    with h5py.File(path, "r+") as f:
        del f.attrs["bands_present"]  # a store written before the record existed
    with Store(path) as store:
        assert store.recorded_bands_present() is None
        assert store.bands_present() == tuple(observed)
    assert verify(path, check_inputs=False) == []
    with h5py.File(path, "r+") as f:
        f.attrs["bands_present"] = np.bytes_(json.dumps(observed[:-1]).encode())
    failures = verify(path, check_inputs=False)
    assert failures == [f"the bands_present attribute records bands {observed[:-1]}, the "
                        f"observations hold bands {observed}"]
    with h5py.File(path, "r+") as f:
        f.attrs["bands_present"] = np.bytes_(b"[0, 99]")
    with Store(path) as store, pytest.raises(StoreError, match="band code 99 in the bands_present"):
        store.bands_present()


def test_manifest_names_are_relative_escaped_and_read_back(tmp_path):
    """The manifest's text: names relative to the inputs' common folder (subfolders kept), odd
    characters escaped, sizes and sha256 as recorded; read back to the same records; its digest
    is the sha256 of that text."""
    import hashlib

    from snia.store import manifest_summary, read_manifest, write_manifest
    from snia.store.manifest import manifest_text

    inputs = [{"path": "/data/survey/a/lc 1.fits", "bytes": 10, "sha256": "1" * 64},
              {"path": "/data/survey/b/tab\there\\n.fits", "bytes": 20, "sha256": "2" * 64},
              {"path": "/data/survey/meta.csv", "bytes": 5, "sha256": None}]  # an old record
    text, root = manifest_text(inputs)
    assert root == "/data/survey"
    assert text == ("file\tbytes\tsha256\n"
                    f"a/lc 1.fits\t10\t{'1' * 64}\n"
                    f"b/tab\\there\\\\n.fits\t20\t{'2' * 64}\n"
                    "meta.csv\t5\t-\n")
    written = write_manifest(tmp_path / "x.h5", inputs)
    assert written == tmp_path / "x.manifest.tsv" and written.read_bytes() == text.encode()
    assert read_manifest(written) == [{"file": "a/lc 1.fits", "bytes": 10, "sha256": "1" * 64},
                                      {"file": "b/tab\there\\n.fits", "bytes": 20, "sha256": "2" * 64},
                                      {"file": "meta.csv", "bytes": 5, "sha256": "-"}]
    assert manifest_summary(inputs) == {"files": 3, "bytes": 35, "root": "/data/survey",
                                        "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert manifest_summary([]) == {"files": 0, "bytes": 0, "root": None,
                                    "sha256": hashlib.sha256(b"file\tbytes\tsha256\n").hexdigest()}
    # no common folder (a relative path among absolute ones): whole paths, no root
    mixed = [{"path": "/a/x.csv", "bytes": 1, "sha256": "3" * 64}, {"path": "y.csv", "bytes": 2}]
    assert manifest_text(mixed) == (f"file\tbytes\tsha256\n/a/x.csv\t1\t{'3' * 64}\ny.csv\t2\t-\n", None)
    (tmp_path / "bad.tsv").write_text("name,size\n")
    with pytest.raises(StoreError, match="bad.tsv: not a store manifest"):
        read_manifest(tmp_path / "bad.tsv")


def dense_store(folder, n_objects: int, n_obs: int = 150):
    """A valid store of ``n_objects`` light curves of ``n_obs`` observations each."""
    rng = np.random.default_rng(n_objects)
    oid = np.repeat(np.arange(1, n_objects + 1), n_obs)
    t = 60000 + np.tile(np.arange(n_obs, dtype=np.float64), n_objects)
    rows = np.column_stack([oid, t, rng.integers(0, 6, oid.size), rng.normal(0, 50, oid.size),
                            rng.uniform(1, 5, oid.size), rng.integers(0, 2, oid.size)])
    folder.mkdir()
    lc, meta = folder / "lc.csv", folder / "meta.csv"
    np.savetxt(lc, rows, fmt=["%d", "%.4f", "%d", "%.3f", "%.3f", "%d"], delimiter=",",
               header="object_id,mjd,passband,flux,flux_err,detected_bool", comments="")
    meta.write_text("object_id,ra,decl,ddf_bool,hostgal_specz,hostgal_photoz,hostgal_photoz_err,"
                    "mwebv,target\n" + "".join(f"{i},1.0,-2.0,0,-9,0.3,0.05,0.02,90\n"
                                               for i in range(1, n_objects + 1)))
    run_ingest("plasticc", [lc], folder / "s.h5", [meta], progress=False)
    return folder / "s.h5"


def traced_peak(fn) -> int:
    """Peak bytes Python and NumPy allocated while ``fn`` ran (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_verify_memory_is_bounded_by_its_block_not_by_the_store(tmp_path, monkeypatch):
    """4x the objects (and observations) costs verify only the per-object table's bytes, not
    4x the observations: those are read in blocks of VERIFY_BLOCK observations (here 3,000), as
    the checksums are hashed in blocks of HASH_BLOCK rows."""
    from snia.store import check, schema

    monkeypatch.setattr(check, "VERIFY_BLOCK", 3000, raising=False)
    monkeypatch.setattr(schema, "HASH_BLOCK", 3000)
    small, large = dense_store(tmp_path / "small", 100), dense_store(tmp_path / "large", 400)
    peaks = []
    for path in (small, large):
        assert verify(path) == []
        peaks.append(traced_peak(lambda path=path: verify(path)))
    observations_bytes = 300 * 150 * 29  # what reading the added observations whole would take
    assert peaks[1] - peaks[0] < 300 * 300, (peaks, observations_bytes)  # 300 B per added object


def test_verify_says_how_far_it_is_in_log_lines(store_path, capsys, monkeypatch):
    import snia.progress

    monkeypatch.setattr(snia.progress, "MIN_SECONDS", 0.0)  # every 5 % step, however fast
    path, _ = store_path
    code, out, err = _run(capsys, "store", "verify", path, "--no-progress")
    assert code == 0 and out.strip().endswith(": OK")
    for stage in ("verify: checksums", "verify: observations"):
        percents = [int(p) for p in re.findall(rf"{stage}: +(\d+) %", err)]
        assert percents and percents[-1] == 100 and percents == sorted(set(percents)), err
    assert "(25 of 25 objects" in err
