"""Ingestion: PLAsTiCC CSV reader, bad-input policy, atomic output, MPI ranks, real data counts."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from conftest import read_store, synthetic_plasticc, write_plasticc

from snia.errors import InputError, SniaError
from snia.ingest import run_ingest
from snia.store import Store
from snia.taxonomy import INDEX

META = "{oid},10.0,-20.0,1,-9,0.5,0.05,0.02,90"
GOOD = ["1,59580.1,0,10.5,1.5,1", "1,59581.2,1,11.5,1.5,0", "2,59580.3,2,-3.25,2.0,0",
        "2,59582.4,3,4.0,2.0,1"]


def ingest(tmp_path, lc, meta, **kw):
    kw.setdefault("progress", False)
    return run_ingest("plasticc", [lc] if not isinstance(lc, list) else lc, tmp_path / "s.h5",
                      [meta], **kw)


def bad_case(tmp_path, rows, meta_ids=(1, 2)):
    return write_plasticc(tmp_path, rows, [META.format(oid=i) for i in meta_ids])


# ----------------------------------------------------------------------------- good input


@pytest.mark.parametrize("chunk_bytes", [64, 700, 16 << 20])
def test_synthetic_roundtrip_matches_the_input_exactly(tmp_path, chunk_bytes):
    seed = int(np.random.default_rng().integers(1 << 31))
    lc, meta, expected = synthetic_plasticc(tmp_path, 60, seed)
    result = ingest(tmp_path, lc, meta, chunk_bytes=chunk_bytes)
    assert (result.n_objects, result.n_obs) == (60, sum(len(e["time"]) for e in expected.values()))
    data = read_store(tmp_path / "s.h5")
    assert list(data["objects/object_id"]) == list(expected), f"seed {seed}"  # input order kept
    offsets = np.concatenate(([0], np.cumsum(data["objects/length"])[:-1]))
    np.testing.assert_array_equal(data["objects/offset"], offsets)
    for i, (_oid, e) in enumerate(expected.items()):
        a, b = offsets[i], offsets[i] + data["objects/length"][i]
        np.testing.assert_array_equal(data["observations/time"][a:b], e["time"])
        np.testing.assert_array_equal(data["observations/band"][a:b], e["band"])  # LSST u..y = 0..5
        np.testing.assert_array_equal(data["observations/flux"][a:b], e["flux"].astype(np.float32))
        np.testing.assert_array_equal(data["observations/flux_err"][a:b], e["flux_err"].astype(np.float32))
        np.testing.assert_array_equal(data["observations/flag"][a:b], e["flag"])
        assert data["objects/source_type"][i] == e["target"]
    names = {90: "Ia", 42: "II", 62: "Ibc", 67: "Ia-91bg", 52: "Iax", 95: "SLSN", 88: "other"}
    assert [INDEX[names[e["target"]]] for e in expected.values()] == list(data["objects/type"])


def test_unsorted_times_are_time_ordered_per_object(tmp_path):
    rows = ["1,59590.0,0,3.0,1.0,0", "1,59580.0,1,1.0,1.0,0", "1,59585.0,2,2.0,1.0,0"]
    lc, meta = bad_case(tmp_path, rows, meta_ids=[1])
    ingest(tmp_path, lc, meta)
    data = read_store(tmp_path / "s.h5")
    np.testing.assert_array_equal(data["observations/time"], [59580.0, 59585.0, 59590.0])
    np.testing.assert_array_equal(data["observations/flux"], [1.0, 2.0, 3.0])


def test_metadata_fields_are_mapped(tmp_path):
    lc, meta = write_plasticc(tmp_path, GOOD, ["1,10.5,-20.25,1,0.31,0.3,0.02,0.013,90",
                                               "2,11.0,-21.0,0,-9,0.6,0.04,0.02,0"])
    ingest(tmp_path, lc, meta, split="train")
    with Store(tmp_path / "s.h5") as store:
        one, two = store.lightcurve(1), store.lightcurve(2)
        assert (one["ra"], one["dec"], one["ddf"]) == (10.5, -20.25, 1)
        assert one["specz"] == np.float32(0.31) and np.isnan(two["specz"])  # -9 means none
        assert one["hostgal_photoz"] == np.float32(0.3) and one["mwebv"] == np.float32(0.013)
        assert one["type"] == INDEX["Ia"] and two["type"] == INDEX["unknown"]
        assert two["source_type"] == 0
        assert store.split_names[one["split"]] == "train"


def test_test_set_truth_comes_from_true_target(tmp_path):
    header = "object_id,ra,decl,ddf,hostgal_specz,hostgal_photoz,hostgal_photoz_err,distmod,mwebv,target,true_target"
    lc, meta = write_plasticc(tmp_path, GOOD, ["1,1,1,0,-9,0.5,0.1,40,0.01,0,42",
                                               "2,1,1,0,-9,0.5,0.1,40,0.01,0,90"],
                              meta_header=header)
    ingest(tmp_path, lc, meta)
    data = read_store(tmp_path / "s.h5")
    assert list(data["objects/type"]) == [INDEX["II"], INDEX["Ia"]]
    assert list(data["objects/source_type"]) == [42, 90]


# ----------------------------------------------------------------------------- bad input

BAD_ROWS = [
    # (name, rows, reason, line of the first problem, object named)
    ("non_numeric", GOOD[:2] + ["2,59580.3,2,abc,2.0,0", GOOD[3]], "non_numeric", 4, None),
    ("nan_flux", GOOD[:3] + ["2,59582.4,3,nan,2.0,1"], "nonfinite_flux", 5, 2),
    ("inf_err", GOOD[:1] + ["1,59581.2,1,11.5,inf,0"] + GOOD[2:], "nonfinite_flux_err", 3, 1),
    ("zero_err", GOOD[:3] + ["2,59582.4,3,4.0,0,1"], "nonpositive_flux_err", 5, 2),
    ("negative_err", ["1,59580.1,0,10.5,-1.5,1"] + GOOD[1:], "nonpositive_flux_err", 2, 1),
    ("unknown_band", GOOD[:2] + ["2,59580.3,7,-3.25,2.0,0", GOOD[3]], "unknown_band", 4, 2),
    ("duplicate_obs", GOOD + ["2,59582.4,3,4.0,2.0,1"], "duplicate_observation", 6, 2),
    ("missing_value", GOOD[:2] + ["2,59580.3,2,,2.0,0", GOOD[3]], "missing_value", 4, None),
    ("truncated", GOOD[:3] + ["2,59582.4,3"], "wrong_field_count", 5, None),
    ("garbled", GOOD[:2] + ["\x00\x01\x02 garbage", GOOD[3]], "wrong_field_count", 4, None),
    ("empty_line", GOOD[:2] + ["", GOOD[3]], "missing_value", 4, None),
]


@pytest.mark.parametrize("name,rows,reason,line,oid", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row_fails_naming_file_line_and_object(tmp_path, name, rows, reason, line, oid):
    lc, meta = bad_case(tmp_path, rows)
    with pytest.raises(InputError) as err:
        ingest(tmp_path, lc, meta)
    message = str(err.value)
    assert f"{lc}:line {line}" in message
    if oid is not None:
        assert f"object {oid}" in message
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize("name,rows,reason,line,oid", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row_is_dropped_and_counted_under_skip(tmp_path, name, rows, reason, line, oid):
    lc, meta = bad_case(tmp_path, rows)
    result = ingest(tmp_path, lc, meta, on_error="skip")
    assert result.problems.counts == {reason: 1}
    data = read_store(tmp_path / "s.h5")
    kept = [r for i, r in enumerate(rows) if i + 2 != line]  # the bad row is line `line`
    assert result.n_obs == len(kept) == len(data["observations/time"])
    np.testing.assert_array_equal(data["observations/flux"],
                                  np.array([float(r.split(",")[3]) for r in kept], np.float32))
    with Store(tmp_path / "s.h5") as store:
        assert store.provenance["skipped"] == {reason: 1}  # the store records what was left out


def test_two_measurements_at_one_time_and_band_are_both_kept(tmp_path):
    # Not a duplicate record: e.g. back-to-back exposures with MJD rounded to 3 decimals.
    lc, meta = bad_case(tmp_path, GOOD + ["2,59582.4,3,5.0,2.0,1"])
    ingest(tmp_path, lc, meta)
    with Store(tmp_path / "s.h5") as store:
        assert list(store.lightcurve(2)["flux"]) == [-3.25, 4.0, 5.0]


def test_missing_column_is_named(tmp_path):
    lc, meta = write_plasticc(tmp_path, ["1,59580.1,0,10.5,1"], [META.format(oid=1)],
                              lc_header="object_id,mjd,passband,flux,detected_bool")
    with pytest.raises(InputError, match=r"lc.csv:line 1: missing column\(s\) \['flux_err'\]"):
        ingest(tmp_path, lc, meta, on_error="skip")  # no policy can make up a column


def test_extra_column_fails_or_is_reported(tmp_path):
    rows = [r + ",7" for r in GOOD]
    lc, meta = write_plasticc(tmp_path, rows, [META.format(oid=i) for i in (1, 2)],
                              lc_header="object_id,mjd,passband,flux,flux_err,detected_bool,seeing")
    with pytest.raises(InputError, match=r"lc.csv:line 1: unexpected column\(s\) \['seeing'\]"):
        ingest(tmp_path, lc, meta)
    result = ingest(tmp_path, lc, meta, on_error="skip")
    assert result.problems.counts == {"extra_column": 1} and result.n_obs == 4


def test_object_missing_from_metadata(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD + ["3,59580.0,0,1.0,1.0,0"], meta_ids=[1, 2])
    with pytest.raises(InputError, match=r"lc.csv:line 6: object 3 has a light curve but is not in the metadata"):
        ingest(tmp_path, lc, meta)
    result = ingest(tmp_path, lc, meta, on_error="skip")
    assert result.problems.counts == {"object_missing_from_metadata": 1}
    assert list(read_store(tmp_path / "s.h5")["objects/object_id"]) == [1, 2]


def test_metadata_without_light_curve(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD, meta_ids=[1, 2, 9])
    with pytest.raises(InputError, match=r"meta_lc.csv:line 4: object 9 is in the metadata but has no light curve"):
        ingest(tmp_path, lc, meta)
    result = ingest(tmp_path, lc, meta, on_error="skip")
    assert result.problems.counts == {"metadata_without_lightcurve": 1} and result.n_objects == 2


def test_object_with_only_bad_rows_is_an_empty_light_curve(tmp_path):
    rows = GOOD + ["3,59580.0,0,nan,1.0,0", "3,59581.0,0,1.0,-1.0,0"]
    lc, meta = bad_case(tmp_path, rows, meta_ids=[1, 2, 3])
    result = ingest(tmp_path, lc, meta, on_error="skip")
    assert result.problems.counts == {"nonfinite_flux": 1, "nonpositive_flux_err": 1,
                                      "empty_lightcurve": 1}
    assert list(read_store(tmp_path / "s.h5")["objects/object_id"]) == [1, 2]


def test_duplicate_object_ids_across_files(tmp_path):
    lc1, meta = bad_case(tmp_path, GOOD)
    lc2, _ = write_plasticc(tmp_path, ["2,59590.0,0,7.0,1.0,0"], [], name="lc2.csv")
    with pytest.raises(InputError, match=r"object 2 appears more than once: in .*lc.csv and again in .*lc2.csv"):
        ingest(tmp_path, [lc1, lc2], meta)
    result = ingest(tmp_path, [lc1, lc2], meta, on_error="skip")
    assert result.problems.counts == {"duplicate_object_id": 1}
    with Store(tmp_path / "s.h5") as store:
        assert len(store) == 2 and list(store.lightcurve(2)["flux"]) == [-3.25, 4.0]  # first kept
        assert store.n_observations == 4


def test_non_contiguous_object_is_a_duplicate(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD + ["1,59590.0,0,7.0,1.0,0"])
    with pytest.raises(InputError, match="object 1 appears more than once"):
        ingest(tmp_path, lc, meta)


@pytest.mark.parametrize("content", ["", "object_id,mjd,passband,flux,flux_err"])
def test_empty_or_headless_file(tmp_path, content):
    lc, meta = bad_case(tmp_path, [])
    lc.write_text(content)
    with pytest.raises(InputError, match=r"lc.csv:line 1: no complete header line"):
        ingest(tmp_path, lc, meta)


def test_header_only_file_has_no_objects(tmp_path):
    lc, meta = bad_case(tmp_path, [], meta_ids=[])
    with pytest.raises(InputError, match="no objects to store"):
        ingest(tmp_path, lc, meta)


def test_bad_metadata_value_names_the_file(tmp_path):
    lc, meta = write_plasticc(tmp_path, GOOD, ["1,10.0,-20.0,1,-9,zero,0.05,0.02,90",
                                               META.format(oid=2)])
    with pytest.raises(InputError, match=r"meta_lc.csv: cannot read metadata"):
        ingest(tmp_path, lc, meta)


def test_duplicate_metadata_rows(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD, meta_ids=[1, 2, 2])
    with pytest.raises(InputError, match=r"meta_lc.csv:line 4: object 2 is listed again"):
        ingest(tmp_path, lc, meta)


# ----------------------------------------------------------------------------- output safety


def test_failed_ingest_leaves_nothing_behind(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD[:3] + ["2,59582.4,3,nan,2.0,1"])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError):
        ingest(tmp_path, lc, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_existing_store_is_kept_without_overwrite(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD)
    ingest(tmp_path, lc, meta)
    with pytest.raises(SniaError, match="already exists"):
        ingest(tmp_path, lc, meta)
    ingest(tmp_path, lc, meta, overwrite=True)
    assert len(read_store(tmp_path / "s.h5")["objects/object_id"]) == 2


def test_virtual_store_moves_with_its_shards(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD)
    ingest(tmp_path, lc, meta)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "s.h5", moved / "s.h5")
    with pytest.raises(FileNotFoundError, match="s.h5.shards"):
        Store(moved / "s.h5")  # without its shards HDF5 would silently read fill values
    shutil.move(tmp_path / "s.h5.shards", moved / "s.h5.shards")
    with Store(moved / "s.h5") as store:
        assert list(store.lightcurve(1)["flux"]) == [10.5, 11.5]


# ----------------------------------------------------------------------------- MPI ranks


def _synthetic_two_files(tmp_path):
    lc1, meta1, e1 = synthetic_plasticc(tmp_path, 40, 11, name="a.csv")
    lc2, meta2, e2 = synthetic_plasticc(tmp_path, 7, 12, name="b.csv", first_id=1000)
    meta = tmp_path / "meta.csv"
    meta.write_text(meta1.read_text() + "".join(meta2.read_text().splitlines(True)[1:]))
    return [lc1, lc2], meta, {**e1, **e2}


def _many_files(tmp_path, n):
    """n one-object PLAsTiCC files (like the test set's many files) and one metadata file."""
    folder = tmp_path / "many"
    folder.mkdir()
    files = []
    for oid in range(1, n + 1):
        lc = folder / f"lc_{oid:04d}.csv"
        lc.write_text(f"object_id,mjd,passband,flux,flux_err\n{oid},59580.5,1,{oid}.5,1.0\n"
                      f"{oid},59581.5,2,{oid}.25,2.0\n")
        files.append(lc)
    meta = folder / "metadata.csv"
    meta.write_text("object_id,target\n" + "".join(f"{i},90\n" for i in range(1, n + 1)))
    return files, meta


def test_thousands_of_input_files_are_all_in_the_provenance(tmp_path):
    files, meta = _many_files(tmp_path, 1500)
    result = ingest(tmp_path, files, meta)
    assert (result.n_objects, result.n_obs) == (1500, 3000)
    with Store(tmp_path / "s.h5") as store:
        assert len(store.provenance["inputs"]) == 1501  # large attribute: dense HDF5 storage
        assert store.lightcurve(1234)["flux"][1] == np.float32(1234.25)


@pytest.mark.mpi
def test_one_two_three_ranks_write_identical_stores(tmp_path, mpirun):
    lcs, meta, expected = _synthetic_two_files(tmp_path)
    stores = {}
    for n in (1, 2, 3):
        out = tmp_path / f"r{n}.h5"
        proc = mpirun(n, "ingest", "--format", "plasticc", *lcs, "--metadata", meta, "-o", out,
                      "--chunk-mb", "0.001", "--no-progress", "--layout", "virtual")
        assert proc.returncode == 0, proc.stderr
        assert f"{n} rank(s)" in proc.stderr
        stores[n] = read_store(out)
        with Store(out) as store:
            assert store.provenance["ranks"] == n
    assert list(stores[1]["objects/object_id"]) == list(expected)
    for n in (2, 3):
        assert stores[n].keys() == stores[1].keys()
        for name in stores[1]:
            np.testing.assert_array_equal(stores[n][name], stores[1][name], err_msg=f"{n} ranks: {name}")
    assert len(list((tmp_path / "r3.h5.shards").iterdir())) == 3


@pytest.mark.mpi
def test_a_failing_rank_stops_all_ranks_and_leaves_nothing(tmp_path, mpirun):
    lcs, meta, _ = _synthetic_two_files(tmp_path)
    text = lcs[1].read_text().splitlines()
    text[-1] = text[-1].replace(text[-1].split(",")[3], "oops", 1)  # a bad flux in rank 2's part
    lcs[1].write_text("\n".join(text) + "\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = mpirun(3, "ingest", "--format", "plasticc", *lcs, "--metadata", meta, "-o",
                  tmp_path / "s.h5", "--no-progress", "--layout", "virtual")
    assert proc.returncode != 0
    assert f"b.csv:line {len(text)}" in proc.stderr and "'oops' is not a number" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.mpi
@pytest.mark.mpio
def test_collective_single_file_matches_virtual_layout(tmp_path, mpirun):
    import h5py

    if not h5py.get_config().mpi:
        pytest.skip("h5py is not built with MPI (parallel HDF5); see 'make test-mpio'")
    lcs, meta, _ = _synthetic_two_files(tmp_path)
    many, many_meta = _many_files(tmp_path, 1500)
    proc = mpirun(2, "ingest", "--format", "plasticc", many[0].parent, "--metadata", many_meta,
                  "-o", tmp_path / "many.h5", "--layout", "single", "--no-progress")
    assert proc.returncode == 0, proc.stderr  # provenance of 1,501 inputs in one collective file
    assert len(read_store(tmp_path / "many.h5")["objects/object_id"]) == 1500
    common = ["--format", "plasticc", *lcs, "--metadata", meta, "--chunk-mb", "0.001", "--no-progress"]
    ref = mpirun(1, "ingest", *common, "-o", tmp_path / "v.h5", "--layout", "virtual")
    assert ref.returncode == 0, ref.stderr
    for n, extra in ((2, []), (3, ["--compression", "gzip"])):
        out = tmp_path / f"single{n}.h5"
        proc = mpirun(n, "ingest", *common, "-o", out, "--layout", "single", *extra)
        assert proc.returncode == 0, proc.stderr
        assert not (tmp_path / f"single{n}.h5.shards").exists()  # one self-contained file
        got, want = read_store(out), read_store(tmp_path / "v.h5")
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


# ----------------------------------------------------------------------------- real data


@pytest.mark.data
def test_plasticc_training_set_counts(tmp_path, plasticc_data):
    from snia.cli import main

    out = tmp_path / "train.h5"
    assert main(["ingest", "--format", "plasticc", str(plasticc_data / "plasticc_train_lightcurves.csv"),
                 "--metadata", str(plasticc_data / "plasticc_train_metadata.csv"), "-o", str(out),
                 "--split", "train", "--no-progress"]) == 0
    with Store(out) as store:
        assert (len(store), store.n_observations) == (7848, 1421705)
        ids = store.objects["object_id"]
    import pyarrow.csv as csv  # independent count of the classes from the metadata file

    meta = csv.read_csv(plasticc_data / "plasticc_train_metadata.csv")
    target = dict(zip(meta["object_id"].to_pylist(), meta["target"].to_pylist()))
    assert sum(target[i] == 90 for i in ids) == 2313
    assert np.sum(store_types(out) == INDEX["Ia"]) == 2313


def store_types(path):
    return read_store(path)["objects/type"]


@pytest.mark.data
def test_plasticc_test_example_counts_and_info(tmp_path, plasticc_data, capsys):
    from snia.cli import main

    out = tmp_path / "test.h5"
    assert main(["ingest", "--format", "plasticc",
                 str(plasticc_data / "sniabcii_test_lightcurves_example.csv"), "--metadata",
                 str(plasticc_data / "sniabcii_test_metadata_example.csv"), "-o", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["store", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert re.search(r"objects\s+5,000", info) and re.search(r"observations\s+640,029", info)
    assert "Ia: 2,914, II: 1,764, Ibc: 322" in info
    assert main(["store", "verify", str(out)]) == 0
