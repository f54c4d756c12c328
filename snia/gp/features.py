"""Features of each light curve read off its GP mean (Boone 2019, Avocado's recipe in spirit).

A light curve seen a few times in each band says little about its shape band by band; its GP in
time x wavelength (``snia.gp.fit``) fills every band from all of them. Read off the mean on a grid
of rest-frame days around its peak (observed days / (1 + z), the host photo-z; z = 0 when
unknown or galactic), in each band of the store:

- the band's peak flux, its peak time and the mean at fixed days (-10, +15, +30), each relative
  to the object's brightest band (log10; colours and the secondary maximum of SNe Ia);
- the colours (log10 flux ratio) of neighbouring bands at days 0, +15 and +30;
- rise and decline: rest days from the band's maximum back to where the mean falls below 20, 50
  and 80 % of it, and forward likewise (the grid's edge when it never does);
- the fitted time scale, the GP peak flux (its luminosity needs d_L(z): the baseline adds it), the share of the
  grid where the summed mean is negative (a variable source dips below its reference), and from
  the observations: how many have S/N >= 3, the share with S/N >= 5, the days between the first
  and last S/N >= 5 one, and the total S/N.

A missing value (an object with no fit, a band never brighter than zero) is ``MISSING``, as the
baseline's other features.
"""

from __future__ import annotations

import math

import numpy as np

from snia.gp.reference import kernel

MISSING = -999.0  # a missing feature (the baseline uses it for both its feature sets)
GRID = np.arange(-50.0, 100.5, 1.0)  # rest-frame days from the GP's peak
FIXED_DAYS = (-10.0, 15.0, 30.0)
COLOUR_DAYS = (0.0, 15.0, 30.0)
FRACTIONS = (0.2, 0.5, 0.8)
FLOOR = -3.0  # log10 of a ratio at or below zero flux: a thousandth of the peak
SCALARS = ["gp_log10_time_scale", "gp_log10_peak_flux", "gp_negative_share",
           "count_snr3", "share_snr5", "detected_days", "log10_total_snr"]


def feature_names(band_names) -> list[str]:
    """Column names of ``gp_features`` for bands of these names (the store's order)."""
    names = []
    for b in band_names:
        names += [f"gp_{b}_log10_peak_ratio", f"gp_{b}_peak_day"]
        names += [f"gp_{b}_log10_ratio_day{d:+.0f}" for d in FIXED_DAYS]
        names += [f"gp_{b}_rise_{int(100 * q)}" for q in FRACTIONS]
        names += [f"gp_{b}_decline_{int(100 * q)}" for q in FRACTIONS]
    for a, b in zip(band_names[:-1], band_names[1:]):
        names += [f"gp_{a}-{b}_day{d:+.0f}" for d in COLOUR_DAYS]
    return names + SCALARS


def gp_features(batch, wave: np.ndarray, alpha: np.ndarray, time_scale: np.ndarray,
                peak_time: np.ndarray, wave_scale: float, band_wave: np.ndarray) -> np.ndarray:
    """One row per object of ``batch`` (``feature_names`` of its bands, in ``band_wave``'s order).

    ``wave``: each observation's effective wavelength; ``alpha``: each observation's weight in
    the GP mean (0: not fitted), ``time_scale`` and ``peak_time`` per object (``fit_batch`` or a
    fit file's fields); ``band_wave``: the wavelength of each band the features are read in."""
    nb = len(band_wave)
    out = np.full((len(batch), len(feature_names([str(k) for k in range(nb)]))), MISSING)
    z = np.asarray(batch.meta["hostgal_photoz"], dtype=np.float64)
    for i in range(len(batch)):
        a, b = int(batch.offsets[i]), int(batch.offsets[i + 1])
        zi = float(z[i]) if np.isfinite(z[i]) and z[i] > 0 else 0.0
        out[i, -4:] = _observed(batch.obs["flux"][a:b], batch.obs["flux_err"][a:b],
                                batch.obs["time"][a:b])
        used = alpha[a:b] != 0
        if not used.any() or not time_scale[i] > 0:
            continue
        t_obs = batch.obs["time"][a:b][used].astype(np.float64)
        mean = _grid_mean(t_obs, wave[a:b][used], alpha[a:b][used], float(time_scale[i]),
                          wave_scale, float(peak_time[i]), zi, band_wave)
        out[i, :-4] = _from_mean(mean, float(time_scale[i]))
    return out


def _grid_mean(t, w, weights, time_scale, wave_scale, peak, z, band_wave) -> np.ndarray:
    """The GP mean, (bands, GRID) at rest days GRID from ``peak``."""
    times = np.tile(peak + GRID * (1 + z), len(band_wave))
    waves = np.repeat(band_wave, len(GRID))
    return (kernel(times, waves, t, w, time_scale, wave_scale) @ weights).reshape(len(band_wave), -1)


def _log_ratio(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        r = np.where((a > 0) & (b > 0), np.log10(a / np.where(b > 0, b, 1.0)), FLOOR)
    return np.clip(r, FLOOR, -FLOOR)


def _from_mean(mean: np.ndarray, time_scale: float) -> np.ndarray:
    nb = len(mean)
    band_peak = mean.max(axis=1)
    top = band_peak.max()
    if not top > 0:
        top = 1e-12
    at = {d: int(np.argmin(np.abs(GRID - d))) for d in (*FIXED_DAYS, *COLOUR_DAYS)}
    row = []
    for k in range(nb):
        m = mean[k]
        j = int(m.argmax())
        row += [_log_ratio(band_peak[k], top), GRID[j]]
        row += [_log_ratio(m[at[d]], top) for d in FIXED_DAYS]
        row += [_crossing(m[j::-1], q) for q in FRACTIONS] if m[j] > 0 else [MISSING] * 3
        row += [_crossing(m[j:], q) for q in FRACTIONS] if m[j] > 0 else [MISSING] * 3
    for k in range(nb - 1):
        row += [_log_ratio(mean[k, at[d]], mean[k + 1, at[d]]) for d in COLOUR_DAYS]
    total = mean.sum(axis=0)
    row += [math.log10(time_scale), math.log10(max(top, 1e-3)), float((total < 0).mean())]
    return np.array(row, dtype=np.float64)


def _crossing(m: np.ndarray, fraction: float) -> float:
    """Grid steps (rest days) from m[0] (a maximum) to the first value below fraction * m[0]."""
    below = np.flatnonzero(m < fraction * m[0])
    return float(below[0]) if len(below) else float(len(m))


def _observed(flux, err, time) -> list[float]:
    flux, err = np.asarray(flux, dtype=np.float64), np.asarray(err, dtype=np.float64)
    if not len(flux):
        return [0.0, MISSING, MISSING, MISSING]
    snr = flux / np.where(err > 0, err, np.inf)
    detected = np.asarray(time, dtype=np.float64)[snr >= 5]
    days = float(detected.max() - detected.min()) if len(detected) else 0.0
    return [float((snr >= 3).sum()), float((snr >= 5).mean()), days,
            math.log10(max(float(np.sqrt((snr ** 2).sum())), 1e-3))]
