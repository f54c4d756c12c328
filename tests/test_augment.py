"""Augmentation: every backend draws exactly what the NumPy reference draws, the physics holds
(dimming by the distance ratio squared, time dilation, errors that never shrink), and a variant
depends only on (seed, epoch, object id), not on the batch or rank that draws it."""

from __future__ import annotations

import numpy as np
import pytest

from snia.augment import (
    AugmentConfig,
    augment,
    augment_cpu,
    augment_numpy,
    luminosity_distance,
    passes_detection_trigger,
    stream,
)
from snia.errors import ConfigError
from snia.lightcurve import Batch, offsets_from_lengths

WAVE = np.array([3671.0, 4827.0, 6223.0, 7546.0, 8691.0, 9712.0])  # LSST ugrizy
FLOOR = np.array([30.0, 5.0, 4.0, 5.0, 8.0, 15.0])


def survey_batch(n_objects: int, seed: int) -> Batch:
    """Time-ordered multi-band light curves of mixed kinds: wide and deep-field, galactic (z = 0),
    extragalactic, beyond redshift_max, unknown redshift, and a one-observation object."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 120, n_objects)
    lengths[0] = 1
    n = int(lengths.sum())
    time = np.concatenate([np.sort(rng.uniform(60000, 60300, k)) for k in lengths])
    obs = {"time": time, "band": rng.integers(0, 6, n).astype(np.int8),
           "flux": rng.normal(20, 40, n).astype(np.float32),
           "flux_err": rng.uniform(0.5, 20, n).astype(np.float32), "flag": np.zeros(n, np.int32)}
    z = rng.uniform(0.01, 1.0, n_objects)
    z[1::7], z[2::7], z[3::7] = 0.0, 1.5, np.nan
    meta = {"hostgal_photoz": z.astype(np.float32),
            "hostgal_photoz_err": rng.uniform(0.01, 0.1, n_objects).astype(np.float32),
            "ddf": (rng.random(n_objects) < 0.3).astype(np.int8),
            "type": rng.integers(0, 7, n_objects).astype(np.int8)}
    ids = rng.choice(10 ** 9, n_objects, replace=False).astype(np.int64)
    return Batch(ids, offsets_from_lengths(lengths), obs, meta)


CONFIGS = [AugmentConfig(),
           AugmentConfig(flux_noise=1.5, detection_trigger=True, redshift_tries=3),
           AugmentConfig(drop_fraction=0.0, time_shift=0.0, redshift_probability=0.5),
           AugmentConfig(flux_noise=0.5, truncate_probability=0.6, truncate_days=20.0),
           # a survey's redshift quantiles (one repeated: a step of zero width)
           AugmentConfig(redshift_quantiles=(0.05, 0.2, 0.3, 0.3, 0.45, 0.6, 0.9),
                         detection_trigger=True)]


def host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def assert_same(got: Batch, want: Batch) -> None:
    """Equal to the last digits. A GPU's fused multiply-adds and math functions round differently,
    and a flux near 0 (a value plus nearly opposite noise) then differs by more than 1e-6 of itself
    (seen on an H200: 0.0741617 against 0.0741616), so fluxes also get an absolute tolerance of
    1e-6 of the batch's flux scale."""
    np.testing.assert_array_equal(host(got.offsets), want.offsets)
    for key in ("time", "band", "flux", "flux_err", "wave"):
        scale = np.abs(want.obs[key]).max() if key == "flux" and len(want.obs[key]) else 0.0
        np.testing.assert_allclose(host(got.obs[key]), want.obs[key], rtol=1e-6, atol=1e-6 * scale,
                                   err_msg=key)
    for key in ("hostgal_photoz", "hostgal_photoz_err"):
        np.testing.assert_allclose(host(got.meta[key]), want.meta[key], rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("floor", [FLOOR, None])
def test_cpu_kernels_equal_the_reference(cfg, floor):
    batch = survey_batch(200, 1)
    assert_same(augment_cpu(batch, 3, 11, cfg, WAVE, floor), augment_numpy(batch, 3, 11, cfg, WAVE, floor))


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[3], CONFIGS[4]])
def test_numba_cuda_kernels_equal_the_reference(cfg):
    """On the GPU, or in Numba's CUDA simulator; 4 threads x 2 blocks for 20 objects: every
    thread runs the grid-stride loop more than once."""
    pytest.importorskip("numba.cuda")
    from snia.augment.numba_cuda import augment_numba_cuda

    batch = survey_batch(20, 2)
    got = augment_numba_cuda(batch, 1, 5, cfg, WAVE, FLOOR, threads=4, max_blocks=2)
    assert_same(got, augment_numpy(batch, 1, 5, cfg, WAVE, FLOOR))


