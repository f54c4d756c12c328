"""The PLAsTiCC CSV reader's bad-input cases: metadata values, empty files, gzip, BOM, line endings.

Small generated files, ingested with ``run_ingest`` (the reader's problems are only counted once
the whole run is checked). Each case is checked under ``fail`` (the message names file, line and
object) and under ``skip`` (what is dropped, and the count per reason).
"""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from conftest import LC_HEADER, META_HEADER, read_store, synthetic_plasticc, write_plasticc

from snia.errors import InputError
from snia.ingest import run_ingest
from snia.store import Store
from snia.taxonomy import INDEX

META = "{oid},10.0,-20.0,1,-9,0.5,0.05,0.02,90"
GOOD = ["1,59580.1,0,10.5,1.5,1", "1,59581.2,1,11.5,1.5,0", "2,59580.3,2,-3.25,2.0,0",
        "2,59582.4,3,4.0,2.0,1"]


def ingest(tmp_path, lcs, metas, out="s.h5", **kw):
    kw.setdefault("progress", False)
    lcs = lcs if isinstance(lcs, list) else [lcs]
    metas = metas if isinstance(metas, list) else [metas]
    return run_ingest("plasticc", lcs, tmp_path / out, metas, **kw)


def good_files(tmp_path, **kw):
    return write_plasticc(tmp_path, GOOD, [META.format(oid=i) for i in (1, 2)], **kw)


def assert_same_store(a, b):
    got, want = read_store(a), read_store(b)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


# ----------------------------------------------------------------------------- metadata values

# (case, metadata row of object 2 (line 3), reason under skip, object 2 kept?, message under fail)
BAD_META = [
    ("empty_optional", "2,10.0,,1,-9,0.5,0.05,0.02,90", "metadata_missing_value", True,
     r"line 3: object 2: empty value in column 'decl'"),
    ("non_numeric_optional", "2,10.0,-20.0,1,-9,zero,0.05,0.02,90", "metadata_non_numeric", True,
     r"line 3: object 2: column 'hostgal_photoz': 'zero' is not a number"),
    ("empty_target", "2,10.0,-20.0,1,-9,0.5,0.05,0.02,", "metadata_bad_target", False,
     r"line 3: object 2: empty value in column 'target'"),
    ("non_numeric_target", "2,10.0,-20.0,1,-9,0.5,0.05,0.02,Ia", "metadata_bad_target", False,
     r"line 3: object 2: column 'target': 'Ia' is not a number"),
    ("short_row", "2,10.0,-20.0", "metadata_wrong_field_count", False,
     r"line 3: object 2: expected 9 fields, found 3"),
    ("long_row", "2,10.0,-20.0,1,-9,0.5,0.05,0.02,90,7", "metadata_wrong_field_count", False,
     r"line 3: object 2: expected 9 fields, found 10"),
]


@pytest.mark.parametrize("case,row,reason,kept,message", BAD_META, ids=[c[0] for c in BAD_META])
def test_bad_metadata_value_fails_naming_file_line_and_object(tmp_path, case, row, reason, kept,
                                                              message):
    lc, meta = write_plasticc(tmp_path, GOOD, [META.format(oid=1), row])
    with pytest.raises(InputError, match=re.escape(str(meta)) + ":" + message):
        ingest(tmp_path, lc, meta)


@pytest.mark.parametrize("case,row,reason,kept,message", BAD_META, ids=[c[0] for c in BAD_META])
def test_bad_metadata_value_is_counted_under_skip(tmp_path, case, row, reason, kept, message):
    lc, meta = write_plasticc(tmp_path, GOOD, [META.format(oid=1), row])
    result = ingest(tmp_path, lc, meta, on_error="skip")
    assert result.problems.counts == {reason: 1}  # and not also "missing from the metadata"
    assert re.search(message, result.problems.examples[reason])
    with Store(tmp_path / "s.h5") as store:
        assert store.provenance["skipped"] == {reason: 1}
        assert list(store.objects["object_id"]) == ([1, 2] if kept else [1])
        if kept:  # an optional value is stored as "not known"; the rest of the row is kept
            two = store.lightcurve(2)
            assert np.isnan(two["dec"]) if case == "empty_optional" else np.isnan(two["hostgal_photoz"])
            assert two["ra"] == 10.0 and two["type"] == INDEX["Ia"]


