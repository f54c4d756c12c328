"""Ingestion: PLAsTiCC CSV reader, bad-input policy, atomic output, MPI ranks, real data counts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import read_store, synthetic_plasticc, write_plasticc

from snia.errors import ConfigError, InputError, SniaError
from snia.ingest import HOST, run_ingest
from snia.store import Store, verify
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
    assert verify(tmp_path / "s.h5") == []  # the compacted shard's checksums are its own


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
    with pytest.raises(InputError, match=r"meta_lc.csv:line 2: object 1: column 'hostgal_photoz': "
                                         r"'zero' is not a number"):
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


def test_orphan_shard_folder_is_named_with_the_way_out(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD)
    (tmp_path / "s.h5.shards").mkdir()  # e.g. the store file was deleted, its shards were not
    with pytest.raises(SniaError) as err:
        ingest(tmp_path, lc, meta)
    message = str(err.value)
    assert f"{tmp_path / 's.h5.shards'} exists without its store file s.h5" in message
    assert "remove that folder, or pass --overwrite" in message
    ingest(tmp_path, lc, meta, overwrite=True)
    assert len(read_store(tmp_path / "s.h5")["objects/object_id"]) == 2


def _dat(path, snid):
    path.write_text(f"SURVEY: DES\nSNID: {snid}\nSNTYPE: -9\nRA: 48.0 deg\nDECL: -1.5 deg\n"
                    "MWEBV: 0.0713\n\nNOBS: 2\nNVAR: 5\nVARLIST:  MJD  FLT FIELD   FLUXCAL   FLUXCALERR\n"
                    "OBS: 56178.234  g NULL  -7.663e-01   1.048e+01\n"
                    "OBS: 56178.250  r NULL   3.049e+00   7.841e+00\nEND:\n")
    return path


def _collision(tmp_path, case):
    """(format, inputs, metadata, output) where the output would replace or empty an input."""
    lc, meta = bad_case(tmp_path, GOOD)
    plasticc = ["--format", "plasticc"]
    if case == "lightcurve_file":
        return plasticc, [lc], [meta], lc, [lc, meta]
    if case == "metadata_file":
        return plasticc, [lc], [meta], meta, [lc, meta]
    if case == "link_to_input":
        (tmp_path / "link.h5").symlink_to(lc)
        return plasticc, [lc], [meta], tmp_path / "link.h5", [lc, meta]
    if case == "dat_in_input_folder":
        folder = tmp_path / "dat"
        folder.mkdir()
        dats = [_dat(folder / "a.DAT", 1), _dat(folder / "b.DAT", 2)]
        return ["--format", "snana-text"], [folder], [], folder / "b.DAT", dats
    # inputs inside the output's shard folder, which publishing the store replaces
    shards = tmp_path / "s.h5.shards"
    shards.mkdir()
    moved = [shutil.move(lc, shards / "lc.csv"), shutil.move(meta, shards / "meta.csv")]
    return plasticc, [moved[0]], [moved[1]], tmp_path / "s.h5", moved


@pytest.mark.parametrize("overwrite", [True, False])
@pytest.mark.parametrize("case", ["lightcurve_file", "metadata_file", "link_to_input",
                                  "dat_in_input_folder", "input_in_shard_folder"])
def test_output_that_would_replace_an_input_is_refused(tmp_path, capsys, case, overwrite):
    from snia.cli import main

    fmt, inputs, metadata, output, files = _collision(tmp_path, case)
    before = {p: p.read_bytes() for p in files}
    args = ["ingest", *fmt, *map(str, inputs), "-o", str(output), "--no-progress"]
    args += ["--metadata", *map(str, metadata)] if metadata else []
    code = main(args + (["--overwrite"] if overwrite else []))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(output) in err and ("is the input" in err or "is inside" in err)
    named = [p for p in files if str(p) in err]
    assert named, err  # the input it collides with is named too
    assert {p: p.read_bytes() for p in files} == before  # inputs untouched
    assert not list(tmp_path.glob(".*.tmp-*")) and not list(tmp_path.glob("*/.*.tmp-*"))


def test_output_inside_an_input_folder_given_to_run_ingest(tmp_path):
    lc, meta = bad_case(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"inside the input folder"):
        run_ingest("plasticc", [lc], tmp_path / "s.h5", [tmp_path], progress=False)


# ----------------------------------------------------------------------------- signals


def _start_ingest(lc, meta, out, *extra):
    """A real `snia ingest` process (one rank, its own process group), slowed by tiny chunks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "SLURM", "HYDRA"))}
    cmd = [sys.executable, "-m", "snia", "ingest", "--format", "plasticc", str(lc), "--metadata",
           str(meta), "-o", str(out), "--no-progress", "--layout", "virtual", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_temporary(proc, out, timeout=120):
    """The temporary folder of a running ingest, once its shard file is being written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for temp in out.parent.glob(f".{out.name}.tmp-*"):
            if (temp / "shards" / "shard-00000.h5").exists():
                return temp
        if proc.poll() is not None:
            pytest.fail(f"ingest ended (exit {proc.returncode}) before it was signalled: "
                        f"{proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no temporary folder appeared")


@pytest.fixture
def big_input(tmp_path):
    lc, meta, _ = synthetic_plasticc(tmp_path, 4000, 7)  # ~80,000 rows: seconds with tiny chunks
    return lc, meta


def test_sigterm_removes_the_temporary_folder(tmp_path, big_input):
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _start_ingest(*big_input, tmp_path / "s.h5", "--chunk-mb", "0.002")
    temp = _wait_for_temporary(proc, tmp_path / "s.h5")
    assert temp.name.startswith(f".s.h5.tmp-{HOST}-{proc.pid}-")  # host and pid name the owner
    proc.send_signal(signal.SIGTERM)  # what SLURM sends at a time limit or preemption
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].endswith("ERROR snia: ingestion stopped by SIGTERM: its "
                                                 "temporary files were removed and no store was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store, no temporaries


def test_next_run_removes_what_a_sigkill_left(tmp_path, big_input, caplog):
    out = tmp_path / "s.h5"
    proc = _start_ingest(*big_input, out, "--chunk-mb", "0.002")
    temp = _wait_for_temporary(proc, out)
    proc.kill()
    proc.communicate(timeout=60)
    assert temp.exists() and not out.exists()  # a killed run never shows a store
    # a live run's temporary (a running process of this host) and another host's are kept
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = tmp_path / f".s.h5.tmp-{HOST}-{sleeper.pid}-{int(time.time() * 1000)}"
        other = tmp_path / ".s.h5.tmp-node042.cluster-123-1700000000000"
        live.mkdir()
        other.mkdir()
        caplog.set_level("INFO", logger="snia.ingest")
        result = run_ingest("plasticc", [big_input[0]], out, [big_input[1]], progress=False)
        assert result.n_objects == 4000
        assert not temp.exists()
        assert live.exists() and other.exists()
        assert f"process {sleeper.pid} of this host, which wrote it, is still running" in caplog.text
        assert "host node042.cluster, which this host cannot check" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()


def _reads(cmdline: Path) -> list[str]:
    try:
        return cmdline.read_bytes().decode(errors="replace").split("\0")
    except OSError:  # the process ended
        return []


def test_a_sigterm_whose_exception_was_lost_still_stops_the_run():
    from snia.ingest import IngestInterrupted, Signals

    before = signal.getsignal(signal.SIGTERM)
    with Signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs here; its exception is then "lost":
        except BaseException:  # noqa: BLE001 - as in a weakref callback or a destructor
            pass
        with pytest.raises(IngestInterrupted, match="stopped by SIGTERM"):
            Signals.check()  # what the read loop and every rank synchronisation call
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


@pytest.mark.mpi
def test_sigterm_to_every_rank_removes_the_temporary_folder(tmp_path, big_input, mpirun):
    from conftest import _mpiexec

    out = tmp_path / "s.h5"
    before = sorted(p.name for p in tmp_path.iterdir())
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [*_mpiexec(), "-n", "2", sys.executable, "-m", "snia", "ingest", "--format", "plasticc",
           str(big_input[0]), "--metadata", str(big_input[1]), "-o", str(out), "--no-progress",
           "--layout", "virtual", "--chunk-mb", "0.002"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_temporary(proc, out)
    # srun signals every task of the step at a time limit: here every rank of this test's run
    ranks = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
             if _reads(p) and _reads(p)[:4] == [sys.executable, "-m", "snia", "ingest"]
             and str(out) in _reads(p)]
    assert len(ranks) == 2, ranks
    for pid in ranks:
        os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "stopped by SIGTERM" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


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


def test_many_input_files_get_a_manifest_beside_the_store_with_one_digest(tmp_path, capsys):
    """30 light-curve files and a metadata file: the store records their count, bytes and the
    sha256 of s.manifest.tsv, which lists each file's name (relative to their folder), size and
    sha256 in the order of ingestion; the same files ingested from another folder give the same
    manifest and digest."""
    import hashlib

    from snia.store import manifest_path

    files, meta = _many_files(tmp_path, 30)
    ingest(tmp_path, files, meta)
    manifest = tmp_path / "s.manifest.tsv"
    assert manifest_path(tmp_path / "s.h5") == manifest
    lines = manifest.read_text().splitlines()
    assert lines[0] == "file\tbytes\tsha256" and len(lines) == 32
    inputs = [*files, meta]
    assert lines[1:] == [f"{p.name}\t{p.stat().st_size}\t{hashlib.sha256(p.read_bytes()).hexdigest()}"
                         for p in inputs]
    with Store(tmp_path / "s.h5") as store:
        recorded = store.provenance["manifest"]
        assert len(store.provenance["inputs"]) == 31  # the store keeps every input's record too
    assert recorded == {"files": 31, "bytes": sum(p.stat().st_size for p in inputs),
                        "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                        "root": str((tmp_path / "many").resolve())}
    assert verify(tmp_path / "s.h5") == []
    from snia.cli import main

    assert main(["store", "info", str(tmp_path / "s.h5")]) == 0  # one line for the 31 inputs
    assert (f"inputs        31 file(s), {recorded['bytes'] / 1e6:.1f} MB (manifest sha256 "
            f"{recorded['sha256'][:12]})") in capsys.readouterr().out

    elsewhere = tmp_path / "copy"
    shutil.copytree(tmp_path / "many", elsewhere / "many")
    run_ingest("plasticc", sorted((elsewhere / "many").glob("lc_*.csv")), elsewhere / "t.h5",
               [elsewhere / "many" / "metadata.csv"], progress=False)
    assert (elsewhere / "t.manifest.tsv").read_bytes() == manifest.read_bytes()
    with Store(elsewhere / "t.h5") as store:
        assert store.provenance["manifest"]["sha256"] == recorded["sha256"]
        assert store.provenance["manifest"]["root"] == str((elsewhere / "many").resolve())

    # replaced with --overwrite: a new manifest; a manifest of other inputs beside a store is found
    ingest(tmp_path, files[:3], meta, overwrite=True, on_error="skip")
    assert len(manifest.read_text().splitlines()) == 5
    shutil.copy(elsewhere / "t.manifest.tsv", manifest)
    with Store(tmp_path / "s.h5") as store:
        short = store.provenance["manifest"]["sha256"][:12]
    assert verify(tmp_path / "s.h5") == [f"{manifest} is not the manifest of this store's inputs (its "
                                         f"sha256 differs from the store's record {short}; written for "
                                         "another store?)"]


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
    assert verify(tmp_path / "r3.h5") == []  # one checksum part per shard, offsets made global


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


def _percents(err: str, stage: str) -> list[int]:
    return [int(p) for p in re.findall(rf"{stage}: +(\d+) %", err)]


def test_progress_is_a_log_line_each_5_percent_of_the_input_off_a_terminal(tmp_path, capsys,
                                                                           monkeypatch):
    """Off a terminal (a workflow's log), ingest says how far it is in the input's bytes, one
    line per 5 % at most, up to 100 %; --no-progress leaves out only the bar. (Lines are at
    least MIN_SECONDS apart in use; none here, so that every 5 % step shows.)"""
    import snia.progress
    from snia.cli import main

    monkeypatch.setattr(snia.progress, "MIN_SECONDS", 0.0)
    lc, meta, _ = synthetic_plasticc(tmp_path, 300, 12)
    assert main(["ingest", "--format", "plasticc", str(lc), "--metadata", str(meta), "-o",
                 str(tmp_path / "s.h5"), "--chunk-mb", "0.01", "--no-progress"]) == 0
    err = capsys.readouterr().err
    percents = _percents(err, "ingest")
    size = lc.stat().st_size
    assert len(percents) >= 10 and percents[-1] == 100, err  # ~24 blocks of 10 kB
    steps = [p // 5 for p in percents]
    assert steps == sorted(set(steps)), percents  # one line per 5 % step
    assert f"of {size:,} B" in err  # this rank's share: the whole file on one rank


def test_progress_is_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    from snia.cli import main

    lc, meta, _ = synthetic_plasticc(tmp_path, 50, 13)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["ingest", "--format", "plasticc", str(lc), "--metadata", str(meta), "-o",
                 str(tmp_path / "s.h5")]) == 0
    err = capsys.readouterr().err
    assert "ingest: 100%|" in err and not _percents(err, "ingest")


class _TwoFiles:
    """What global_checks asks of a reader: its input files and its metadata's object ids."""

    def input_files(self):
        return ["a.csv", "b.csv"]

    def metadata_ids(self):
        return np.array([1, 2, 3, 9])

    def where_metadata(self, object_id):
        return f"meta.csv, object {object_id}"


def test_global_checks_drop_later_copies_across_ranks_and_count_orphan_metadata():
    from snia.errors import Problems
    from snia.ingest.checks import global_checks

    problems = Problems("skip")
    # rank 0 wrote ids 1, 2 (from a.csv); rank 1 wrote 3, 1, 2 (from b.csv): its 1 and 2 repeat
    gathered = [(np.array([1, 2]), np.array([0, 0]), np.array([1, 2]), {}, {}),
                (np.array([3, 1, 2]), np.array([1, 1, 1]), np.array([3, 1, 2]),
                 {"bad_flux": 4}, {"bad_flux": "b.csv line 7"})]
    drops = global_checks(gathered, _TwoFiles(), problems)
    assert [d.tolist() for d in drops] == [[], [1, 2]]
    assert problems.counts == {"bad_flux": 4, "duplicate_object_id": 2,
                               "metadata_without_lightcurve": 1}
    with pytest.raises(InputError, match="object 1 appears more than once: in a.csv and again in b.csv"):
        global_checks(gathered, _TwoFiles(), Problems("fail"))