def test_a_variant_depends_on_the_object_not_on_its_batch():
    """What a rank draws for an object is what one rank drawing the whole batch draws for it."""
    batch = survey_batch(60, 3)
    whole = augment(batch, 2, 9, AugmentConfig(flux_noise=1.0), WAVE, FLOOR)
    pick = np.array([41, 7, 30])
    lengths = np.diff(batch.offsets)[pick]
    rows = np.concatenate([np.arange(batch.offsets[i], batch.offsets[i + 1]) for i in pick])
    part = Batch(batch.object_id[pick], offsets_from_lengths(lengths),
                 {k: v[rows] for k, v in batch.obs.items()}, {k: v[pick] for k, v in batch.meta.items()})
    alone = augment(part, 2, 9, AugmentConfig(flux_noise=1.0), WAVE, FLOOR)
    for j, i in enumerate(pick):
        for key in ("time", "flux", "flux_err", "wave"):
            np.testing.assert_array_equal(alone.lightcurve(j)[key], whole.lightcurve(i)[key])
    other = augment(batch, 3, 9, AugmentConfig(flux_noise=1.0), WAVE, FLOOR)  # the next epoch
    assert not np.array_equal(other.obs["flux"][:50], whole.obs["flux"][:50])


def test_the_stream_is_uniform_and_normal():
    i = np.arange(200_000)
    u = stream.uniform(1, 2, i * 7919, i, 3)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() * 12 - 1) < 0.01
    g = stream.normal(1, 2, i * 7919, i, 4)
    assert abs(g.mean()) < 0.01 and abs(g.std() - 1) < 0.01
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01  # neighbours are independent


def test_moves_dim_by_the_distance_ratio_squared_and_dilate_time():
    """Noise-free light curves (tiny errors): the moved fluxes are the distance ratio squared of
    the originals, times stretch by (1+z')/(1+z) about the first observation, and no error
    shrinks."""
    n = 50
    batch = one_band_batch(np.full((30, n), 100.0), 1e-6, np.linspace(0.05, 0.9, 30), np.zeros(30))
    cfg = AugmentConfig(drop_fraction=0.0, time_shift=0.0, redshift_probability=1.0)
    out = augment(batch, 0, 4, cfg, (4000.0,))
    for j in range(30):
        z, z_new = float(batch.meta["hostgal_photoz"][j]), float(out.meta["hostgal_photoz"][j])
        assert z < z_new < 1.2
        lc, before = out.lightcurve(j), batch.lightcurve(j)
        ratio = (luminosity_distance(z) / luminosity_distance(z_new)) ** 2
        np.testing.assert_allclose(lc["flux"], 100.0 * ratio, rtol=1e-4)
        stretch = (1 + z_new) / (1 + z)
        np.testing.assert_allclose(lc["time"] - lc["time"][0],
                                   (before["time"] - before["time"][0]) * stretch, rtol=1e-6)
        assert np.all(lc["flux_err"] >= before["flux_err"])
        np.testing.assert_allclose(out.meta["hostgal_photoz_err"][j],
                                   batch.meta["hostgal_photoz_err"][j] * stretch, rtol=1e-6)