@pytest.mark.parametrize("bad_id", ["x2", "", "2.5"])
def test_bad_metadata_object_id(tmp_path, bad_id):
    lc, meta = write_plasticc(tmp_path, GOOD, [META.format(oid=1), META.format(oid=bad_id)])
    said = "empty object_id" if bad_id == "" else f"object_id {bad_id!r} is not an integer"
    with pytest.raises(InputError, match=re.escape(f"{meta}:line 3: {said}")):
        ingest(tmp_path, lc, meta)
    result = ingest(tmp_path, lc, meta, on_error="skip")
    # the row cannot be joined, so object 2's light curve has no metadata either: both are told
    assert result.problems.counts == {"metadata_bad_object_id": 1, "object_missing_from_metadata": 1}
    assert list(read_store(tmp_path / "s.h5")["objects/object_id"]) == [1]


def test_metadata_without_a_usable_row_is_named(tmp_path):
    lc, meta = write_plasticc(tmp_path, GOOD, ["x,1,1,1,1,1,1,1,1", "2,1,1,1,1,1,1,1,Ia"])
    with pytest.raises(InputError, match=r"no objects to store: no row of metadata file\(s\) "
                                         + re.escape(str(meta)) + r" is usable \(metadata_bad_"):
        ingest(tmp_path, lc, meta, on_error="skip")


def test_first_bad_metadata_line_is_the_one_named(tmp_path):
    rows = [META.format(oid=1), "2,10.0,-20.0,1,-9,zero,0.05,0.02,90", "3,1,1,1,-9,0.5,0.05,,90",
            "4,1,1"]
    lc, meta = write_plasticc(tmp_path, GOOD + ["3,59580.0,0,1.0,1.0,0", "4,59580.0,0,1.0,1.0,0"],
                              rows)
    with pytest.raises(InputError, match=re.escape(f"{meta}:line 3: object 2")):
        ingest(tmp_path, lc, meta)
    result = ingest(tmp_path, lc, meta, on_error="skip")
    assert result.problems.counts == {"metadata_non_numeric": 1, "metadata_missing_value": 1,
                                      "metadata_wrong_field_count": 1}
    assert list(read_store(tmp_path / "s.h5")["objects/object_id"]) == [1, 2, 3]


def test_metadata_line_numbers_count_blank_lines(tmp_path):
    lc, meta = good_files(tmp_path)
    meta.write_text(f"{META_HEADER}\n\n{META.format(oid=1)}\n\n{META.format(oid=2)}\n"
                    f"{META.format(oid=2)}\n")
    with pytest.raises(InputError, match=re.escape(f"{meta}:line 6: object 2 is listed again in the "
                                                   f"metadata (first at {meta}:line 5)")):
        ingest(tmp_path, lc, meta)


