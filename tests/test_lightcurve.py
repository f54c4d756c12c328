"""Data model: column aliases, band registry, taxonomy mapping, chunk cleaning, work splitting."""

from __future__ import annotations

import numpy as np
import pytest

from snia import taxonomy
from snia.bands import BandRegistry
from snia.errors import ConfigError, InputError, Problems
from snia.lightcurve import (
    OBS_ALIASES,
    REQUIRED_OBS,
    Chunk,
    clean_chunk,
    empty_meta,
    match_columns,
    offsets_from_lengths,
)
from snia.readers import FORMATS, reader_for, split_work


def test_survey_spellings_map_to_canonical_columns():
    found, extra = match_columns(["SNID", "MJD", "FLT", "FLUXCAL", "FLUXCALERR", "PHOTFLAG", "SKY"],
                                 OBS_ALIASES, REQUIRED_OBS, "f.fits")
    assert found == {"object_id": 0, "time": 1, "band": 2, "flux": 3, "flux_err": 4, "flag": 5}
    assert extra == ["SKY"]
    with pytest.raises(InputError, match=r"f.csv: columns \['mjd', 'time'\] all mean 'time'"):
        match_columns(["object_id", "mjd", "time", "band", "flux", "flux_err"], OBS_ALIASES,
                      REQUIRED_OBS, "f.csv")


def test_band_registry_lookups_and_config_extension():
    bands = BandRegistry()
    assert [bands.bands[i].name for i in bands.plasticc_passbands()] == [
        "lsstu", "lsstg", "lsstr", "lssti", "lsstz", "lssty"]
    assert list(bands.indices_for_letters("DES", np.array(["g ", "z", "y"]))) == [6, 9, -1]
    with pytest.raises(ValueError, match="survey 'SDSS' has no bands"):
        bands.letter_lookup("SDSS")
    more = BandRegistry.from_config([{"name": "sdssg", "survey": "SDSS", "letter": "g",
                                      "wavelength": 4686}])
    assert more.index("sdssg") == 10 and more.bands[10].wavelength == 4686.0
    assert BandRegistry.from_table(more.table()).bands == more.bands
    with pytest.raises(ValueError, match="needs name, survey, letter, wavelength"):
        BandRegistry.from_config([{"name": "x"}])


def test_taxonomy_mappings():
    codes = np.array([90, 67, 52, 42, 62, 95, 15, 0, 12345])
    names = [taxonomy.CLASSES[i] for i in taxonomy.plasticc_types(codes)]
    assert names == ["Ia", "Ia-91bg", "Iax", "II", "Ibc", "SLSN", "other", "unknown", "unknown"]
    assert taxonomy.snana_name_class("SN Type = IIn , MODEL = SDSS-018457") == "II"
    assert taxonomy.snana_name_class("SN Type = Ic , MODEL = x") == "Ibc"
    assert taxonomy.snana_name_class("UNKNOWN") is None
    assert [taxonomy.snana_code_class(c) for c in (1, 101, 2, 3, 21, 33, 41, 43, -9)] == [
        "Ia", "Ia", "II", "Ibc", "II", "Ibc", "Ia-91bg", "Iax", "unknown"]


def _chunk(ids, lengths, time, band, flux, err):
    n = len(time)
    return Chunk(object_id=np.array(ids), offsets=offsets_from_lengths(lengths),
                 obs={"time": np.array(time, float), "band": np.array(band, np.int8),
                      "flux": np.array(flux, np.float32), "flux_err": np.array(err, np.float32),
                      "flag": np.zeros(n, np.int32)},
                 meta=empty_meta(len(ids)), where_obs=lambda i: f"f:row {i}",
                 where_object=lambda j: f"f:object {j}")


def test_clean_chunk_sorts_and_removes_duplicates_per_object():
    chunk = _chunk([5, 6], [5, 2], [3.0, 1.0, 1.0, 2.0, 1.0, 9.0, 8.0], [0, 1, 1, 2, 1, 0, 0],
                   [30, 10, 10, 20, 11, 90, 80], [1, 1, 1, 1, 1, 1, 1])
    problems = Problems("skip")
    out = clean_chunk(chunk, problems)
    assert problems.counts == {"duplicate_observation": 1}
    assert list(out.length) == [4, 2]
    assert list(out.obs["time"]) == [1.0, 1.0, 2.0, 3.0, 8.0, 9.0]
    # the exact repeat (row 2) goes; row 4, same time and band but another flux, stays
    assert list(out.obs["flux"]) == [10, 11, 20, 30, 80, 90]
    assert out.where_obs(1) == "f:row 4"  # positions still point at the source rows
    with pytest.raises(InputError, match=r"f:row 2: object 5: duplicate observation at time 1.0"):
        clean_chunk(chunk, Problems("fail"))