def test_luminosity_distance_against_scipy_and_a_closed_form():
    """Flat LCDM with Om = 0.3: (1 + z) times the comoving integral (scipy's adaptive quadrature),
    and at small z the expansion d_L ~ z (1 + (1 - q0) z / 2), q0 = 3 Om / 2 - 1."""
    from scipy.integrate import quad

    for z in (0.1, 0.5, 1.2):
        exact = (1 + z) * quad(lambda x: 1 / np.sqrt(0.3 * (1 + x) ** 3 + 0.7), 0, z)[0]
        assert luminosity_distance(z) == pytest.approx(exact, rel=1e-4)
    q0 = 1.5 * 0.3 - 1
    assert luminosity_distance(0.001) == pytest.approx(0.001 * (1 + (1 - q0) * 0.0005), rel=1e-5)
    assert luminosity_distance(0.0) == 0.0



def one_band_batch(flux_rows, err, photoz, ddf, photoz_err=0.01, types=None):
    """Objects observed in one band, n points over 100 days each; one row of fluxes per object."""
    flux_rows = np.atleast_2d(np.asarray(flux_rows, np.float32))
    k, n = flux_rows.shape
    obs = {"time": np.tile(np.linspace(60000, 60100, n), k), "band": np.zeros(k * n, np.int8),
           "flux": flux_rows.ravel(), "flux_err": np.full(k * n, err, np.float32),
           "flag": np.zeros(k * n, np.int32)}
    meta = {"hostgal_photoz": np.asarray(photoz, np.float32),
            "hostgal_photoz_err": np.broadcast_to(np.asarray(photoz_err, np.float32), (k,)).copy(),
            "ddf": np.asarray(ddf, np.int8),
            "type": np.zeros(k, np.int8) if types is None else np.asarray(types, np.int8)}
    return Batch(np.arange(1, k + 1), np.arange(0, k * n + 1, n), obs, meta)


def test_augmentation_is_reproducible_and_physical():
    n = 200
    batch = one_band_batch(np.full((2, n), 100.0), 2.0, [0.1, 0.3], [1, 0], photoz_err=[0.01, 0.02],
                           types=[0, 3])
    meta = {k: v.copy() for k, v in batch.meta.items()}
    cfg = AugmentConfig(redshift_probability=1.0, redshift_max=1.0, drop_fraction=0.3, time_shift=0)
    wavelengths = (4000.0,)
    a = augment(batch, 0, 0, cfg, wavelengths)
    b = augment(batch, 0, 0, cfg, wavelengths)
    for key in ("time", "flux", "flux_err"):
        np.testing.assert_array_equal(a.obs[key], b.obs[key])  # same (seed, epoch, object id)
    c = augment(batch, 1, 0, cfg, wavelengths)
    assert not np.array_equal(a.obs["flux"][:5], c.obs["flux"][:5])  # fresh every epoch
    lengths = np.diff(a.offsets)
    assert lengths[0] <= 0.5 * n + 10  # the deep-drilling object keeps at most half (+ noise)
    assert lengths[1] >= 0.6 * n  # a wide-survey object loses at most 30 % (+ noise)
    assert np.all(a.meta["hostgal_photoz"] > meta["hostgal_photoz"])  # moved to higher z
    assert batch.meta["hostgal_photoz"][0] == np.float32(0.1)  # the input batch is unchanged
    assert np.all(a.obs["flux_err"] >= 2.0)  # not cleaner ...
    assert all(np.mean(a.lightcurve(j)["flux"]) < 90 for j in range(2))  # ... but fainter
    span = [np.ptp(a.lightcurve(j)["time"]) for j in range(2)]
    assert span[1] > 100  # time dilation (1+z')/(1+z) > 1
    for j in range(2):  # observed wavelengths move redward by the same factor as time
        stretch = (1 + a.meta["hostgal_photoz"][j]) / (1 + meta["hostgal_photoz"][j])
        np.testing.assert_allclose(a.lightcurve(j)["wave"], 4000.0 * stretch, rtol=1e-6)


