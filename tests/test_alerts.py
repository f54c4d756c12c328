"""LSST alert packets (--format lsst-alert): the ELAsTiCC and Rubin samples against light curves
computed here from the raw tables, Avro against Parquet, several alerts of one object, bad
alerts under both policies, and classify end to end."""

from __future__ import annotations

import csv
import functools
import itertools
import re

import numpy as np
import pytest
from conftest import SHARED_DATA

from snia.bands import BandRegistry
from snia.errors import InputError, Problems
from snia.lightcurve import clean_chunk
from snia.readers import LsstAlertReader, split_work

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ALERTS = SHARED_DATA / "alerts"
ELASTICC = ALERTS / "elasticc_sample_seed0.parquet"
RUBIN = ALERTS / "rubin_sample_data_10_0.parquet"
NJY = 10 ** (-0.4 * (31.4 - 27.5))  # nJy -> FLUXCAL (zero point 27.5)
LSST = "ugrizy"  # band index 0..5 of the default registry


def sample(path):
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data/alerts: see its README)")
    return path


def read(paths, policy="fail"):
    """{object_id: light curve and metadata} as the reader (+ clean_chunk) gives them, and the
    problems found."""
    problems = Problems(policy)
    reader = LsstAlertReader(paths, [], BandRegistry(), problems)
    out = {}
    for chunk in reader.read(split_work(reader.weights(), 1, 0, reader.atomic)):
        chunk = clean_chunk(chunk, problems)
        for j, oid in enumerate(chunk.object_id):
            lc = chunk.lightcurve(j)
            lc.update({k: v[j] for k, v in chunk.meta.items()}, where=chunk.where_object(j))
            out[int(oid)] = lc
    return out, problems


@functools.cache
def raw_alerts(path):
    return pq.read_table(path, columns=["diaSource", "prvDiaSources", "prvDiaForcedSources"]).to_pylist()


def expected(path, object_id):
    """One object's light curve computed from the raw table: the latest alert's sources, forced
    photometry first, detections of other visits added; (time, band index, flux, err, flag)."""
    rows = [r for r in raw_alerts(path) if r["diaSource"]["diaObjectId"] == object_id]

    def spelled(source, *names):
        return next(source[n] for n in names if n in source)

    def time(s):
        return spelled(s, "midpointMjdTai", "midPointTai")

    latest = max(rows, key=lambda r: time(r["diaSource"]))
    visits = {}
    for s in latest["prvDiaForcedSources"] or []:
        key = (time(s), spelled(s, "band", "filterName").lower())
        visits[key] = [spelled(s, "psfFlux", "psFlux"), spelled(s, "psfFluxErr", "psFluxErr"), 0]
    for s in [latest["diaSource"], *(latest["prvDiaSources"] or [])]:
        key = (time(s), spelled(s, "band", "filterName").lower())
        if key in visits:
            visits[key][2] = 1
        else:
            visits[key] = [spelled(s, "psfFlux", "psFlux"), spelled(s, "psfFluxErr", "psFluxErr"), 1]
    keys = sorted(visits)
    return (np.array([k[0] for k in keys]), np.array([LSST.index(k[1]) for k in keys]),
            np.array([visits[k][0] * NJY for k in keys]), np.array([visits[k][1] * NJY for k in keys]),
            np.array([visits[k][2] for k in keys]))


def assert_matches(lc, want):
    time, band, flux, err, flag = want
    np.testing.assert_array_equal(lc["time"], time)
    np.testing.assert_array_equal(lc["band"], band)
    np.testing.assert_allclose(lc["flux"], flux, rtol=1e-6)
    np.testing.assert_allclose(lc["flux_err"], err, rtol=1e-6)
    np.testing.assert_array_equal(lc["flag"], flag)


def test_elasticc_sample_against_light_curves_computed_from_the_table():
    path = sample(ELASTICC)
    got, problems = read([path])
    assert len(got) == 89 and not problems.counts
    for oid in got:  # forced + detections (69 objects), detections only (20)
        assert_matches(got[oid], expected(path, oid))
    lc = got[11901802]  # 7 forced (6 of them detected visits) + the alert's own detection
    assert len(lc["time"]) == 8 and lc["flag"].tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    assert lc["band"][0] == LSST.index("y")  # ELAsTiCC spells it 'Y'
    assert lc["hostgal_photoz"] == pytest.approx(1.1940326) and lc["mwebv"] == pytest.approx(0.1239482)
    assert np.isnan(lc["specz"])  # hostgal_zspec -9: not known
    assert got[5282208]["specz"] == pytest.approx(2.6173072)
    assert np.isnan(got[4064904]["hostgal_photoz"])  # no host: -9
    assert lc["ra"] == pytest.approx(182.30185802809092) and lc["type"] == 7  # unknown