def test_blank_padded_metadata_numbers_stay_valid_once_another_value_is_bad(tmp_path):
    """The fast (typed) read accepts numbers padded with blanks; the slow path, taken once one
    value is bad, accepts them too: fail names the bad value's line, object and column, and skip
    drops only its object (issue 20 item 2)."""
    padded = "{oid:>10}, 10.0 ,-20.0,\t1,-9, 0.5,0.05 ,0.02,  90"
    rows = [padded.format(oid=i) for i in (1, 2)]
    lc, meta = write_plasticc(tmp_path, GOOD, rows)
    assert ingest(tmp_path, lc, meta, out="fast.h5").n_objects == 2  # the fast path: all good
    with Store(tmp_path / "fast.h5") as store:
        assert store.objects["object_id"].tolist() == [1, 2] and store.objects["ra"][0] == 10.0
    meta.write_text("\n".join([META_HEADER, rows[0], rows[1].replace(" 0.5,", " half,")]) + "\n")
    with pytest.raises(InputError, match=re.escape(f"{meta}:line 3: object 2: column 'hostgal_photoz': "
                                                   f"' half' is not a number")):
        ingest(tmp_path, lc, meta, out="fail.h5")
    meta.write_text("\n".join([META_HEADER, rows[0], rows[1].replace("  90", "  Ia")]) + "\n")
    with pytest.raises(InputError, match=re.escape(f"{meta}:line 3: object 2: column 'target': "
                                                   f"'  Ia' is not a number")):
        ingest(tmp_path, lc, meta, out="fail.h5")
    result = ingest(tmp_path, lc, meta, out="skip.h5", on_error="skip")
    assert result.n_objects == 1 and dict(result.problems.counts) == {"metadata_bad_target": 1}
    with Store(tmp_path / "skip.h5") as store:
        assert store.objects["object_id"].tolist() == [1] and store.objects["ra"][0] == 10.0
    # the light curves' slow path too
    meta.write_text("\n".join([META_HEADER, *rows]) + "\n")
    lc.write_text("\n".join([LC_HEADER, " 1, 59580.1 ,0, 10.5,1.5,1", "1,59581.2,1,11.5,1.5,0",
                             "2,59580.3,2, x ,2.0,0", "   2,59582.4,3,4.0,2.0,1"]) + "\n")
    with pytest.raises(InputError, match=re.escape(f"{lc}:line 4: object 2: column 'flux': ' x ' "
                                                   f"is not a number")):
        ingest(tmp_path, lc, meta, out="fail.h5")


# ----------------------------------------------------------------------------- non-numeric values


def test_non_numeric_light_curve_value_names_the_object(tmp_path):
    lc, meta = write_plasticc(tmp_path, GOOD[:2] + ["2,59580.3,2,abc,2.0,0", GOOD[3]],
                              [META.format(oid=i) for i in (1, 2)])
    with pytest.raises(InputError, match=re.escape(f"{lc}:line 4: object 2: column 'flux': 'abc' "
                                                   f"is not a number")):
        ingest(tmp_path, lc, meta)


@pytest.mark.parametrize("row, said", [
    ("2,59580.3,2,,2.0,0", "object 2: empty value in column 'flux'"),
    ("2,59580.3,2", "object 2: expected 6 fields, found 3"),
    ("x,59580.3,2,1.0,2.0,0", "column 'object_id': 'x' is not an integer"),
])
def test_other_row_problems_name_the_object_where_there_is_one(tmp_path, row, said):
    lc, meta = write_plasticc(tmp_path, GOOD[:2] + [row, GOOD[3]], [META.format(oid=i) for i in (1, 2)])
    with pytest.raises(InputError, match=re.escape(f"{lc}:line 4: {said}")):
        ingest(tmp_path, lc, meta)


# ----------------------------------------------------------------------------- empty files


def test_header_only_metadata_names_the_file(tmp_path):
    lc, meta = write_plasticc(tmp_path, GOOD, [])
    for policy in ("fail", "skip"):
        with pytest.raises(InputError, match=re.escape(f"{meta}") + r".*header but no rows"):
            ingest(tmp_path, lc, meta, on_error=policy)


def test_header_only_light_curve_file_names_the_file(tmp_path):
    lc, meta = write_plasticc(tmp_path, [], [META.format(oid=1)])
    for policy in ("fail", "skip"):
        with pytest.raises(InputError, match=r"no objects to store: .*" + re.escape(str(lc))):
            ingest(tmp_path, lc, meta, on_error=policy)


def test_one_header_only_file_among_others(tmp_path):
    lc, meta = good_files(tmp_path)
    empty, _ = write_plasticc(tmp_path, [], [], name="empty.csv")
    extra_meta, _ = write_plasticc(tmp_path, [], [], name="m2.csv", lc_header=META_HEADER)
    with pytest.raises(InputError, match=re.escape(f"{empty}:line 2: no data rows")):
        ingest(tmp_path, [lc, empty], meta)
    with pytest.raises(InputError, match=re.escape(f"{extra_meta}:line 2: no data rows")):
        ingest(tmp_path, lc, [meta, extra_meta])
    result = ingest(tmp_path, [lc, empty], [meta, extra_meta], on_error="skip")
    assert result.problems.counts == {"empty_file": 2} and result.n_objects == 2