def test_deep_field_objects_are_brought_to_wide_survey_noise():
    batch = one_band_batch(np.full((2, 400), 100.0), 1.0, [0.1, 0.1], [1, 0])
    cfg = AugmentConfig(redshift_probability=0.0, drop_fraction=0.0, time_shift=0)
    out = augment(batch, 0, 0, cfg, (4000.0,), noise_floor=np.array([10.0]))
    deep, wide = out.lightcurve(0), out.lightcurve(1)
    # the deep-field object: errors 7-13 (floor x 0.7-1.3, one factor per object), and its
    # flux scatter grows to match them (sample std of N(100, e) within 15 %)
    assert np.all(deep["flux_err"] >= 7.0) and np.all(deep["flux_err"] <= 13.0)
    assert abs(np.std(deep["flux"]) / deep["flux_err"][0] - 1) < 0.15
    # the wide-survey object, not moved: untouched
    np.testing.assert_array_equal(wide["flux_err"], 1.0)
    np.testing.assert_array_equal(wide["flux"], 100.0)


def test_moved_objects_still_pass_the_detection_trigger():
    n_obj, n = 40, 60
    flux = np.where(np.arange(n) % 10 == 0, 15.0, 1.0)  # 6 points at S/N 7.5
    z = np.linspace(0.05, 0.5, n_obj).astype(np.float32)
    batch = one_band_batch(np.tile(flux, (n_obj, 1)), 2.0, z, np.zeros(n_obj))
    cfg = AugmentConfig(redshift_probability=1.0, redshift_max=1.2, drop_fraction=0.0,
                        time_shift=0, detection_trigger=True)
    out = augment(batch, 0, 0, cfg, (4000.0,))
    moved = out.meta["hostgal_photoz"] != z
    for j in range(n_obj):
        lc = out.lightcurve(j)
        if moved[j]:  # every moved object is still detected ...
            assert passes_detection_trigger(lc["flux"], lc["flux_err"]), j
        else:  # ... and one that could not be moved is left as it was
            np.testing.assert_array_equal(lc["flux"], batch.lightcurve(j)["flux"])
    assert 0 < moved.sum() < n_obj  # faint objects can only move a little, if at all


def test_flux_noise_grows_errors_and_scatter_together():
    batch = one_band_batch(np.full((1, 4000), 50.0), 1.0, [0.1], [0])
    cfg = AugmentConfig(redshift_probability=0.0, drop_fraction=0.0, time_shift=0, flux_noise=2.0)
    lc = augment(batch, 0, 0, cfg, (4000.0,)).lightcurve(0)
    k2 = lc["flux_err"][0] ** 2 - 1  # the k drawn for this object
    assert 0 < k2 <= 4 + 1e-5 and np.allclose(lc["flux_err"], lc["flux_err"][0])
    # the added scatter matches the added variance: std(flux) = k sigma (within 5 %)
    assert np.std(lc["flux"]) == pytest.approx(np.sqrt(k2), rel=0.05)


def test_truncated_objects_are_what_the_survey_had_seen_days_after_detection():
    """With truncation always on and nothing else, each object is its light curve cut U(0, 20)
    days after its first detection: checked against the evaluation's own cut
    (snia.lightcurve.cut_after_first_detection) at the number of days the stream drew."""
    from snia.augment.shared import TRUNCATE_DAYS
    from snia.lightcurve import cut_after_first_detection

    batch = survey_batch(40, 6)
    batch.meta["ddf"][:] = 0  # (deep-field objects are always thinned)
    cfg = AugmentConfig(drop_fraction=0.0, time_shift=0.0, redshift_probability=0.0,
                        truncate_probability=1.0, truncate_days=20.0)
    got = augment(batch, 3, 2, cfg, WAVE)
    shorter = 0
    for j in range(len(batch)):
        days = 20.0 * float(stream.uniform(2, 3, int(batch.object_id[j]), 0, TRUNCATE_DAYS)[0])
        one = Batch(batch.object_id[j:j + 1], np.array([0, batch.length[j]]),
                    batch.lightcurve(j), {})
        want = cut_after_first_detection(one, days).obs
        np.testing.assert_array_equal(got.lightcurve(j)["time"], want["time"])
        np.testing.assert_array_equal(got.lightcurve(j)["flux"], want["flux"])
        shorter += len(want["time"]) < batch.length[j]
    assert shorter > 10  # the cut does cut


