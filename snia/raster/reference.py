"""The NumPy reference of rasterization: written for clarity, one object at a time, whole-array
NumPy, no shortcuts. It is the test oracle every other backend is compared with (tests/), and
the definition of the images described in ``snia.raster``.
"""

from __future__ import annotations

import numpy as np

from snia.raster.spec import REFERENCES, Images, RasterSpec, redshift_factor

_FIRST_DETECTION = REFERENCES.index("first_detection")


def _reference_time(t, f, e, mode: int, snr: float) -> float:
    if len(t) == 0:
        return 0.0
    if mode == _FIRST_DETECTION:
        detected = np.flatnonzero(f / e >= snr)
        if detected.size:
            return float(t[detected[0]])
    score = np.where(f > 0, f * f / e, -1.0)
    if score.max() > 0:
        return float(t[np.argmax(score)])
    return float(t[np.argmax(f)])


def _scale(f) -> float:
    if len(f) == 0:
        return 1.0
    peak = f.max()
    if peak <= 0:
        peak = np.abs(f).max()
    return float(peak) if peak > 0 else 1.0


def _bands_image(t, b, f, e, spec: RasterSpec) -> np.ndarray:
    image = np.zeros(spec.shape, dtype=np.float64)
    column = np.floor((t + spec.t_before) / spec.dt).astype(np.int64)
    inside = (column >= 0) & (column < spec.n_time)
    for row, band in enumerate(spec.bands):
        pick = inside & (b == band)
        ivar = np.bincount(column[pick], weights=1.0 / e[pick] ** 2, minlength=spec.n_time)
        wflux = np.bincount(column[pick], weights=f[pick] / e[pick] ** 2, minlength=spec.n_time)
        seen = ivar > 0
        image[0, row, seen] = wflux[seen] / ivar[seen]
        image[1, row, seen] = 1.0 / np.sqrt(ivar[seen])
        image[2, row, seen] = 1.0
    return image


def _heatmap_image(t, wave, f, e, spec: RasterSpec) -> np.ndarray:
    t_centers = -spec.t_before + (np.arange(spec.n_time) + 0.5) * spec.dt
    w_centers = spec.wave_min + (np.arange(spec.n_wave) + 0.5) * spec.dwave
    dt = (t_centers[None, :] - t[:, None]) / spec.sigma_time  # [obs, time]
    dl = (w_centers[None, :] - wave[:, None]) / spec.sigma_wave  # [obs, wave]
    kt = np.where(np.abs(dt) <= spec.support, np.exp(-0.5 * dt * dt), 0.0)
    kl = np.where(np.abs(dl) <= spec.support, np.exp(-0.5 * dl * dl), 0.0)
    w = kl[:, :, None] * kt[:, None, :] / (e * e)[:, None, None]  # [obs, wave, time]
    sum_w = w.sum(axis=0)
    sum_wf = (w * f[:, None, None]).sum(axis=0)
    sum_w2v = (w * w * (e * e)[:, None, None]).sum(axis=0)
    image = np.zeros(spec.shape, dtype=np.float64)
    seen = sum_w > 0
    image[0][seen] = sum_wf[seen] / sum_w[seen]
    image[1][seen] = np.sqrt(sum_w2v[seen]) / sum_w[seen]
    return image


def rasterize_numpy(batch, spec: RasterSpec, redshift=None) -> Images:
    """The reference: one object at a time, whole-array NumPy, no shortcuts."""
    n = len(batch.object_id)
    zfac = redshift_factor(batch.meta, n, spec, redshift)
    images = np.zeros((n, *spec.shape), dtype=np.float32)
    scales = np.ones(n, dtype=np.float32)
    t_ref = np.zeros(n, dtype=np.float64)
    mode = REFERENCES.index(spec.reference)
    wavelengths = np.asarray(spec.wavelengths, dtype=np.float64)
    for i in range(n):
        lc = batch.lightcurve(i)
        t = lc["time"].astype(np.float64)
        f, e = lc["flux"].astype(np.float64), lc["flux_err"].astype(np.float64)
        t_ref[i] = _reference_time(t, f, e, mode, spec.detection_snr)
        scales[i] = _scale(f)
        rel = (t - t_ref[i]) / zfac[i]
        fn, en = f / scales[i], e / scales[i]
        if spec.kind == "bands":
            image = _bands_image(rel, lc["band"], fn, en, spec)
        else:
            wave = lc["wave"].astype(np.float64) if "wave" in lc else wavelengths[lc["band"]]
            image = _heatmap_image(rel, wave / zfac[i], fn, en, spec)
        images[i] = image
    return Images(images, scales, t_ref, spec)
