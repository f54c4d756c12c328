"""The ``numba-cuda`` backend: ``@cuda.jit`` kernels, one thread per output pixel, grid-stride.

Imported only when that backend is used (``snia.raster.dispatch``). The kernels are module-level:
Numba's CUDA simulator (used in tests without a GPU) swaps the module-level ``cuda`` name inside
kernels, so ``cuda`` must be a module global. The math is ``shared.shared_math``.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from snia.numba_cuda_compat import ensure_numpy_names
from snia.raster.shared import shared_math
from snia.raster.spec import (
    REFERENCES,
    Images,
    RasterSpec,
    flat_inputs,
    observation_wavelengths,
    redshift_factor,
)

ensure_numpy_names()  # before numba-cuda first compiles (see snia.numba_cuda_compat)

m = shared_math(cuda.jit(device=True))
object_reference, object_scale, time_bin = m.object_reference, m.object_scale, m.time_bin
bands_pixel, heatmap_pixel = m.bands_pixel, m.heatmap_pixel
finish_bands, finish_heatmap = m.finish_bands, m.finish_heatmap


@cuda.jit
def prepare(offsets, time, flux, err, mode, snr, t_ref, scale):
    for i in range(cuda.grid(1), len(offsets) - 1, cuda.gridsize(1)):
        t_ref[i] = object_reference(time, flux, err, offsets[i], offsets[i + 1], mode, snr)
        scale[i] = object_scale(flux, offsets[i], offsets[i + 1])


@cuda.jit
def bands(offsets, time, band, flux, err, t_ref, scale, zfac, rows, t_before, dt, out):
    n_rows, n_time = out.shape[2], out.shape[3]
    # one thread per output pixel, grid-stride; each pixel is written exactly once (no atomics)
    for p in range(cuda.grid(1), out.shape[0] * n_rows * n_time, cuda.gridsize(1)):
        i = p // (n_rows * n_time)
        r = (p // n_time) % n_rows
        j = p % n_time
        ivar, wflux = bands_pixel(time, band, flux, err, offsets[i], offsets[i + 1], t_ref[i],
                                  zfac[i], t_before, dt, j, rows[r])
        out[i, 0, r, j], out[i, 1, r, j], out[i, 2, r, j] = finish_bands(ivar, wflux, scale[i])


@cuda.jit
def heatmap(offsets, time, wave, flux, err, t_ref, scale, zfac, t_before, dt, wave_min, dwave,
            sigma_t, sigma_l, support, out):
    n_wave, n_time = out.shape[2], out.shape[3]
    for p in range(cuda.grid(1), out.shape[0] * n_wave * n_time, cuda.gridsize(1)):
        i = p // (n_wave * n_time)
        k = (p // n_time) % n_wave
        j = p % n_time
        sw, swf, sw2v = heatmap_pixel(time, wave, flux, err, offsets[i], offsets[i + 1],
                                      -t_before + (j + 0.5) * dt,
                                      wave_min + (k + 0.5) * dwave, t_ref[i], zfac[i],
                                      sigma_t, sigma_l, support)
        out[i, 0, k, j], out[i, 1, k, j] = finish_heatmap(sw, swf, sw2v, scale[i])


def rasterize_numba_cuda(batch, spec: RasterSpec, redshift=None, out=None, threads=128) -> Images:
    """Images of a ragged batch on the GPU (Numba device arrays); host inputs are copied over."""
    n = len(batch.object_id)
    offsets, time, band, flux, err = (cuda.to_device(np.ascontiguousarray(a))
                                      for a in flat_inputs(batch))
    zfac = cuda.to_device(redshift_factor(batch.meta, n, spec, redshift))
    t_ref = cuda.device_array(n, dtype=np.float64)
    scale = cuda.device_array(n, dtype=np.float32)
    out = cuda.to_device(out) if out is not None else cuda.device_array((n, *spec.shape),
                                                                       dtype=np.float32)
    blocks = max(1, min(1024, -(-max(n, 1) // threads)))
    prepare[blocks, threads](offsets, time, flux, err, REFERENCES.index(spec.reference),
                             spec.detection_snr, t_ref, scale)
    pixels = n * int(np.prod(spec.shape[1:]))
    blocks = max(1, min(65535, -(-max(pixels, 1) // threads)))
    if spec.kind == "bands":
        rows = cuda.to_device(np.asarray(spec.bands, dtype=np.int8))
        bands[blocks, threads](offsets, time, band, flux, err, t_ref, scale, zfac, rows,
                               spec.t_before, spec.dt, out)
    else:
        wave = cuda.to_device(observation_wavelengths(batch, spec))
        heatmap[blocks, threads](offsets, time, wave, flux, err, t_ref, scale, zfac,
                                 spec.t_before, spec.dt, spec.wave_min, spec.dwave,
                                 spec.sigma_time, spec.sigma_wave, spec.support, out)
    return Images(out, scale, t_ref, spec)
