"""Tests of the SNANA FITS and text readers: real samples (skipped when absent) and bad synthetic files."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from snia.bands import BandRegistry
from snia.errors import InputError, Problems
from snia.lightcurve import clean_chunk
from snia.readers import Piece, split_work
from snia.readers.snana import sentinels_to_nan
from snia.readers.snana_fits import SnanaFitsReader
from snia.readers.snana_text import SnanaTextReader
from snia.taxonomy import INDEX

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DES_HEAD = SHARED_DATA / "snana_fits_des" / "DES_Ia-0001_HEAD.FITS"
DES_PHOT = SHARED_DATA / "snana_fits_des" / "DES_Ia-0001_PHOT.FITS"

needs_des = pytest.mark.skipif(not DES_HEAD.exists(),
                               reason=f"shared SNANA FITS sample not found at {DES_HEAD.parent}")


@pytest.fixture
def spcc_dir(plasticc_data):
    """The SPCC subset unpacked by `snia data fetch plasticc` (fetched on first use)."""
    return plasticc_data / "SPCC_SUBSET"


def read_all(reader, pieces, policy="fail"):
    """Cleaned chunks of the given pieces, concatenated; also the Problems used."""
    problems = Problems(policy)
    chunks = [clean_chunk(c, problems) for c in reader.read(pieces)]
    ids = np.concatenate([c.object_id for c in chunks]) if chunks else np.empty(0, np.int64)
    lengths = np.concatenate([c.length for c in chunks]) if chunks else np.empty(0, np.int64)
    obs = {k: np.concatenate([c.obs[k] for c in chunks]) for k in ("time", "band", "flux")} \
        if chunks else {}
    meta = {k: np.concatenate([c.meta[k] for c in chunks]) for k in chunks[0].meta} if chunks else {}
    return ids, lengths, obs, meta, problems


def whole(reader):
    return [Piece(i, 0, w) for i, w in enumerate(reader.weights())]


# ---------------------------------------------------------------- real SNANA FITS sample


@needs_des
def test_des_fits_sample_reads_clean():
    head = fits.getdata(DES_HEAD, 1)
    phot = fits.getdata(DES_PHOT, 1)
    n_obs = int((head["PTROBS_MAX"] - head["PTROBS_MIN"] + 1).sum())
    assert len(phot) == 12717 and int((phot["MJD"] == -777).sum()) == 199
    assert n_obs == 12717 - 199

    reader = SnanaFitsReader([DES_HEAD], None, BandRegistry(), Problems("fail"), survey="DES")
    assert reader.weights() == [200]
    raw_first = next(iter(reader.read([Piece(0, 0, 1)])))
    lo, hi = int(head["PTROBS_MIN"][0]), int(head["PTROBS_MAX"][0])
    np.testing.assert_array_equal(raw_first.obs["flux"], phot["FLUXCAL"][lo - 1:hi])

    ids, lengths, obs, meta, _ = read_all(reader, whole(reader))
    assert len(ids) == 200
    assert int(lengths.sum()) == n_obs
    np.testing.assert_array_equal(lengths, head["NOBS"])
    # The sample's pointers are stale after row 4 (read by separators); check independently that
    # every object's light curve spans its HEAD PEAKMJD.
    ends = np.cumsum(lengths)
    starts = ends - lengths
    assert all(obs["time"][a] <= peak <= obs["time"][b - 1]
               for a, b, peak in zip(starts, ends, head["PEAKMJD"]))
    np.testing.assert_array_equal(ids, head["SNID"])
    assert (head["SIM_TYPE_INDEX"] == 1).all()
    assert (meta["type"] == INDEX["Ia"]).all()
    np.testing.assert_array_equal(meta["source_type"], 1)
    np.testing.assert_allclose(meta["ra"], head["RA"])


@needs_des
def test_des_fits_sample_split_matches_single_piece():
    bands = BandRegistry()
    # Small chunks, so the pieces also cut into several chunks each.
    reader = SnanaFitsReader([DES_HEAD], None, bands, Problems("fail"), survey="DES",
                             chunk_bytes=40 * 500)
    one = read_all(reader, whole(reader))
    parts = [read_all(reader, split_work(reader.weights(), 3, r)) for r in range(3)]
    assert all(len(p[0]) for p in parts)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), one[0])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), one[1])
    for k in ("time", "flux"):
        np.testing.assert_array_equal(np.concatenate([p[2][k] for p in parts]), one[2][k])


@needs_des
def test_des_fits_sample_without_survey_asks_for_it():
    with pytest.raises(InputError, match="--survey"):
        SnanaFitsReader([DES_HEAD], None, BandRegistry(), Problems("fail"))


# ---------------------------------------------------------------- synthetic SNANA FITS pairs

# Three objects of four observations each, separated by MJD = -777 rows (as SNANA writes them).
SNIDS = [11, 22, 33]


def make_pair(tmp_path, *, gz=False, survey="DES", edit_head=None, edit_phot=None, snid_text=False):
    mjd, flt, flux, err = [], [], [], []
    ptr_min, ptr_max = [], []
    for k in range(len(SNIDS)):
        if k:
            mjd.append(-777.0), flt.append("-"), flux.append(-777.0), err.append(-777.0)
        ptr_min.append(len(mjd) + 1)
        for i, letter in enumerate("griz"):
            mjd.append(60000.0 + 10 * k + i), flt.append(letter)
            flux.append(100.0 * k + i), err.append(1.0 + i)
        ptr_max.append(len(mjd))
    head = {"SNID": np.array([str(s) for s in SNIDS]) if snid_text else np.array(SNIDS, np.int64),
            "SNTYPE": np.array([1, 120, 1], np.int32), "NOBS": np.array([4, 4, 4], np.int32),
            "PTROBS_MIN": np.array(ptr_min, np.int32), "PTROBS_MAX": np.array(ptr_max, np.int32),
            "RA": np.array([10.0, 20.0, -999.0]), "DECL": np.array([-5.0, 5.0, -999.0]),
            "MWEBV": np.array([0.01, 0.02, -9.0], np.float32),
            "HOSTGAL_SPECZ": np.array([0.1, -9.0, 0.3], np.float32),
            "SIM_TYPE_INDEX": np.array([1, 2, 3], np.int16)}
    phot = {"MJD": np.array(mjd), "FLT": np.array(flt, dtype="S2"),
            "FLUXCAL": np.array(flux, np.float32), "FLUXCALERR": np.array(err, np.float32),
            "PHOTFLAG": np.zeros(len(mjd), np.int32)}
    if edit_head:
        edit_head(head)
    if edit_phot:
        edit_phot(phot)
    suffix = ".FITS.gz" if gz else ".FITS"
    head_path, phot_path = tmp_path / f"T_HEAD{suffix}", tmp_path / f"T_PHOT{suffix}"
    for path, cols in ((head_path, head), (phot_path, phot)):
        primary = fits.PrimaryHDU()
        if survey:
            primary.header["SURVEY"] = survey
        table = fits.BinTableHDU.from_columns(
            [fits.Column(name=n, array=v, format=_fits_format(v)) for n, v in cols.items()])
        fits.HDUList([primary, table]).writeto(path)
    return head_path, phot_path


def _fits_format(values: np.ndarray) -> str:
    if values.dtype.kind in "SU":
        return f"{max(1, values.dtype.itemsize // (4 if values.dtype.kind == 'U' else 1))}A"
    return {"i8": "K", "i4": "J", "i2": "I", "f8": "D", "f4": "E"}[values.dtype.str[1:]]


def fits_reader(head_path, policy="fail", **kw):
    return SnanaFitsReader([head_path], None, BandRegistry(), Problems(policy), **kw)


@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_fits_values(tmp_path, gz):
    head_path, phot_path = make_pair(tmp_path, gz=gz)
    reader = fits_reader(head_path)
    assert reader.input_files() == [head_path, phot_path]
    assert reader.weights() == [3] and reader.metadata_ids() is None
    chunk = next(iter(reader.read(whole(reader))))
    np.testing.assert_array_equal(chunk.object_id, SNIDS)
    np.testing.assert_array_equal(chunk.length, [4, 4, 4])
    np.testing.assert_array_equal(chunk.obs["flux"][4:8], [100, 101, 102, 103])
    bands = BandRegistry()
    assert list(chunk.obs["band"][:4]) == [bands.index("des" + c) for c in "griz"]
    assert list(chunk.meta["type"]) == [INDEX["Ia"], INDEX["II"], INDEX["Ibc"]]
    assert list(chunk.meta["source_type"]) == [1, 2, 3]
    np.testing.assert_array_equal(chunk.meta["ra"], [10.0, 20.0, np.nan])
    np.testing.assert_array_equal(chunk.meta["dec"], [-5.0, 5.0, np.nan])
    np.testing.assert_allclose(chunk.meta["mwebv"], [0.01, 0.02, np.nan])
    np.testing.assert_allclose(chunk.meta["specz"], [0.1, np.nan, 0.3])
    # Object 2's second observation is PHOT row 7 (rows 1-4, separator 5, then 6-9).
    assert chunk.where_obs(5) == f"{phot_path}:row 7"
    assert chunk.where_object(1) == f"{head_path}:row 2 (SNID 22)"


def test_synthetic_fits_split_and_small_chunks(tmp_path):
    head_path, _ = make_pair(tmp_path)
    reader = fits_reader(head_path, chunk_bytes=40 * 4)
    chunks = list(reader.read(whole(reader)))
    assert [c.n_objects for c in chunks] == [1, 1, 1]
    got = [list(c.object_id) for r in range(2) for c in reader.read(split_work([3], 2, r))]
    assert sum(got, []) == SNIDS


def test_type_falls_back_to_sntype_and_name(tmp_path):
    def no_index(head):
        del head["SIM_TYPE_INDEX"]
        head["SIM_TYPE_NAME"] = np.array(["UNKNOWN", "UNKNOWN", "IIn"], dtype="S8")

    head_path, _ = make_pair(tmp_path, edit_head=no_index)
    chunk = next(iter(fits_reader(head_path).read([Piece(0, 0, 3)])))
    # SNTYPE 1 -> Ia; 120 -> 20 -> II; the name IIn wins over SNTYPE 1.
    assert list(chunk.meta["type"]) == [INDEX["Ia"], INDEX["II"], INDEX["II"]]
    assert list(chunk.meta["source_type"]) == [1, 120, 1]


def test_survey_from_argument_and_missing(tmp_path):
    head_path, _ = make_pair(tmp_path, survey=None)
    with pytest.raises(InputError, match="--survey"):
        fits_reader(head_path)
    assert fits_reader(head_path, survey="DES").weights() == [3]
    with pytest.raises(InputError, match="NOSUCH"):
        fits_reader(head_path, survey="NOSUCH")


def test_ptrobs_out_of_range(tmp_path):
    def bad(head):
        head["PTROBS_MAX"][1] = 99
        head["NOBS"][1] = 99 - head["PTROBS_MIN"][1] + 1

    head_path, _ = make_pair(tmp_path, edit_head=bad)
    with pytest.raises(InputError, match=rf"{re.escape(str(head_path))}:row 2 \(SNID 22\).*PTROBS"):
        list(fits_reader(head_path).read([Piece(0, 0, 3)]))


def test_ptrobs_max_before_min(tmp_path):
    def bad(head):
        head["PTROBS_MAX"][0] = -3
        head["NOBS"][0] = 7  # and the separators cannot rescue it: no run of 7 rows

    head_path, _ = make_pair(tmp_path, edit_head=bad)
    with pytest.raises(InputError, match="SNID 11"):
        list(fits_reader(head_path).read([Piece(0, 0, 3)]))


def test_stale_pointers_fall_back_to_separators_that_match_nobs(tmp_path, caplog):
    # A HEAD subset whose PTROBS were not renumbered (like the shared DES sample): the MJD = -777
    # rows still delimit the objects and agree with NOBS, so they are used, with a warning.
    def stale(head):
        head["PTROBS_MIN"][1:] += 40
        head["PTROBS_MAX"][1:] += 40

    head_path, _ = make_pair(tmp_path, edit_head=stale)
    chunk = next(iter(fits_reader(head_path).read([Piece(0, 0, 3)])))
    np.testing.assert_array_equal(chunk.obs["flux"][4:8], [100, 101, 102, 103])
    assert "MJD=-777 separator rows" in caplog.text and "SNID 22" in caplog.text


def test_nobs_mismatch(tmp_path):
    head_path, _ = make_pair(tmp_path, edit_head=lambda h: h["NOBS"].__setitem__(2, 5))
    with pytest.raises(InputError, match="NOBS=5.*SNID 33|SNID 33.*NOBS=5"):
        list(fits_reader(head_path).read([Piece(0, 0, 3)]))


def test_separator_inside_object(tmp_path):
    def overlap(head):
        head["PTROBS_MAX"][0] += 1  # now covers the -777 row
        head["NOBS"][0] += 1

    head_path, phot_path = make_pair(tmp_path, edit_head=overlap)
    with pytest.raises(InputError, match=rf"{re.escape(str(phot_path))}:row 5.*-777.*SNID 11"):
        list(fits_reader(head_path).read([Piece(0, 0, 3)]))


def test_object_without_observations(tmp_path):
    def empty(head):
        head["PTROBS_MAX"][1] = head["PTROBS_MIN"][1] - 1
        head["NOBS"][1] = 0

    head_path, _ = make_pair(tmp_path, edit_head=empty)
    reader = fits_reader(head_path)
    chunk = next(iter(reader.read([Piece(0, 0, 3)])))
    assert list(chunk.length) == [4, 0, 4]
    with pytest.raises(InputError, match="SNID 22.*no valid observations"):
        clean_chunk(chunk, Problems("fail"))
    ids, _, _, _, problems = read_all(reader, [Piece(0, 0, 3)], "skip")
    assert list(ids) == [11, 33] and problems.counts["empty_lightcurve"] == 1


def test_snid_as_text_must_be_integer(tmp_path):
    head_path, _ = make_pair(tmp_path, snid_text=True)
    chunk = next(iter(fits_reader(head_path).read([Piece(0, 0, 3)])))
    assert chunk.object_id.dtype == np.int64 and list(chunk.object_id) == SNIDS

    def bad(head):
        head["SNID"] = np.array(["11", "SN22x", "33"])

    other = tmp_path / "bad"
    other.mkdir()
    head_path, _ = make_pair(other, edit_head=bad)
    with pytest.raises(InputError, match=r"row 2: SNID 'SN22x' is not an integer"):
        list(fits_reader(head_path).read([Piece(0, 0, 3)]))


@pytest.mark.parametrize("which", ["HEAD", "PHOT"])
@pytest.mark.parametrize("gz", [False, True])
def test_truncated_fits(tmp_path, which, gz):
    head_path, phot_path = make_pair(tmp_path, gz=gz)
    path = head_path if which == "HEAD" else phot_path
    data = path.read_bytes()
    if gz:  # cut the compressed stream (its table data)
        data = gzip.compress(gzip.decompress(data))[: len(data) * 2 // 3]
    else:  # keep the headers, lose part of the table
        data = data[: len(data) - 2880 + 10]
    path.write_bytes(data)
    with pytest.raises(InputError, match=re.escape(str(path))):
        list(fits_reader(head_path).read([Piece(0, 0, 3)]))


def test_missing_phot_file(tmp_path):
    head_path, phot_path = make_pair(tmp_path)
    phot_path.unlink()
    with pytest.raises(InputError) as info:
        fits_reader(head_path)
    assert str(head_path) in str(info.value) and str(phot_path) in str(info.value)


def test_missing_phot_column(tmp_path):
    head_path, phot_path = make_pair(tmp_path, edit_phot=lambda p: p.pop("FLUXCALERR"))
    with pytest.raises(InputError, match=rf"{re.escape(str(phot_path))}.*flux_err"):
        fits_reader(head_path)


def test_metadata_argument_refused(tmp_path):
    head_path, _ = make_pair(tmp_path)
    with pytest.raises(InputError, match="metadata"):
        SnanaFitsReader([head_path], ["meta.csv"], BandRegistry(), Problems("fail"))


def test_fits_unknown_band(tmp_path):
    head_path, phot_path = make_pair(tmp_path, edit_phot=lambda p: p["FLT"].__setitem__(6, b"Y"))
    reader = fits_reader(head_path)
    with pytest.raises(InputError, match=rf"{re.escape(str(phot_path))}:row 7.*unknown band Y"):
        read_all(reader, [Piece(0, 0, 3)])
    ids, lengths, _, _, problems = read_all(reader, [Piece(0, 0, 3)], "skip")
    assert list(lengths) == [4, 3, 4] and problems.counts["unknown_band"] == 1


def test_fits_nan_flux(tmp_path):
    head_path, phot_path = make_pair(tmp_path, edit_phot=lambda p: p["FLUXCAL"].__setitem__(0, np.nan))
    reader = fits_reader(head_path)
    with pytest.raises(InputError, match=rf"{re.escape(str(phot_path))}:row 1: object 11: flux"):
        read_all(reader, [Piece(0, 0, 3)])
    _, lengths, _, _, problems = read_all(reader, [Piece(0, 0, 3)], "skip")
    assert list(lengths) == [3, 4, 4] and problems.counts["nonfinite_flux"] == 1


# ---------------------------------------------------------------- real SPCC text sample


def spcc_files(folder, n=100):
    return sorted(folder.glob("*.DAT"))[:n]


@pytest.mark.data
def test_spcc_subset(spcc_dir):
    files = spcc_files(spcc_dir)
    assert len(files) == 100
    texts = [f.read_text() for f in files]
    expected_nobs = [int(re.search(r"^NOBS:\s*(\d+)", t, re.M).group(1)) for t in texts]
    expected_ids = [int(re.search(r"^SNID:\s*(\d+)", t, re.M).group(1)) for t in texts]
    names = [re.search(r"^SIM_COMMENT:\s*SN Type = (\S+)", t, re.M).group(1) for t in texts]
    common = {"Ia": "Ia", "II": "II", "IIP": "II", "IIL": "II", "IIn": "II",
              "Ib": "Ibc", "Ic": "Ibc", "Ibc": "Ibc"}
    expected_types = Counter(INDEX[common[n]] for n in names)

    reader = SnanaTextReader(files, None, BandRegistry(), Problems("fail"))
    assert reader.weights() == [f.stat().st_size for f in files]
    raw = list(reader.read(split_work(reader.weights(), 1, 0, atomic=True)))
    assert list(np.concatenate([c.length for c in raw])) == expected_nobs
    ids, lengths, _, meta, _ = read_all(reader, split_work(reader.weights(), 1, 0, atomic=True))
    assert list(ids) == expected_ids
    assert list(lengths) == expected_nobs
    assert Counter(meta["type"].tolist()) == expected_types
    assert INDEX["Ia"] in expected_types and len(expected_types) > 1

    parts = [read_all(reader, split_work(reader.weights(), 3, r, atomic=True))[0] for r in range(3)]
    assert list(np.concatenate(parts)) == expected_ids


# ---------------------------------------------------------------- synthetic SNANA text files

GOOD_ROWS = ["56178.234  g NULL  -7.663e-01   1.048e+01",
             "56178.250  r NULL   3.049e+00   7.841e+00",
             "56178.266  i NULL   4.541e-01   9.312e+00"]


def write_dat(path, *, rows=GOOD_ROWS, nobs=None, end=True, varlist=True, snid="642",
              survey="DES", extra=""):
    lines = []
    if survey:
        lines.append(f"SURVEY: {survey}")
    if snid is not None:
        lines.append(f"SNID: {snid}")
    lines += ["SNTYPE: -9", "RA: 48.0 deg", "DECL: -1.5 deg", "MWEBV: 0.0713 MW E(B-V)",
              "REDSHIFT_SPEC: -9.00000 +- 9.00000", "HOST_GALAXY_PHOTO-Z: 0.7807  +- 0.0419"]
    lines += [x for x in extra.splitlines() if x]
    lines += ["", f"NOBS: {len(rows) if nobs is None else nobs}", "NVAR: 5"]
    if varlist:
        lines.append("VARLIST:  MJD  FLT FIELD   FLUXCAL   FLUXCALERR")
    lines += [f"OBS: {r}" for r in rows]
    if end:
        lines.append("END:")
    path.write_text("\n".join(lines) + "\n")
    return path


def text_reader(paths, policy="fail", survey=None):
    return SnanaTextReader(paths, None, BandRegistry(), Problems(policy), survey=survey)


def test_text_values(tmp_path):
    path = write_dat(tmp_path / "a.DAT", extra="SIM_NON1a: 0\nSIM_COMMENT: SN Type = Ia , MODEL = x")
    chunk = next(iter(text_reader([path]).read([Piece(0, 0, 1)])))
    assert list(chunk.object_id) == [642] and list(chunk.length) == [3]
    np.testing.assert_allclose(chunk.obs["flux"], [-0.7663, 3.049, 0.4541], rtol=1e-6)
    assert list(chunk.obs["flag"]) == [0, 0, 0]
    assert chunk.meta["type"][0] == INDEX["Ia"] and chunk.meta["source_type"][0] == 0
    assert np.isnan(chunk.meta["specz"][0])
    np.testing.assert_allclose([chunk.meta[k][0] for k in ("ra", "dec", "hostgal_photoz",
                                                           "hostgal_photoz_err", "mwebv")],
                               [48.0, -1.5, 0.7807, 0.0419, 0.0713], rtol=1e-6)
    obs_lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("OBS:")]
    assert chunk.where_obs(1) == f"{path}:line {obs_lines[1]}"
    assert chunk.where_object(0) == f"{path}"


def test_one_sentinel_rule_for_arrays_and_single_values():
    # The FITS reader passes HEAD columns, the text reader single header numbers: same rule.
    np.testing.assert_array_equal(sentinels_to_nan("dec", [-999.0, -90.0, 45.0]), [np.nan, -90, 45])
    np.testing.assert_array_equal(sentinels_to_nan("specz", [0.0, -9.0, 0.3]), [np.nan, np.nan, 0.3])
    np.testing.assert_array_equal(sentinels_to_nan("ra", [-999.0, 0.0, 359.0]), [np.nan, 0, 359])
    assert np.isnan(sentinels_to_nan("mwebv", -9)) and sentinels_to_nan("mwebv", 0.02) == 0.02
    assert isinstance(sentinels_to_nan("hostgal_photoz_err", 0.1), float)


@pytest.mark.parametrize("extra, expected, source", [
    ("SIM_NON1a: 0\nSIM_COMMENT: SN Type = IIn , MODEL = x", "II", 0),  # comment wins
    ("SIM_NON1a: 0", "Ia", 0),
    ("SIM_NON1a: 21", "other", 21),
    ("SIM_TYPE_INDEX: 3\nSIM_NON1a: 0", "Ibc", 0),  # type index before NON1a
    ("", "unknown", -9),  # only SNTYPE -9
])
def test_text_type_priority(tmp_path, extra, expected, source):
    path = write_dat(tmp_path / "a.DAT", extra=extra)
    chunk = next(iter(text_reader([path]).read([Piece(0, 0, 1)])))
    assert chunk.meta["type"][0] == INDEX[expected]
    assert chunk.meta["source_type"][0] == source


def test_text_chunking(tmp_path, monkeypatch):
    paths = [write_dat(tmp_path / f"{k}.DAT", snid=str(k)) for k in range(5)]
    monkeypatch.setattr(SnanaTextReader, "FILES_PER_CHUNK", 2)
    reader = text_reader(paths)
    chunks = list(reader.read(split_work(reader.weights(), 1, 0, atomic=True)))
    assert [list(c.object_id) for c in chunks] == [[0, 1], [2, 3], [4]]
    assert chunks[1].where_obs(4) == f"{paths[3]}:line 14"


def test_text_truncated(tmp_path):
    path = write_dat(tmp_path / "a.DAT", rows=GOOD_ROWS[:2], nobs=3, end=False)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}.*truncated"):
        list(text_reader([path]).read([Piece(0, 0, 1)]))
    path = write_dat(tmp_path / "b.DAT", end=False)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}.*truncated"):
        list(text_reader([path]).read([Piece(0, 0, 1)]))


def test_text_non_numeric(tmp_path):
    rows = GOOD_ROWS[:1] + ["56178.250  r NULL   abc   7.841e+00"] + GOOD_ROWS[2:]
    path = write_dat(tmp_path / "a.DAT", rows=rows)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}:line 14: .*'abc'"):
        list(text_reader([path]).read([Piece(0, 0, 1)]))
    reader = text_reader([path], "skip")
    chunk = next(iter(reader.read([Piece(0, 0, 1)])))
    assert list(chunk.length) == [2] and reader.problems.counts["non_numeric"] == 1
    assert chunk.where_obs(1) == f"{path}:line 15"


def test_text_wrong_field_count(tmp_path):
    rows = GOOD_ROWS[:2] + ["56178.266  i NULL   4.541e-01"]
    path = write_dat(tmp_path / "a.DAT", rows=rows)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}:line 15: object 642: expected 5 fields"):
        list(text_reader([path]).read([Piece(0, 0, 1)]))
    reader = text_reader([path], "skip")
    chunk = next(iter(reader.read([Piece(0, 0, 1)])))
    assert list(chunk.length) == [2] and reader.problems.counts["wrong_field_count"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"varlist": False}, "VARLIST"),
    ({"snid": None}, "no SNID"),
    ({"snid": "SN642"}, r"line 2: 'SN642' is not an integer"),
    ({"survey": None}, "--survey"),
])
def test_text_bad_header(tmp_path, kwargs, message):
    path = write_dat(tmp_path / "a.DAT", **kwargs)
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}.*{message}"):
        list(text_reader([path]).read([Piece(0, 0, 1)]))


def test_text_survey_argument(tmp_path):
    path = write_dat(tmp_path / "a.DAT", survey=None)
    chunk = next(iter(text_reader([path], survey="DES").read([Piece(0, 0, 1)])))
    assert list(chunk.length) == [3]


def test_text_unknown_band(tmp_path):
    rows = GOOD_ROWS[:1] + ["56178.250  Y NULL   3.049e+00   7.841e+00"] + GOOD_ROWS[2:]
    path = write_dat(tmp_path / "a.DAT", rows=rows)
    reader = text_reader([path])
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}:line 14: .*unknown band Y"):
        read_all(reader, [Piece(0, 0, 1)])
    _, lengths, _, _, problems = read_all(reader, [Piece(0, 0, 1)], "skip")
    assert list(lengths) == [2] and problems.counts["unknown_band"] == 1


# ---------------------------------------------------------------- whole samples through the CLI


@pytest.mark.data
def test_whole_spcc_subset_ingests(tmp_path, spcc_dir):
    from snia.cli import main
    from snia.store import Store

    files = sorted(spcc_dir.glob("*.DAT"))
    nobs = sum(int(re.search(r"^NOBS:\s*(\d+)", f.read_text(), re.M).group(1)) for f in files)
    assert main(["ingest", "--format", "snana-text", str(spcc_dir), "-o", str(tmp_path / "spcc.h5"),
                 "--no-progress"]) == 0
    with Store(tmp_path / "spcc.h5") as store:
        assert (len(store), store.n_observations) == (2000, nobs)
        assert int(np.sum(store.objects["type"] == INDEX["Ia"])) == 485  # SIM_COMMENT 'SN Type = Ia'


@needs_des
def test_des_fits_sample_ingests(tmp_path):
    from snia.cli import main
    from snia.store import Store, verify

    out = tmp_path / "des.h5"
    assert main(["ingest", "--format", "snana-fits", str(DES_HEAD), "--survey", "DES", "-o",
                 str(out), "--no-progress"]) == 0
    with Store(out) as store:
        assert (len(store), store.n_observations) == (200, 12717 - 199)
        assert set(store.bands.bands[b].name for b in np.unique(store.batch(slice(0, 200)).obs["band"])) \
            == {"desg", "desr", "desi", "desz"}
    assert verify(out) == []


def test_same_snid_in_two_text_files_names_both_files(tmp_path):
    from snia.ingest import run_ingest

    first = write_dat(tmp_path / "a.DAT", snid="77")
    write_dat(tmp_path / "b.DAT", snid="78")
    third = write_dat(tmp_path / "c.DAT", snid="77")
    with pytest.raises(InputError, match=rf"object 77 appears more than once: in {re.escape(str(first))} "
                                         rf"and again in {re.escape(str(third))}"):
        run_ingest("snana-text", sorted(tmp_path.glob("*.DAT")), tmp_path / "s.h5", progress=False)


# ---------------------------------------------------------------- bad SNANA text files: fail names, skip counts

# (case, write_dat arguments (None: an empty file), reason under skip, line named, message)
BAD_TEXT_FILES = [
    ("empty", None, "empty_file", 1, "empty file"),
    ("blank", "\n  \n", "empty_file", 1, "empty file"),
    ("no_varlist", {"varlist": False}, "missing_varlist", 12, "OBS row before any VARLIST line"),
    ("no_varlist_no_rows", {"varlist": False, "rows": []}, "missing_varlist", 10, "no VARLIST line"),
    ("nobs_mismatch", {"nobs": 5}, "nobs_mismatch", 10, "NOBS says 5 but 3 OBS rows were found"),
    ("no_end", {"end": False}, "truncated_file", 15, "no END: line after 3 OBS rows: truncated"),
    ("nvar_mismatch", {"extra": "NVAR: 7"}, "nvar_mismatch", 13, "VARLIST names 5 columns but NVAR"),
    ("no_snid", {"snid": None}, "missing_snid", 9, "no SNID line"),
    ("bad_snid", {"snid": "SN642"}, "bad_header_value", 2, "'SN642' is not an integer"),
    ("bad_photoz_err", {"extra": "HOSTGAL_PHOTOZ_ERR: abc"}, "bad_header_value", 9,
     "'abc' is not a number"),
    ("no_flux_err", "SURVEY: DES\nSNID: 7\nNOBS: 1\nVARLIST: MJD FLT FLUXCAL\nOBS: 1 g 2\nEND:\n",
     "missing_column", 4, "missing column(s) ['flux_err']"),
]


def _bad_text_file(tmp_path, spec):
    path = tmp_path / "a.DAT"
    if spec is None:
        path.write_text("")
    elif isinstance(spec, str):
        path.write_text(spec)
    else:
        write_dat(path, **spec)
    return path, write_dat(tmp_path / "b.DAT", snid="643")


@pytest.mark.parametrize("case,spec,reason,line,message", BAD_TEXT_FILES,
                         ids=[c[0] for c in BAD_TEXT_FILES])
def test_bad_text_file_fails_naming_file_and_line(tmp_path, case, spec, reason, line, message):
    from snia.ingest import run_ingest

    bad, good = _bad_text_file(tmp_path, spec)
    with pytest.raises(InputError, match=re.escape(f"{bad}:line {line}: ") + ".*" + re.escape(message)):
        run_ingest("snana-text", [bad, good], tmp_path / "s.h5", progress=False)


@pytest.mark.parametrize("case,spec,reason,line,message", BAD_TEXT_FILES,
                         ids=[c[0] for c in BAD_TEXT_FILES])
def test_bad_text_file_is_dropped_and_counted_under_skip(tmp_path, case, spec, reason, line, message):
    from snia.ingest import run_ingest
    from snia.store import Store

    bad, good = _bad_text_file(tmp_path, spec)
    result = run_ingest("snana-text", [bad, good], tmp_path / "s.h5", progress=False,
                        on_error="skip")
    assert result.problems.counts == {reason: 1}
    assert result.problems.examples[reason].startswith(f"{bad}:line {line}: ")
    with Store(tmp_path / "s.h5") as store:
        assert list(store.objects["object_id"]) == [643]
        assert store.provenance["skipped"] == {reason: 1}


def test_empty_text_file_last_is_still_read(tmp_path):
    # an empty file weighs 0 bytes: the work split must still give it to a rank
    from snia.ingest import run_ingest

    good = write_dat(tmp_path / "a.DAT")
    empty = tmp_path / "z.DAT"
    empty.write_text("")
    with pytest.raises(InputError, match=re.escape(f"{empty}:line 1: empty file")):
        run_ingest("snana-text", [good, empty], tmp_path / "s.h5", progress=False)


def test_text_row_problems_name_the_object(tmp_path):
    rows = GOOD_ROWS[:1] + ["56178.250  r NULL   abc   7.841e+00", "56178.266  i NULL"]
    path = write_dat(tmp_path / "a.DAT", rows=rows)
    with pytest.raises(InputError, match=re.escape(f"{path}:line 14: object 642: column 'FLUXCAL': "
                                                   f"'abc' is not a number")):
        list(text_reader([path]).read([Piece(0, 0, 1)]))
    reader = text_reader([path], "skip")
    list(reader.read([Piece(0, 0, 1)]))
    assert reader.problems.examples["wrong_field_count"].startswith(f"{path}:line 15: object 642: ")


# ---------------------------------------------------------------- SNANA's missing-measurement rows


def _missing_row_in_fits(phot):
    phot["FLUXCAL"][1] = phot["FLUXCALERR"][1] = -9.0  # object 11, second observation


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_fits_missing_measurement_rows_are_dropped_and_counted(tmp_path, policy):
    from snia.ingest import run_ingest
    from snia.store import Store

    head_path, phot_path = make_pair(tmp_path, edit_phot=_missing_row_in_fits)
    result = run_ingest("snana-fits", [head_path], tmp_path / "s.h5", progress=False,
                        on_error=policy)
    assert (result.n_objects, result.n_obs) == (3, 11)
    assert result.problems.counts == {"missing_measurement": 1}
    assert result.problems.examples["missing_measurement"].startswith(
        f"{phot_path}:row 2: object 11: ")
    with Store(tmp_path / "s.h5") as store:
        assert store.provenance["skipped"] == {"missing_measurement": 1}
        assert list(store.lightcurve(11)["flux"]) == [0.0, 2.0, 3.0]


def test_fits_missing_measurement_keeps_positions(tmp_path):
    head_path, phot_path = make_pair(tmp_path, edit_phot=_missing_row_in_fits)
    reader = fits_reader(head_path)
    chunk = next(iter(reader.read([Piece(0, 0, 3)])))
    assert list(chunk.length) == [3, 4, 4]
    assert chunk.where_obs(1) == f"{phot_path}:row 3"  # the row after the dropped one


def test_fits_negative_error_alone_is_still_an_error(tmp_path):
    def half(phot):
        phot["FLUXCALERR"][1] = -9.0  # flux is a real value: not SNANA's "no measurement" row

    head_path, phot_path = make_pair(tmp_path, edit_phot=half)
    with pytest.raises(InputError, match=rf"{re.escape(str(phot_path))}:row 2: object 11: flux_err"):
        read_all(fits_reader(head_path), [Piece(0, 0, 3)])


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_text_missing_measurement_rows_are_dropped_and_counted(tmp_path, policy):
    from snia.ingest import run_ingest
    from snia.store import Store

    rows = GOOD_ROWS[:1] + ["56178.250  r NULL  -9.000e+00  -9.000e+00"] + GOOD_ROWS[2:]
    path = write_dat(tmp_path / "a.DAT", rows=rows)
    result = run_ingest("snana-text", [path], tmp_path / "s.h5", progress=False, on_error=policy)
    assert (result.n_objects, result.n_obs) == (1, 2)
    assert result.problems.counts == {"missing_measurement": 1}
    assert result.problems.examples["missing_measurement"].startswith(f"{path}:line 14: object 642")
    with Store(tmp_path / "s.h5") as store:
        assert store.provenance["skipped"] == {"missing_measurement": 1}