# ----------------------------------------------------------------------------- gzip


def gzip_file(path, data: bytes | None = None):
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes() if data is None else data))
    return out


@pytest.mark.parametrize("chunk_bytes", [64, 16 << 20])
def test_gzip_csv_gives_the_same_store(tmp_path, chunk_bytes):
    lc, meta, _ = synthetic_plasticc(tmp_path, 30, 5)
    ingest(tmp_path, lc, meta, out="plain.h5", chunk_bytes=chunk_bytes)
    ingest(tmp_path, gzip_file(lc), gzip_file(meta), out="gz.h5", chunk_bytes=chunk_bytes)
    assert_same_store(tmp_path / "gz.h5", tmp_path / "plain.h5")


def test_gzip_and_plain_files_mixed(tmp_path):
    lc1, meta1, _ = synthetic_plasticc(tmp_path, 20, 1, name="a.csv")
    lc2, meta2, _ = synthetic_plasticc(tmp_path, 5, 2, name="b.csv", first_id=100)
    ingest(tmp_path, [lc1, lc2], [meta1, meta2], out="plain.h5", chunk_bytes=200)
    ingest(tmp_path, [gzip_file(lc1), lc2], [meta1, gzip_file(meta2)], out="mixed.h5", chunk_bytes=200)
    assert_same_store(tmp_path / "mixed.h5", tmp_path / "plain.h5")


def test_gzip_row_problems_name_file_and_line(tmp_path):
    lc, meta = write_plasticc(tmp_path, GOOD[:2] + ["2,59580.3,2,abc,2.0,0", GOOD[3]],
                              [META.format(oid=i) for i in (1, 2)])
    gz = gzip_file(lc)
    with pytest.raises(InputError, match=re.escape(f"{gz}:line 4: object 2: column 'flux'")):
        ingest(tmp_path, gz, meta)