def test_rubin_sample_leaves_solar_system_alerts_out_and_counts_them():
    path = sample(RUBIN)
    got, problems = read([path])  # policy fail: solar-system alerts are no error
    assert len(got) == 22
    assert problems.counts == {"solar_system_alert": 3}
    assert problems.examples["solar_system_alert"].startswith(f"{path}:alert 9: ssObjectId ")
    assert problems.summary().startswith("input left out (not data, so no error")
    for oid in got:
        assert_matches(got[oid], expected(path, oid))
    lc = got[169738309211783177]
    assert len(lc["time"]) == 23 and lc["flag"].all()  # 22 earlier detections + its own
    assert np.isnan(lc["hostgal_photoz"]) and np.isnan(lc["mwebv"])  # Rubin's diaObject lacks them
    assert lc["dec"] == pytest.approx(-48.0, abs=1.0)


RECORD_NAMES = itertools.count()


def avro_type(t):
    """The Avro type of an Arrow type, nullable (records named r0, r1, ...)."""
    if pa.types.is_struct(t):
        fields = [{"name": t.field(i).name, "type": avro_type(t.field(i).type)} for i in range(t.num_fields)]
        return ["null", {"type": "record", "name": f"r{next(RECORD_NAMES)}", "fields": fields}]
    if pa.types.is_list(t):
        return ["null", {"type": "array", "items": avro_type(t.value_type)}]
    if pa.types.is_null(t):
        return "null"
    name = {"int64": "long", "int32": "int", "double": "double", "float": "float", "string": "string",
            "bool": "boolean"}[str(t)]
    return ["null", name]


def write_avro(table, path):
    import fastavro

    keep = [n for n in table.column_names if not n.startswith("cutout") and "imestamp" not in n
            and n not in ("ssSource", "mpc_orbits")]
    table = table.select(keep)
    schema = {"type": "record", "name": "alert", "fields": [
        {"name": n, "type": avro_type(table.schema.field(n).type)} for n in keep]}
    with open(path, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), table.to_pylist())
    return path


@pytest.mark.parametrize("name", [ELASTICC.name, RUBIN.name])
def test_avro_packets_give_the_parquet_light_curves(tmp_path, name):
    path = sample(ALERTS / name)
    avro = write_avro(pq.read_table(path), tmp_path / (path.stem + ".avro"))
    want, _ = read([path])
    got, _ = read([avro])
    assert list(got) == list(want)
    for oid, lc in want.items():
        for key in ("time", "band", "flux", "flux_err", "flag"):
            np.testing.assert_array_equal(got[oid][key], lc[key])
        assert got[oid]["where"] == lc["where"].replace(str(path), str(avro))


# ---------------------------------------------------------------- hand-made alerts


def src(sid, t, band="g", flux=1000.0, err=100.0, oid=7):
    return {"diaSourceId": sid, "diaObjectId": oid, "midPointTai": t, "filterName": band,
            "psFlux": flux, "psFluxErr": err}


def forced(sid, t, band="g", flux=900.0, err=90.0, oid=7):
    return {"diaForcedSourceId": sid, "diaObjectId": oid, "midPointTai": t, "filterName": band,
            "psFlux": flux, "psFluxErr": err}


def alert(own, prv=(), forced_sources=None, zphot=0.3):
    return {"diaSource": own, "prvDiaSources": list(prv) or None, "prvDiaForcedSources": forced_sources,
            "diaObject": {"diaObjectId": own["diaObjectId"], "ra": 10.0, "decl": -5.0, "mwebv": 0.02,
                          "hostgal_zphot": zphot, "hostgal_zphot_err": 0.01, "hostgal_zspec": -9.0}}


def write_alerts(path, alerts):
    pq.write_table(pa.table({k: pa.array([a[k] for a in alerts]) for k in alerts[0]}), path)
    return path


