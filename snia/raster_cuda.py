"""Numba CUDA kernels of the ``numba-cuda`` rasterization backend (see ``snia.raster``).

A module of its own, imported only when that backend is used: Numba's CUDA simulator (used in
tests without a GPU) swaps the module-level ``cuda`` name inside kernels, so it must be a global.
One thread per output pixel, grid-stride loops; the math is ``snia.raster._shared_math``.
"""

from numba import cuda

from snia.raster import _shared_math

m = _shared_math(cuda.jit(device=True))
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