def _truncated(tmp_path, which):
    lc, meta, _ = synthetic_plasticc(tmp_path, 30, 5)
    path = lc if which == "lc" else meta
    data = gzip.compress(path.read_bytes())
    gz = path.with_name(path.name + ".gz")
    gz.write_bytes(data[: len(data) * 2 // 3])
    return (gz, meta) if which == "lc" else (lc, gz)


@pytest.mark.parametrize("which", ["lc", "metadata"])
def test_truncated_gzip_is_reported_as_truncated(tmp_path, which):
    lc, meta = _truncated(tmp_path, which)
    bad = lc if which == "lc" else meta
    for policy in ("fail", "skip"):
        with pytest.raises(InputError, match=re.escape(str(bad)) + r".*truncated"):
            ingest(tmp_path, lc, meta, on_error=policy)
    assert not (tmp_path / "s.h5").exists()


def test_truncated_gzip_in_classify_names_the_file(tmp_path, monkeypatch):
    import snia.classify

    monkeypatch.setattr(snia.classify, "load_members", lambda checkpoints, device=None: [])  # no model needed
    lc, meta = _truncated(tmp_path, "lc")
    with pytest.raises(InputError, match=re.escape(str(lc)) + r".*truncated"):
        snia.classify.classify([tmp_path / "no-model.pt"], [lc], tmp_path / "p.csv",
                               fmt="plasticc", metadata=[meta])


def test_not_really_gzip(tmp_path):
    lc, meta = good_files(tmp_path)
    fake = tmp_path / "fake.csv.gz"
    fake.write_bytes(b"\x1f\x8b\x08garbage, not a gzip stream" * 3)
    with pytest.raises(InputError, match=re.escape(str(fake))):
        ingest(tmp_path, fake, meta)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02\x03\n\x04\x05")  # was a _csv.Error traceback
    with pytest.raises(InputError, match=re.escape(str(binary))):
        ingest(tmp_path, binary, meta)


def test_folder_input_takes_gzip_csv_files_too(tmp_path):
    from snia.readers import expand_inputs

    lc, meta = good_files(tmp_path)
    gz = gzip_file(lc)
    (tmp_path / "plasticc_metadata.csv.gz").write_bytes(gzip.compress(meta.read_bytes()))
    assert expand_inputs([tmp_path], "plasticc") == [lc, gz, meta]  # names with 'metadata' left out


# ----------------------------------------------------------------------------- BOM, blank lines, CR


def test_utf8_bom_is_stripped(tmp_path):
    lc, meta = good_files(tmp_path)
    ingest(tmp_path, lc, meta, out="plain.h5")
    for path in (lc, meta):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    ingest(tmp_path, lc, meta, out="bom.h5")
    assert_same_store(tmp_path / "bom.h5", tmp_path / "plain.h5")


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_trailing_blank_line_is_accepted(tmp_path, ending):
    lc, meta = good_files(tmp_path)
    ingest(tmp_path, lc, meta, out="plain.h5")
    for path in (lc, meta):
        path.write_bytes(path.read_bytes().replace(b"\n", ending.encode()) + ending.encode())
    result = ingest(tmp_path, lc, meta, out="blank.h5")
    assert result.problems.counts == {}
    assert_same_store(tmp_path / "blank.h5", tmp_path / "plain.h5")
    ingest(tmp_path, gzip_file(lc), gzip_file(meta), out="blank_gz.h5")
    assert_same_store(tmp_path / "blank_gz.h5", tmp_path / "plain.h5")


def test_blank_line_inside_the_file_is_still_reported(tmp_path):
    lc, meta = write_plasticc(tmp_path, GOOD[:2] + ["", GOOD[2], GOOD[3]],
                              [META.format(oid=i) for i in (1, 2)])
    lc.write_text(lc.read_text() + "\n")  # and a trailing one, which is fine
    with pytest.raises(InputError, match=re.escape(f"{lc}:line 4: empty value")):
        ingest(tmp_path, lc, meta)


@pytest.mark.parametrize("which", ["lc", "metadata"])
def test_cr_only_line_endings_are_named(tmp_path, which):
    lc, meta = good_files(tmp_path)
    path = lc if which == "lc" else meta
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))
    with pytest.raises(InputError, match=re.escape(f"{path}") + r".*CR-only line endings"):
        ingest(tmp_path, lc, meta, on_error="skip")


# ----------------------------------------------------------------------------- MPI ranks


@pytest.mark.mpi
def test_ranks_count_reader_problems_once_and_share_gzip_files(tmp_path, mpirun):
    lc1, meta1, _ = synthetic_plasticc(tmp_path, 40, 11, name="a.csv")
    lc2, meta2, _ = synthetic_plasticc(tmp_path, 7, 12, name="b.csv", first_id=1000)
    text = meta1.read_text().splitlines()
    text[3] = ",".join(text[3].split(",")[:5] + ["zero"] + text[3].split(",")[6:])
    meta1.write_text("\n".join(text) + "\n")  # one optional value stored as NaN, counted once
    header = LC_HEADER + ",seeing"  # and an extra column, counted once
    lc1.write_text("\n".join([header] + [r + ",1" for r in lc1.read_text().splitlines()[1:]]) + "\n")
    inputs = [lc1, gzip_file(lc2), "--metadata", meta1, gzip_file(meta2)]
    stores = {}
    for n in (1, 2, 3):
        out = tmp_path / f"r{n}.h5"
        proc = mpirun(n, "ingest", "--format", "plasticc", *inputs, "-o", out, "--chunk-mb", "0.001",
                      "--no-progress", "--layout", "virtual", "--on-error", "skip")
        assert proc.returncode == 0, proc.stderr
        with Store(out) as store:
            assert store.provenance["skipped"] == {"extra_column": 1, "metadata_non_numeric": 1}
        stores[n] = out
    for n in (2, 3):
        assert_same_store(stores[n], stores[1])