def test_moves_follow_the_surveys_redshift_distribution_above_the_object():
    """With a survey's quantiles, a move draws the new redshift from the survey's distribution
    above the object's own: the table of an exponential survey (rate 4), objects at z = 0.1 ->
    new redshifts distributed as 0.1 + Exp(4) (memoryless) up to the table's end; objects beyond
    the table's last quantile stay where they are."""
    from scipy import stats

    table = tuple(-np.log1p(-np.linspace(0, 0.999, 201)) / 4)  # Exp(4) quantiles, 0 .. 99.9 %
    cfg = AugmentConfig(redshift_quantiles=table, drop_fraction=0.0, time_shift=0.0)
    batch = survey_batch(3000, 6)
    batch.meta["hostgal_photoz"] = np.full(3000, 0.1, np.float32)
    batch.meta["hostgal_photoz"][:100] = table[-1] + 0.05  # beyond the survey: never moved
    out = augment_cpu(batch, 0, 1, cfg, WAVE, FLOOR)
    z = out.meta["hostgal_photoz"].astype(np.float64)
    np.testing.assert_array_equal(z[:100], batch.meta["hostgal_photoz"][:100])
    moved = z[100:] - 0.1
    assert moved.min() >= 0 and z[100:].max() <= table[-1] + 1e-6
    truncated = stats.truncexpon(b=(table[-1] - 0.1) * 4, scale=0.25)  # Exp(4) up to the end
    assert stats.kstest(moved, truncated.cdf).pvalue > 0.01
    uniform_moves = augment_cpu(batch, 0, 1, AugmentConfig(drop_fraction=0.0, time_shift=0.0),
                                WAVE, FLOOR).meta["hostgal_photoz"][100:]
    assert np.median(uniform_moves) > 0.6 > np.median(z[100:])  # uniform to 1.2 against Exp(4)


def test_redshift_quantiles_are_checked():
    for bad in ((0.3,), (0.5, 0.2), (-0.1, 0.4), (0.1, float("nan"))):
        with pytest.raises(ConfigError, match="redshift_quantiles"):
            AugmentConfig(redshift_quantiles=bad)
    assert AugmentConfig(redshift_quantiles=[0.1, 0.1, 0.5]).redshift_quantiles == (0.1, 0.1, 0.5)


@pytest.mark.parametrize("setting, bad", [
    ("drop_fraction", 1.5), ("redshift_probability", -0.1), ("truncate_probability", 1.01),
    ("time_shift", -1.0), ("flux_noise", -0.2), ("redshift_max", -0.5), ("truncate_days", -3.0),
    ("redshift_tries", 0)])
def test_settings_out_of_range_are_named(setting, bad):
    with pytest.raises(ConfigError, match=f"augment.{setting} must be"):
        AugmentConfig(**{setting: bad})
    AugmentConfig(**{setting: 1})  # the edge of each range is allowed