def test_several_alerts_of_one_object_make_one_light_curve_from_the_latest(tmp_path):
    a1 = alert(src(1, 60000.0), zphot=0.1)
    a2 = alert(src(2, 60002.0, "r"), [src(1, 60000.0)], zphot=0.2)
    a3 = alert(src(3, 60005.0, "i"), [src(2, 60002.0, "r"), src(2, 60002.0, "r"), src(3, 60005.0, "i")],
               [forced(11, 59998.0, "Y"), forced(12, 60002.0, "r", 950.0)], zphot=0.3)
    other = alert(src(20, 60001.0, oid=8))
    first = write_alerts(tmp_path / "a.parquet", [a1, other, a3])
    second = write_alerts(tmp_path / "b.parquet", [a2])
    got, problems = read([first, second])
    assert list(got) == [7, 8] and not problems.counts
    lc = got[7]  # a3's history: forced 11, 12 (a detected visit), its own source 3; not a1's 1
    assert lc["time"].tolist() == [59998.0, 60002.0, 60005.0]
    assert lc["band"].tolist() == [LSST.index("y"), LSST.index("r"), LSST.index("i")]
    np.testing.assert_allclose(lc["flux"], np.array([900.0, 950.0, 1000.0]) * NJY, rtol=1e-6)
    assert lc["flag"].tolist() == [0, 1, 1]
    assert lc["hostgal_photoz"] == pytest.approx(0.3) and np.isnan(lc["specz"])
    assert lc["where"] == f"{first}:alert 2"
    later = write_alerts(tmp_path / "c.parquet", [alert(src(4, 60009.0), [src(1, 60000.0)])])
    got, _ = read([first, second, later])  # the latest alert wins wherever it is
    assert got[7]["time"].tolist() == [60000.0, 60009.0]


def test_a_folder_of_alert_files_is_read_in_name_order(tmp_path):
    from snia.readers import expand_inputs

    write_alerts(tmp_path / "b.parquet", [alert(src(1, 60000.0))])
    write_avro(pq.read_table(write_alerts(tmp_path / "x.parquet", [alert(src(2, 60000.0, oid=9))])),
               tmp_path / "a.avro")
    (tmp_path / "x.parquet").unlink()
    assert [p.name for p in expand_inputs([tmp_path], "lsst-alert")] == ["a.avro", "b.parquet"]


def _table_with(tmp_path, case):
    """Two alerts (objects 7 and 8); alert 1 spoilt as ``case`` says."""
    good = alert(src(1, 60000.0), [src(5, 59990.0)])
    bad = alert(src(2, 60001.0, oid=8), [src(6, 59991.0, oid=8), src(8, 59992.0, oid=8)])
    if case == "no_flux_field":
        for s in (good["diaSource"], bad["diaSource"], *good["prvDiaSources"], *bad["prvDiaSources"]):
            del s["psFlux"]
    elif case == "text_time":
        for s in (good["diaSource"], bad["diaSource"], *good["prvDiaSources"], *bad["prvDiaSources"]):
            s["midPointTai"] = str(s["midPointTai"])
        bad["diaSource"]["midPointTai"] = "yesterday"
    elif case == "empty_prv_flux":
        bad["prvDiaSources"][1]["psFlux"] = None
    elif case == "no_object":
        bad["diaSource"]["diaObjectId"] = 0
    elif case == "unknown_band":
        bad["prvDiaSources"][1]["filterName"] = "q"
    elif case == "zero_error":
        bad["prvDiaSources"][0]["psFluxErr"] = 0.0
    return write_alerts(tmp_path / "alerts.parquet", [good, bad])


# case -> (reason under skip, count, where (after the file name), object said, text)
BAD_ALERTS = {
    "no_flux_field": ("missing_field", 2, "alert 0", "object 7: ", "diaSource has no psfFlux or psFlux field"),
    "text_time": ("non_numeric", 1, "alert 1", "object 8: ", "diaSource.midPointTai: 'yesterday' is not a number"),
    "empty_prv_flux": ("missing_value", 1, "alert 1 prvDiaSources[1]", "object 8: ",
                       "prvDiaSources.psFlux is empty"),
    "no_object": ("missing_value", 1, "alert 1", "", "diaSource.diaObjectId is 0 (no object) and there is no "
                                                     "ssObjectId"),
    "unknown_band": ("unknown_band", 1, "alert 1 prvDiaSources[1]", "object 8: ", "unknown band q"),
    "zero_error": ("nonpositive_flux_err", 1, "alert 1 prvDiaSources[0]", "object 8: ",
                   "flux_err is 0.0 (must be > 0)"),
}


