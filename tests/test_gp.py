"""GP fits of light curves (snia.gp): the batched torch fit against the plain NumPy/SciPy
reference (itself checked against scikit-learn's GP), and the fit file kept beside a store."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snia.gp import reference
from snia.gp.fit import (
    JITTER,
    GPSettings,
    fit_batch,
    length_groups,
    likelihood,
    negative_log_likelihood,
    padded_group,
    pair_geometry,
)
from snia.lightcurve import Batch, offsets_from_lengths

WAVES = np.array([3671.0, 4827.0, 6223.0, 7546.0, 8691.0, 9712.0])


def supernova_like(rng, n, peak=60.0, width=15.0, noise=0.05):
    """A bump peaked at ``peak`` days, brighter in the red bands, observed at random times."""
    t = np.sort(rng.uniform(0.0, 150.0, n))
    band = rng.integers(0, 6, n)
    truth = (0.5 + band / 6.0) * np.exp(-0.5 * ((t - peak) / width) ** 2)
    err = np.full(n, noise)
    return t, band, truth + rng.normal(0.0, noise, n), err


def make_batch(curves) -> Batch:
    lengths = np.array([len(c[0]) for c in curves])
    obs = {"time": np.concatenate([c[0] for c in curves]) + 60000.0,
           "band": np.concatenate([c[1] for c in curves]).astype(np.int8),
           "flux": np.concatenate([c[2] for c in curves]).astype(np.float32),
           "flux_err": np.concatenate([c[3] for c in curves]).astype(np.float32)}
    return Batch(object_id=np.arange(len(curves), dtype=np.int64), offsets=offsets_from_lengths(lengths),
                 obs=obs, meta={})


def as_float32_curve(batch, i):
    a, b = batch.offsets[i], batch.offsets[i + 1]
    return (batch.obs["time"][a:b] - batch.obs["time"][a], WAVES[batch.obs["band"][a:b]],
            batch.obs["flux"][a:b].astype(np.float64), batch.obs["flux_err"][a:b].astype(np.float64))


def test_the_reference_likelihood_is_scikit_learns():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    rng = np.random.default_rng(1)
    t, band, flux, err = supernova_like(rng, 40)
    w = WAVES[band]
    amplitude, time_scale, wave_scale = 0.7, 12.0, 6000.0
    kernel = ConstantKernel(amplitude ** 2, "fixed") * Matern([time_scale, wave_scale], "fixed", nu=1.5)
    gp = GaussianProcessRegressor(kernel, alpha=err ** 2, optimizer=None, normalize_y=False)
    x = np.column_stack([t, w])
    gp.fit(x, flux)
    expected = -gp.log_marginal_likelihood_value_
    assert reference.negative_log_likelihood(t, w, flux, err, amplitude, time_scale, wave_scale) == \
        pytest.approx(expected, rel=1e-10)
    new = np.column_stack([rng.uniform(0, 150, 30), rng.choice(WAVES, 30)])
    weights = reference.alpha(t, w, flux, err, amplitude, time_scale, wave_scale)
    np.testing.assert_allclose(reference.mean(new[:, 0], new[:, 1], t, w, weights, time_scale, wave_scale),
                               gp.predict(new), rtol=1e-8, atol=1e-10)


def test_the_batched_likelihood_and_weights_are_the_references_for_ragged_objects():
    import torch

    rng = np.random.default_rng(2)
    curves = [supernova_like(rng, n) for n in (5, 31, 17, 1, 60)]
    batch = make_batch(curves)
    members = np.array([4, 0, 2, 3, 1])  # any order, padded to the longest
    t, w, y, var, mask, scale = padded_group(batch, WAVES[batch.obs["band"]], members, torch, "cpu")
    log_amp = torch.tensor([0.1, -0.5, 0.0, 0.3, -1.0], dtype=torch.float64)
    log_time = torch.log(torch.tensor([10.0, 30.0, 5.0, 20.0, 100.0], dtype=torch.float64))
    nll, alpha, info = negative_log_likelihood(t, w, y, var, mask, log_amp, log_time, 6000.0, torch)
    assert (info == 0).all()
    for j, i in enumerate(members):
        tt, ww, flux, err = as_float32_curve(batch, i)
        s = scale[j].item()
        amp = s * math.exp(log_amp[j].item())
        err = np.sqrt(err ** 2 + JITTER * s ** 2)  # the fit's jitter, in flux units
        expected = reference.negative_log_likelihood(tt, ww, flux, err, amp, math.exp(log_time[j].item()), 6000.0)
        # the batched value is of flux / scale: n log(scale) apart
        assert nll[j].item() + len(tt) * math.log(s) == pytest.approx(expected, rel=1e-10)
        weights = reference.alpha(tt, ww, flux, err, amp, math.exp(log_time[j].item()), 6000.0)
        got = alpha[j, :len(tt)].numpy() * s * math.exp(2 * log_amp[j].item())
        np.testing.assert_allclose(got, weights, rtol=1e-8, atol=1e-10 * np.abs(weights).max())
        assert np.all(alpha[j, len(tt):].numpy() == 0)  # padding adds nothing


def test_the_written_out_gradient_is_the_likelihoods_own():
    import torch

    rng = np.random.default_rng(6)
    batch = make_batch([supernova_like(rng, n) for n in (9, 40, 23)])
    t, w, y, var, mask, _ = padded_group(batch, WAVES[batch.obs["band"]], np.arange(3), torch, "cpu")
    geometry = pair_geometry(t, w, mask, 6000.0, torch)
    log_amp = torch.tensor([0.2, -0.7, 0.4], dtype=torch.float64)
    log_time = torch.log(torch.tensor([8.0, 25.0, 60.0], dtype=torch.float64))
    _, _, _, (grad_amp, grad_time) = likelihood(geometry, y, var, mask, log_amp, log_time, torch, gradient=True)

    def nll(a, lt):
        return likelihood(geometry, y, var, mask, a, lt, torch)[0]

    h = 1e-6  # central differences of the likelihood itself
    step = torch.full((3,), h, dtype=torch.float64)
    np.testing.assert_allclose(grad_amp, (nll(log_amp + step, log_time) - nll(log_amp - step, log_time)) / (2 * h),
                               rtol=1e-6)
    np.testing.assert_allclose(grad_time, (nll(log_amp, log_time + step) - nll(log_amp, log_time - step)) / (2 * h),
                               rtol=1e-6)


def test_the_fit_reaches_the_references_optimum_and_its_mean_peaks_where_the_curve_does():
    rng = np.random.default_rng(3)
    peaks = [40.0, 60.0, 75.0, 90.0, 55.0, 70.0]
    curves = [supernova_like(rng, n, peak=p) for n, p in zip((12, 25, 40, 60, 33, 80), peaks)]
    batch = make_batch(curves)
    whole = GPSettings(steps=150, window_before=None, window_after=None)
    fits = fit_batch(batch, WAVES[batch.obs["band"]], whole)
    assert not fits["failed"].any()
    for i, peak in enumerate(peaks):
        tt, ww, flux, err = as_float32_curve(batch, i)
        amp, time_scale, best = reference.fit(tt, ww, flux, err, 6000.0)
        # Adam stops near the optimum L-BFGS-B finds: within a small fraction of a nat
        assert fits["nll"][i] <= best + 0.05 + 1e-3 * abs(best)
        # the stored weights give the reference's mean for the fitted parameters
        a, b = batch.offsets[i], batch.offsets[i + 1]
        jittered = np.sqrt(err ** 2 + JITTER * np.abs(flux).max() ** 2)
        weights = reference.alpha(tt, ww, flux, jittered, fits["amplitude"][i], fits["time_scale"][i], 6000.0)
        np.testing.assert_allclose(fits["alpha"][a:b], weights, rtol=1e-8, atol=1e-10)
        # the peak is the reference mean's largest value over the observed span and bands (to a
        # step of the search grid), and near the bump's own (width 15 days; day 0 is MJD 60000)
        grid = np.linspace(0.0, tt[-1], 2001)
        means = [reference.mean(grid, np.full_like(grid, wave), tt, ww, weights, fits["time_scale"][i], 6000.0)
                 for wave in np.unique(ww)]
        expected = batch.obs["time"][a] + grid[np.unravel_index(np.argmax(means), (len(means), len(grid)))[1]]
        assert abs(fits["peak_time"][i] - expected) <= tt[-1] / 255 + 0.1
        assert abs(fits["peak_time"][i] - (60000.0 + peak)) < 8.0


def test_objects_are_fitted_as_if_alone():
    rng = np.random.default_rng(4)
    curves = [supernova_like(rng, n) for n in (8, 50, 21, 33)]
    batch = make_batch(curves)
    wave = WAVES[batch.obs["band"]]
    together = fit_batch(batch, wave, GPSettings(group=4))
    for i in range(len(curves)):
        a, b = batch.offsets[i], batch.offsets[i + 1]
        alone = fit_batch(make_batch([curves[i]]), wave[a:b], GPSettings(group=4))
        for key in ("amplitude", "time_scale", "nll", "peak_time"):
            assert together[key][i] == pytest.approx(alone[key][0], rel=1e-6, abs=1e-6), key
        np.testing.assert_allclose(together["alpha"][a:b], alone["alpha"], rtol=1e-6, atol=1e-9)


def test_only_the_window_around_the_brightest_observation_is_fitted():
    rng = np.random.default_rng(5)
    t, band, flux, err = supernova_like(rng, 60, peak=100.0)
    t = np.concatenate([t - 400.0, t])  # a season of baseline noise a year before
    flux = np.concatenate([rng.normal(0.0, 0.05, 60), flux])
    band, err = np.concatenate([band, band]), np.concatenate([err, err])
    batch = make_batch([(t, band, flux, err)])
    wave = WAVES[batch.obs["band"]]
    settings = GPSettings(window_before=30.0, window_after=40.0)
    fits = fit_batch(batch, wave, settings)
    brightest = t[np.argmax(flux / err)]
    inside = (t >= brightest - 30.0) & (t <= brightest + 40.0)
    assert fits["n_fitted"][0] == inside.sum() < 60
    assert np.all(fits["alpha"][~inside] == 0)
    # the same as fitting the window's observations alone
    alone = fit_batch(make_batch([(t[inside], band[inside], flux[inside], err[inside])]), wave[inside],
                      GPSettings(window_before=None, window_after=None))
    for key in ("amplitude", "time_scale", "nll", "peak_time"):
        assert fits[key][0] == pytest.approx(alone[key][0], rel=1e-9), key
    np.testing.assert_allclose(fits["alpha"][inside], alone["alpha"], rtol=1e-9)


def test_groups_hold_similar_lengths_and_every_object_once():
    counts = np.array([5, 300, 40, 41, 42, 60, 7, 200, 43, 9])
    order = np.argsort(counts, kind="stable")
    groups = list(length_groups(order, counts, 3))
    np.testing.assert_array_equal(np.concatenate(groups), order)
    for g in groups:
        assert 1 <= len(g) <= 3 and counts[g].max() <= 1.25 * counts[g].min() + 8
    assert [list(counts[g]) for g in groups][:3] == [[5, 7, 9], [40, 41, 42], [43, 60]]


def test_settings_out_of_range_are_refused_by_name():
    from snia.errors import ConfigError

    with pytest.raises(ConfigError, match="time_scale"):
        GPSettings(min_time_scale=50.0, time_scale=20.0)
    with pytest.raises(ConfigError, match="steps"):
        GPSettings(steps=0)
    with pytest.raises(ConfigError, match="window"):
        GPSettings(window_before=None)


# ----------------------------------------------------------------------------- the fit file


def test_gp_fit_command_writes_the_fits_beside_the_store_checked_against_it(small_store, tmp_path):
    from snia.cli import main
    from snia.gp.file import default_path, read_fits
    from snia.store import Store

    assert main(["gp", "fit", str(small_store), "--chunk", "5", "--device", "cpu", "--no-progress"]) == 0
    out = default_path(small_store)
    assert out.name == "s.gp.h5" and out.is_file()
    with Store(small_store) as store:
        fits = read_fits(out, store)
        batch = store.batch(slice(0, len(store)))
        wave = np.array([b.wavelength for b in store.bands.bands])[batch.obs["band"]]
    np.testing.assert_array_equal(fits.objects["object_id"], batch.object_id)
    one_pass = fit_batch(batch, wave, fits.settings)  # chunks of 5 == one pass
    np.testing.assert_allclose(fits.objects["time_scale"], one_pass["time_scale"], rtol=1e-6)
    np.testing.assert_allclose(fits.alpha, one_pass["alpha"], rtol=1e-6, atol=1e-9)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_fits_of_another_store_are_refused_naming_both(small_store, tmp_path):
    from conftest import synthetic_plasticc

    from snia.errors import StoreError
    from snia.gp.file import fit_store, read_fits
    from snia.ingest import run_ingest
    from snia.store import Store

    fit_store(small_store, tmp_path / "fits.h5", GPSettings(steps=2), progress=False)
    other = tmp_path / "other"
    other.mkdir()
    lc, meta, _ = synthetic_plasticc(other, 12, 10)
    run_ingest("plasticc", [lc], other / "s.h5", [meta], progress=False, split="train")
    with Store(other / "s.h5") as store, pytest.raises(StoreError, match="fitted to another store"):
        read_fits(tmp_path / "fits.h5", store)
    with Store(small_store) as store, pytest.raises(StoreError, match="no GP fits"):
        read_fits(tmp_path / "missing.h5", store)


def test_gp_fit_of_a_missing_store_is_one_line(tmp_path, capsys):
    from snia.cli import main

    assert main(["gp", "fit", str(tmp_path / "nope.h5"), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.h5" in err[0]


def one_point_batch(z: float, flux: np.ndarray, err: np.ndarray, time: np.ndarray) -> Batch:
    obs = {"time": time.astype(np.float64), "band": np.zeros(len(time), dtype=np.int8),
           "flux": flux.astype(np.float32), "flux_err": err.astype(np.float32)}
    return Batch(object_id=np.array([1], dtype=np.int64), offsets=np.array([0, len(time)]), obs=obs,
                 meta={"hostgal_photoz": np.array([z])})


@pytest.mark.parametrize("z", [0.0, 1.0])
def test_gp_features_of_a_single_kernel_are_its_hand_derived_widths_and_colours(z):
    """A mean made of one kernel at (day 0, 4827 A) with unit weight: it peaks there in every band;
    it falls to a fraction q of its peak r(q) time scales away (r from the Matern-3/2 formula,
    solved here by root finding), i.e. floor(r time_scale / (1 + z)) + 1 rest-frame grid days; a band
    dw away is matern32(dw^2 / wave_scale^2) as bright (its colour the log10 of that)."""
    from scipy.optimize import brentq

    from snia.gp.features import MISSING, feature_names, gp_features

    time_scale, wave_scale = 10.0, 6000.0
    band_wave = np.array([4827.0, 6223.0])
    # the fitted point (weight 1) and three others not fitted (weight 0): S/N 10, 4, 2 and 0.5
    time = np.array([100.0, 110.0, 130.0, 140.0])
    flux, err = np.array([10.0, 4.0, 2.0, 0.5]), np.ones(4)
    batch = one_point_batch(z, flux, err, time)
    wave = np.full(4, 4827.0)
    row = gp_features(batch, wave, np.array([1.0, 0, 0, 0]), np.array([time_scale]), np.array([100.0]),
                      wave_scale, band_wave)[0]
    got = dict(zip(feature_names(["g", "r"]), row))
    m32 = lambda r: (1 + math.sqrt(3) * r) * math.exp(-math.sqrt(3) * r)  # noqa: E731
    for q in (0.2, 0.5, 0.8):
        r = brentq(lambda x, q=q: m32(x) - q, 0.0, 20.0)
        # the first grid day strictly below q: the crossing's day, rounded up
        expected = math.floor(r * time_scale / (1 + z)) + 1
        assert got[f"gp_g_rise_{int(100 * q)}"] == expected
        assert got[f"gp_g_decline_{int(100 * q)}"] == expected
        # band r, dw away: the kernel is not separable, so its own curve is broader
        rw = (6223.0 - 4827.0) / wave_scale
        rt = brentq(lambda x, q=q, rw=rw: m32(math.hypot(x, rw)) - q * m32(rw), 0.0, 20.0)
        assert got[f"gp_r_rise_{int(100 * q)}"] == math.floor(rt * time_scale / (1 + z)) + 1
    colour = math.log10(m32(abs(6223.0 - 4827.0) / wave_scale))
    assert got["gp_g_peak_day"] == 0.0 and got["gp_r_peak_day"] == 0.0
    assert got["gp_g_log10_peak_ratio"] == 0.0
    assert got["gp_r_log10_peak_ratio"] == pytest.approx(colour)
    assert got["gp_g-r_day+0"] == pytest.approx(-colour)
    day15 = m32(15 * (1 + z) / time_scale)
    assert got["gp_g_log10_ratio_day+15"] == pytest.approx(math.log10(day15))
    assert got["gp_log10_time_scale"] == pytest.approx(1.0)
    assert got["gp_negative_share"] == 0.0
    # from the observations: S/N >= 3 twice, >= 5 once (of 4), one detection spans 0 days
    assert got["count_snr3"] == 2 and got["share_snr5"] == 0.25 and got["detected_days"] == 0.0
    assert got["log10_total_snr"] == pytest.approx(math.log10(math.sqrt(100 + 16 + 4 + 0.25)), rel=1e-6)
    # an object with no fitted observation: every GP feature missing, the observed ones kept
    none = gp_features(batch, wave, np.zeros(4), np.array([time_scale]), np.array([100.0]), wave_scale,
                       band_wave)[0]
    assert np.all(none[:-4] == MISSING) and none[-4] == 2