def test_every_redshift_try_draws_from_its_own_stream():
    """The stream packs (index << 8) | purpose: a redshift try's purpose, MOVE_NOISE + 16 t, must
    stay below 256, or try 16 of observation k would draw observation k + 1's numbers (issue 20
    item 11). The setting is bounded by what the packing holds."""
    from snia.augment import reobserve
    from snia.augment.shared import MAX_REDSHIFT_TRIES, MOVE_NOISE, TRY_STRIDE

    tries = {MOVE_NOISE + TRY_STRIDE * t for t in range(MAX_REDSHIFT_TRIES)}
    reobserving = {reobserve.CHOOSE, reobserve.SCHEDULE, reobserve.PLACE, reobserve.NOISE, reobserve.JITTER}
    assert not tries & reobserving and not set(range(1, 16)) & reobserving
    purposes = set(range(1, 16)) | tries | reobserving
    assert max(purposes) < 256
    packed = {(k << 8) | p for k in range(64) for p in purposes}
    assert len(packed) == 64 * len(purposes)  # no two (index, purpose) pairs share a stream
    spill = MOVE_NOISE + TRY_STRIDE * MAX_REDSHIFT_TRIES  # one try more
    assert stream.draw(1, 2, 3, 0, spill)[0] == stream.draw(1, 2, 3, 1, spill - 256)[0]  # collides
    AugmentConfig(redshift_tries=MAX_REDSHIFT_TRIES)
    with pytest.raises(ConfigError, match=rf"augment.redshift_tries must be in \[1, {MAX_REDSHIFT_TRIES}\]"):
        AugmentConfig(redshift_tries=MAX_REDSHIFT_TRIES + 1)


def spaced_batch(n_objects: int = 12, length: int = 6) -> Batch:
    """Object i observed at days 1000 i + 0..length-1: a slot's time says whose it is."""
    lengths = np.full(n_objects, length)
    time = np.concatenate([1000.0 * i + np.arange(length) for i in range(n_objects)])
    n = len(time)
    obs = {"time": time, "band": np.zeros(n, np.int8), "flux": np.full(n, 50.0, np.float32),
           "flux_err": np.ones(n, np.float32), "flag": np.zeros(n, np.int32)}
    meta = {"hostgal_photoz": np.full(n_objects, 0.1, np.float32),
            "hostgal_photoz_err": np.full(n_objects, 0.01, np.float32),
            "ddf": np.zeros(n_objects, np.int8), "type": np.zeros(n_objects, np.int8)}
    return Batch(np.arange(100, 100 + n_objects, dtype=np.int64), offsets_from_lengths(lengths), obs, meta)


@pytest.mark.parametrize("backend", ["cpu", "numba-cuda"])
def test_a_write_pass_that_diverges_from_its_count_is_caught(backend, monkeypatch):
    """The count and write passes recompute the same draws; were they to disagree, the write pass
    would fill the next object's place. A forced divergence (a count pass that places one
    observation per object) is refused naming an object, and no object writes past its place."""
    from snia.augment import shared

    if backend == "cpu":
        import numba

        import snia.augment.cpu as module

        jit = numba.njit
    else:
        pytest.importorskip("numba.cuda")
        from numba import cuda

        import snia.augment.numba_cuda as module

        jit = cuda.jit

    @jit
    def one_each(offsets, keys, ddf, time, flux, err, seed, epoch, drop, truncate_probability,
                 truncate_days, out):
        for i in range(len(keys)):
            out[i] = 1

    batch = spaced_batch()
    cfg = AugmentConfig(drop_fraction=0.0, redshift_probability=0.0)
    monkeypatch.setattr(module, "count", one_each)
    run = (lambda: augment_cpu(batch, 0, 1, cfg, WAVE)) if backend == "cpu" else \
        (lambda: module.augment_numba_cuda(batch, 0, 1, cfg, WAVE, threads=4, max_blocks=2))
    with pytest.raises(shared.AugmentDiverged, match=r"object 10\d: the write pass kept 6 observations "
                                                     r"where the count pass placed 1"):
        run()
    seen = {}
    monkeypatch.setattr(module, "check_counts", lambda written, counts, keys: seen.update(written=written))
    got = run()
    assert list(host(seen["written"])) == [6] * len(batch)
    first = host(got.obs["time"])[:len(batch)]
    owner = np.round(first / 1000.0).astype(int)  # each place holds its own object's observation
    assert owner.tolist() == list(range(len(batch)))