@pytest.mark.parametrize("case", list(BAD_ALERTS))
def test_bad_alert_fails_naming_file_alert_and_field(tmp_path, case):
    reason, _, where, said, text = BAD_ALERTS[case]
    path = _table_with(tmp_path, case)
    with pytest.raises(InputError) as raised:
        read([path])
    assert str(raised.value) == f"{path}:{where}: {said}{text}"
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("case", list(BAD_ALERTS))
def test_bad_alert_is_left_out_and_counted_under_skip(tmp_path, case):
    reason, count, where, said, text = BAD_ALERTS[case]
    path = _table_with(tmp_path, case)
    got, problems = read([path], "skip")
    assert problems.counts == {reason: count}
    assert problems.examples[reason] == f"{path}:{where}: {said}{text}"
    if case == "no_flux_field":
        assert got == {}
    elif "prv" in where:  # one observation of object 8 left out
        assert list(got) == [7, 8] and len(got[8]["time"]) == 2
    else:  # the whole alert
        assert list(got) == [7]


def test_a_bad_diaobject_value_is_named_or_stored_as_not_known(tmp_path):
    good, bad = alert(src(1, 60000.0)), alert(src(2, 60001.0, oid=8))
    good["diaObject"]["mwebv"], bad["diaObject"]["mwebv"] = "0.02", "dusty"
    path = write_alerts(tmp_path / "alerts.parquet", [good, bad])
    with pytest.raises(InputError, match=re.escape(f"{path}:alert 1: object 8: diaObject.mwebv: 'dusty' "
                                                   f"is not a number")):
        read([path])
    got, problems = read([path], "skip")
    assert problems.counts == {"non_numeric": 1}
    assert got[7]["mwebv"] == pytest.approx(0.02) and np.isnan(got[8]["mwebv"])  # the object stays


def test_a_file_that_is_not_alerts_is_named(tmp_path):
    path = tmp_path / "alerts.parquet"
    path.write_text("object_id,mjd\n1,2\n")
    with pytest.raises(InputError, match=re.escape(f"{path}: neither a Parquet nor an Avro file")):
        read([path])
    empty = write_alerts(tmp_path / "empty.parquet", [alert(src(1, 60000.0))])
    pq.write_table(pq.read_table(empty).slice(0, 0), empty)
    with pytest.raises(InputError, match=re.escape(f"{empty}: no alerts")):
        read([empty])
    with pytest.raises(InputError, match="do not pass --metadata"):
        LsstAlertReader([path], [path], BandRegistry(), Problems())


# ---------------------------------------------------------------- classify


def test_classify_the_elasticc_sample_one_row_per_object(tmp_path, trained, capsys):
    from snia.cli import main

    path = sample(ELASTICC)
    out = tmp_path / "p.csv"
    assert main(["classify", str(path), "--format", "lsst-alert", "--checkpoint", str(trained["model"]),
                 "-o", str(out)]) == 0
    with open(out, newline="") as f:
        rows = {int(r["object_id"]): r for r in csv.DictReader(f)}
    assert len(rows) == 89
    columns = list(next(iter(rows.values())))
    assert columns[:3] == ["object_id", "p_ia", "true_type"]
    assert columns[-3:] == ["last_mjd", "days_since_first_detection", "n_obs"]
    assert {r["true_type"] for r in rows.values()} == {"unknown"}
    assert all(0 <= float(r["p_ia"]) <= 1 for r in rows.values())
    time, _, _, _, flag = expected(path, 11901802)
    row = rows[11901802]
    assert int(row["n_obs"]) == len(time) == 8
    assert float(row["last_mjd"]) == pytest.approx(61125.2345)
    assert float(row["days_since_first_detection"]) == pytest.approx(time[-1] - time[flag == 1][0], abs=1e-4)


@pytest.mark.mpi
def test_two_ranks_store_what_one_rank_stores(tmp_path, mpirun):
    from conftest import read_store

    write_alerts(tmp_path / "a.parquet", [alert(src(1, 60000.0)), alert(src(20, 60001.0, oid=8))])
    write_alerts(tmp_path / "b.parquet", [alert(src(2, 60002.0, "r"), [src(1, 60000.0)])])
    stores = []
    for n in (1, 2):
        stores.append(tmp_path / f"r{n}.h5")
        proc = mpirun(n, "ingest", "--format", "lsst-alert", tmp_path, "-o", stores[-1], "--chunk-mb",
                      "0.0001", "--no-progress", "--layout", "virtual")
        assert proc.returncode == 0, proc.stderr
    one, two = read_store(stores[0]), read_store(stores[1])
    assert one.keys() == two.keys() and list(one["objects/object_id"]) == [7, 8]
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
