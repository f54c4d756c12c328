"""The ``cpu`` backend: Numba ``@njit(parallel=True)``, objects in parallel (``numba.prange``).

The kernels are compiled on first use (and cached on disk by Numba), so importing this module
does not import Numba. The per-object and per-pixel math is ``shared.shared_math``; only the bands
kernel differs from the GPU one: a CPU thread owns a whole object, so it scatters the object's
observations into per-pixel sums in one pass instead of searching once per pixel.
"""

from __future__ import annotations

import numpy as np

from snia.raster.shared import shared_math
from snia.raster.spec import (
    REFERENCES,
    Images,
    RasterSpec,
    flat_inputs,
    observation_wavelengths,
    output_buffer,
    redshift_factor,
    row_of_band,
)

_KERNELS = {}


def kernels() -> dict:
    """Compile the CPU kernels once per process (numba caches them on disk too). They release the
    GIL (nogil), so training can draw the next batch in a thread while the model steps."""
    if _KERNELS:
        return _KERNELS
    import numba
    from numba import float64 as f64

    m = shared_math(numba.njit(inline="always", cache=True))
    # numba resolves called functions as closure variables, not namespace attributes
    object_reference, object_scale, time_bin = m.object_reference, m.object_scale, m.time_bin
    heatmap_pixel = m.heatmap_pixel  # the CPU bands kernel scatters instead of bands_pixel
    finish_bands, finish_heatmap = m.finish_bands, m.finish_heatmap

    @numba.njit(parallel=True, cache=True, nogil=True)
    def prepare(offsets, time, flux, err, mode, snr, t_ref, scale):
        for i in numba.prange(len(offsets) - 1):
            t_ref[i] = object_reference(time, flux, err, offsets[i], offsets[i + 1], mode, snr)
            scale[i] = object_scale(flux, offsets[i], offsets[i + 1])

    @numba.njit(parallel=True, cache=True, nogil=True)
    def bands(offsets, time, band, flux, err, t_ref, scale, zfac, row_of_band, t_before, dt, out):
        # One object per thread: scatter its observations into per-object sums (a single pass,
        # no search), then finish every pixel with the shared math.
        n_rows, n_time = out.shape[2], out.shape[3]
        for i in numba.prange(len(offsets) - 1):
            ivar = np.zeros((n_rows, n_time))
            wflux = np.zeros((n_rows, n_time))
            for o in range(offsets[i], offsets[i + 1]):
                r = row_of_band[band[o]]
                j = time_bin(time[o], t_ref[i], zfac[i], t_before, dt)
                if r >= 0 and 0 <= j < n_time:
                    w = 1.0 / (f64(err[o]) * f64(err[o]))
                    ivar[r, j] += w
                    wflux[r, j] += w * f64(flux[o])
            for r in range(n_rows):
                for j in range(n_time):
                    out[i, 0, r, j], out[i, 1, r, j], out[i, 2, r, j] = finish_bands(
                        ivar[r, j], wflux[r, j], scale[i])

    @numba.njit(parallel=True, cache=True, nogil=True)
    def heatmap(offsets, time, wave, flux, err, t_ref, scale, zfac, t_before, dt, wave_min, dwave,
                sigma_t, sigma_l, support, out):
        for i in numba.prange(len(offsets) - 1):
            lo, hi = offsets[i], offsets[i + 1]
            for k in range(out.shape[2]):
                w_center = wave_min + (k + 0.5) * dwave
                for j in range(out.shape[3]):
                    t_center = -t_before + (j + 0.5) * dt
                    sw, swf, sw2v = heatmap_pixel(time, wave, flux, err, lo, hi, t_center,
                                                  w_center, t_ref[i], zfac[i], sigma_t, sigma_l,
                                                  support)
                    out[i, 0, k, j], out[i, 1, k, j] = finish_heatmap(sw, swf, sw2v, scale[i])

    _KERNELS.update(prepare=prepare, bands=bands, heatmap=heatmap)
    return _KERNELS


def object_references(offsets, time, flux, err, reference: str = "peak",
                      detection_snr: float = RasterSpec.detection_snr):
    """Per-object reference time (f64) and flux scale (f32) of flat observation arrays, as the
    images place and scale each light curve (``RasterSpec.reference``); ``offsets`` index the
    arrays."""
    n = len(offsets) - 1
    t_ref, scale = np.zeros(n), np.ones(n, dtype=np.float32)
    kernels()["prepare"](np.asarray(offsets, np.int64), np.asarray(time, np.float64),
                         np.asarray(flux, np.float32), np.asarray(err, np.float32),
                         REFERENCES.index(reference), detection_snr, t_ref, scale)
    return t_ref, scale


def rasterize_cpu(batch, spec: RasterSpec, redshift=None, out=None) -> Images:
    """Images of a ragged batch on the CPU (NumPy arrays); ``out``: optional float32 buffer."""
    k = kernels()
    n = len(batch.object_id)
    offsets, time, band, flux, err = flat_inputs(batch)
    zfac = redshift_factor(batch.meta, n, spec, redshift)
    t_ref, scale = object_references(offsets, time, flux, err, spec.reference, spec.detection_snr)
    out = output_buffer(out, (n, *spec.shape), np)
    if spec.kind == "bands":
        k["bands"](offsets, time, band, flux, err, t_ref, scale, zfac, row_of_band(spec),
                   spec.t_before, spec.dt, out)
    else:
        wave = observation_wavelengths(batch, spec)
        k["heatmap"](offsets, time, wave, flux, err, t_ref, scale, zfac, spec.t_before, spec.dt,
                     spec.wave_min, spec.dwave, spec.sigma_time, spec.sigma_wave, spec.support, out)
    return Images(out, scale, t_ref, spec)