def test_same_time_in_different_bands_is_not_a_duplicate():
    chunk = _chunk([1], [3], [1.0, 1.0, 1.0], [0, 1, 2], [1, 2, 3], [1, 1, 1])
    assert clean_chunk(chunk, Problems("fail")).n_obs == 3


@pytest.mark.parametrize("nranks", [1, 2, 3, 7])
def test_split_work_covers_every_unit_once(nranks):
    weights = [10, 0, 3, 25, 1]
    cover = np.zeros(sum(weights), int)
    starts = np.cumsum([0] + weights[:-1])
    items_seen = []
    for rank in range(nranks):
        for p in split_work(weights, nranks, rank):
            cover[starts[p.item] + p.start: starts[p.item] + p.stop] += 1
        items_seen += [p.item for p in split_work(weights, nranks, rank, atomic=True)]
    assert np.all(cover == 1)
    assert items_seen == [0, 1, 2, 3, 4]  # whole items, in order, each once


def test_reader_for_each_format_and_a_clear_error_otherwise():
    assert FORMATS == ("plasticc", "snana-fits", "snana-text", "lsst-alert")
    assert [reader_for(f).__name__ for f in FORMATS] == ["PlasticcReader", "SnanaFitsReader",
                                                         "SnanaTextReader", "LsstAlertReader"]
    with pytest.raises(ConfigError, match="unknown input format 'csv'; choose one of plasticc, "
                                          "snana-fits, snana-text, lsst-alert"):
        reader_for("csv")


@pytest.mark.parametrize("nranks", [1, 2, 3])
def test_split_work_gives_empty_atomic_items_at_the_end_to_a_rank(nranks):
    # an empty file (0 bytes) still has to be read, so that it is reported
    for weights in ([5, 3, 0], [0], [0, 0, 4, 0]):
        items = [p.item for r in range(nranks) for p in split_work(weights, nranks, r, atomic=True)]
        assert items == list(range(len(weights)))


@pytest.mark.parametrize("nranks", [1, 2, 3, 7])
def test_split_work_with_atomic_items_among_cut_ones(nranks):
    weights, atomic = [10, 6, 3, 25, 1], [False, True, False, True, False]
    cover = np.zeros(sum(weights), int)
    starts = np.cumsum([0] + weights[:-1])
    for rank in range(nranks):
        for p in split_work(weights, nranks, rank, atomic=atomic):
            if atomic[p.item]:
                assert (p.start, p.stop) == (0, weights[p.item])  # never cut
            cover[starts[p.item] + p.start: starts[p.item] + p.stop] += 1
    assert np.all(cover == 1)
    plain = [split_work(weights, nranks, r) for r in range(nranks)]
    assert [split_work(weights, nranks, r, atomic=[False] * 5) for r in range(nranks)] == plain


def test_cut_after_first_detection_keeps_what_the_survey_had_seen():
    """Two objects, cut 5 days after the first detection (flux / error >= 5), by hand:
    object 0 is first detected at t=12 (10/2 = 5), so t <= 17 stays: 10, 12, 15, 17 (not 30);
    object 1 is never detected: cut 5 days after its first observation (t=3): 3, 8 (not 9)."""
    from snia.lightcurve import Batch, cut_after_first_detection

    time = np.array([10.0, 12.0, 15.0, 17.0, 30.0, 3.0, 8.0, 9.0])
    flux = np.array([1.0, 10.0, 50.0, 20.0, 5.0, 1.0, 2.0, 3.0], np.float32)
    err = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0], np.float32)
    batch = Batch(np.array([7, 9]), np.array([0, 5, 8]),
                  {"time": time, "flux": flux, "flux_err": err, "band": np.zeros(8, np.int8)},
                  {"type": np.array([0, 1])})
    cut = cut_after_first_detection(batch, 5.0)
    np.testing.assert_array_equal(cut.offsets, [0, 4, 6])
    np.testing.assert_array_equal(cut.obs["time"], [10, 12, 15, 17, 3, 8])
    np.testing.assert_array_equal(cut.object_id, [7, 9])
    # at the detection itself (0 days): up to and including it
    np.testing.assert_array_equal(cut_after_first_detection(batch, 0.0).obs["time"], [10, 12, 3])
    assert cut_after_first_detection(batch, None) is batch
