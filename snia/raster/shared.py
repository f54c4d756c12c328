"""The per-object and per-pixel math of the ``cpu`` and ``numba-cuda`` backends, one set of plain
Python functions compiled for each target by ``shared_math(jit)``, so the two cannot drift apart.

``cpu.py`` compiles it with ``numba.njit(inline="always")``, ``numba_cuda.py`` with
``cuda.jit(device=True)``. ``kernels/raster.cu`` (the ``cupy`` backend) is the same math in CUDA C,
line by line, and ``reference.py`` the NumPy definition all three are tested against: change one,
change them all. Arithmetic on fluxes and errors (float32 inputs) is done in float64, and the
column of an observation is computed exactly as the NumPy reference does, so bin edges agree.
"""

from __future__ import annotations

import math
from types import SimpleNamespace


def shared_math(jit) -> SimpleNamespace:
    """The per-object and per-pixel math, compiled by ``jit`` (numba.njit or cuda.jit(device=True)).

    Observations of an object are time-ordered (a store guarantee), so the observations that can
    touch a time column are found by binary search instead of scanning the whole light curve.
    """
    from numba import float64 as f64  # a cast usable on CPU and on the GPU

    @jit
    def lower_bound(time, lo, hi, value):
        # first index in [lo, hi) with time >= value
        while lo < hi:
            mid = (lo + hi) // 2
            if time[mid] < value:
                lo = mid + 1
            else:
                hi = mid
        return lo

    @jit
    def object_reference(time, flux, err, start, stop, mode, snr):
        if stop <= start:
            return 0.0
        # f64(): fluxes and errors are float32; squares of extreme values need float64
        if mode == 1:
            for i in range(start, stop):
                if f64(flux[i]) / f64(err[i]) >= snr:
                    return time[i]
        best, best_i, top, top_i = 0.0, -1, flux[start], start
        for i in range(start, stop):
            if flux[i] > 0:
                score = f64(flux[i]) * f64(flux[i]) / f64(err[i])
                if score > best:
                    best, best_i = score, i
            if flux[i] > top:
                top, top_i = flux[i], i
        return time[best_i] if best_i >= 0 else time[top_i]

    @jit
    def object_scale(flux, start, stop):
        if stop <= start:
            return 1.0
        peak, absolute = flux[start], abs(flux[start])
        for i in range(start, stop):
            peak = max(peak, flux[i])
            absolute = max(absolute, abs(flux[i]))
        if peak <= 0:
            peak = absolute
        return peak if peak > 0 else 1.0

    @jit
    def time_bin(time, t_ref, zfac, t_before, dt):
        # the column of an observation: the same float64 arithmetic as the NumPy reference
        return math.floor(((time - t_ref) / zfac + t_before) / dt)

    @jit
    def bands_pixel(time, band, flux, err, lo, hi, t_ref, zfac, t_before, dt, column, row_band):
        # binary search a window one column wider on each side, then keep exactly this column
        a = lower_bound(time, lo, hi, t_ref + (-t_before + (column - 1) * dt) * zfac)
        b = lower_bound(time, a, hi, t_ref + (-t_before + (column + 2) * dt) * zfac)
        ivar, wflux = 0.0, 0.0
        for i in range(a, b):
            if band[i] == row_band and time_bin(time[i], t_ref, zfac, t_before, dt) == column:
                w = 1.0 / (f64(err[i]) * f64(err[i]))
                ivar += w
                wflux += w * f64(flux[i])
        return ivar, wflux

    @jit
    def heatmap_pixel(time, wave, flux, err, lo, hi, t_center, w_center, t_ref, zfac,
                      sigma_t, sigma_l, support):
        # a time window by binary search (1% wider: it only preselects), then the exact cuts
        reach = 1.01 * support * sigma_t
        a = lower_bound(time, lo, hi, t_ref + (t_center - reach) * zfac)
        b = lower_bound(time, a, hi, t_ref + (t_center + reach) * zfac)
        sum_w, sum_wf, sum_w2v = 0.0, 0.0, 0.0
        for i in range(a, b):
            dl = (w_center - wave[i] / zfac) / sigma_l
            if abs(dl) > support:
                continue
            dt = (t_center - (time[i] - t_ref) / zfac) / sigma_t
            if abs(dt) > support:
                continue
            var = f64(err[i]) * f64(err[i])
            w = math.exp(-0.5 * (dt * dt + dl * dl)) / var
            sum_w += w
            sum_wf += w * f64(flux[i])
            sum_w2v += w * w * var
        return sum_w, sum_wf, sum_w2v

    @jit
    def finish_bands(ivar, wflux, scale):
        # (mean, uncertainty, mask) of a bands pixel; exactly 0 where nothing was observed
        if ivar > 0:
            return wflux / ivar / scale, 1.0 / math.sqrt(ivar) / scale, 1.0
        return 0.0, 0.0, 0.0

    @jit
    def finish_heatmap(sum_w, sum_wf, sum_w2v, scale):
        if sum_w > 0:
            return sum_wf / sum_w / scale, math.sqrt(sum_w2v) / sum_w / scale
        return 0.0, 0.0

    return SimpleNamespace(lower_bound=lower_bound, object_reference=object_reference,
                           object_scale=object_scale, time_bin=time_bin, bands_pixel=bands_pixel,
                           heatmap_pixel=heatmap_pixel, finish_bands=finish_bands,
                           finish_heatmap=finish_heatmap)
