"""Stage 2: light curves -> fixed-size images a CNN can read ([N, C, H, W], float32).

Two image kinds (``RasterSpec.kind``):

``bands`` (PELICAN style): one row per band, one column per time bin. Channels: the
    inverse-variance-weighted mean flux of the observations in the pixel, its uncertainty
    1/sqrt(sum 1/sigma^2), and a mask (1 where observed). Empty pixels are exactly 0 in all channels.
``heatmap`` (wavelength x time, SCONE-like without a Gaussian process): rows are wavelength bins,
    columns time bins. Channels: the Gaussian-kernel weighted mean flux, weights
    w_i = exp(-dt^2/2 s_t^2 - dl^2/2 s_l^2) / sigma_i^2, and its propagated uncertainty
    sqrt(sum w_i^2 sigma_i^2) / sum w_i. The kernel is cut at ``support`` sigmas in time and in
    wavelength, so a pixel far from every observation is empty (0) rather than an extrapolation.

Time is measured from a per-object reference time (the observation with the largest SNR-weighted
flux f^2/sigma, or the first detection with f/sigma >= ``detection_snr``), optionally divided by
1 + z together with the wavelengths (rest frame). Fluxes and uncertainties are divided by a
per-object scale (the peak flux), returned next to the images so a model can still use brightness.

Backends (one API, ``rasterize(batch, spec, backend)``):
  numpy       plain reference implementation, written for clarity: the test oracle;
  cpu         Numba ``@njit(parallel=True)``, objects in parallel;
  numba-cuda  ``@cuda.jit`` kernels, one thread per output pixel;
  cupy        CUDA C in ``kernels/raster.cu`` (see ``snia.kernels``).
The per-object and per-pixel math of ``cpu`` and ``numba-cuda`` is one set of plain Python
functions (``_shared_math``) compiled for each target, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import numpy as np

from snia.bands import DEFAULT_BANDS

KINDS = ("bands", "heatmap")
BACKENDS = ("numpy", "cpu", "numba-cuda", "cupy")
REFERENCES = ("peak", "first_detection")
_PEAK, _FIRST_DETECTION = 0, 1


@dataclass(frozen=True)
class RasterSpec:
    """Image geometry and options. Defaults suit PLAsTiCC (LSST ugrizy)."""

    kind: str = "heatmap"
    t_before: float = 50.0  # days before the reference time covered by the image
    t_after: float = 130.0  # days after it; 180 one-day columns by default
    n_time: int = 180
    bands: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # band-registry indices, one row each (bands kind)
    # effective wavelength of every registry band (Angstrom), indexed by band index (heatmap kind)
    wavelengths: tuple[float, ...] = tuple(b.wavelength for b in DEFAULT_BANDS)
    n_wave: int = 32
    wave_min: float = 3000.0
    wave_max: float = 11000.0
    sigma_time: float = 3.0  # days: about the cadence of one band in the LSST wide survey
    sigma_wave: float = 600.0  # Angstrom: about half the spacing of neighbouring LSST bands
    support: float = 3.0  # kernel cut, in sigmas
    reference: str = "peak"
    detection_snr: float = 5.0
    rest_frame: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"image kind must be one of {KINDS}, not {self.kind!r}")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, not {self.reference!r}")
        if self.n_time < 1 or self.n_wave < 1 or not self.bands:
            raise ValueError("an image needs at least one row and one column")
        if self.t_before + self.t_after <= 0 or self.wave_max <= self.wave_min:
            raise ValueError("empty time or wavelength range")

    @property
    def channels(self) -> int:
        return 3 if self.kind == "bands" else 2

    @property
    def shape(self) -> tuple[int, int, int]:
        rows = len(self.bands) if self.kind == "bands" else self.n_wave
        return self.channels, rows, self.n_time

    @property
    def dt(self) -> float:
        return (self.t_before + self.t_after) / self.n_time

    @property
    def dwave(self) -> float:
        return (self.wave_max - self.wave_min) / self.n_wave

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Images:
    """Rasterized batch: images [N, C, H, W], with each object's flux scale and reference time."""

    images: object  # numpy or cupy array
    scale: object  # [N] float32: the per-object flux scale the images were divided by
    t_ref: object  # [N] float64: reference time (MJD) of column 0 + t_before
    spec: RasterSpec = field(repr=False)


def _redshift_factor(batch, spec: RasterSpec, redshift) -> np.ndarray:
    """1 + z per object in rest-frame mode (spec-z where known, else host photo-z), else 1."""
    n = len(batch.object_id)
    if not spec.rest_frame:
        return np.ones(n)
    if redshift is None:
        specz = np.asarray(batch.meta["specz"], dtype=np.float64)
        photoz = np.asarray(batch.meta["hostgal_photoz"], dtype=np.float64)
        redshift = np.where(np.isfinite(specz) & (specz > 0), specz, photoz)
    z = np.asarray(redshift, dtype=np.float64)
    return np.where(np.isfinite(z) & (z > 0), 1.0 + z, 1.0)


# ----------------------------------------------------------------------------- numpy reference


def _reference_time_numpy(t, f, e, mode: int, snr: float) -> float:
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


def _scale_numpy(f) -> float:
    if len(f) == 0:
        return 1.0
    peak = f.max()
    if peak <= 0:
        peak = np.abs(f).max()
    return float(peak) if peak > 0 else 1.0


def _bands_image_numpy(t, b, f, e, spec: RasterSpec) -> np.ndarray:
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


def _heatmap_image_numpy(t, wave, f, e, spec: RasterSpec) -> np.ndarray:
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
    zfac = _redshift_factor(batch, spec, redshift)
    images = np.zeros((n, *spec.shape), dtype=np.float32)
    scales = np.ones(n, dtype=np.float32)
    t_ref = np.zeros(n, dtype=np.float64)
    mode = REFERENCES.index(spec.reference)
    wavelengths = np.asarray(spec.wavelengths, dtype=np.float64)
    for i in range(n):
        lc = batch.lightcurve(i)
        t = lc["time"].astype(np.float64)
        f, e = lc["flux"].astype(np.float64), lc["flux_err"].astype(np.float64)
        t_ref[i] = _reference_time_numpy(t, f, e, mode, spec.detection_snr)
        scales[i] = _scale_numpy(f)
        rel = (t - t_ref[i]) / zfac[i]
        fn, en = f / scales[i], e / scales[i]
        if spec.kind == "bands":
            image = _bands_image_numpy(rel, lc["band"], fn, en, spec)
        else:
            wave = lc["wave"].astype(np.float64) if "wave" in lc else wavelengths[lc["band"]]
            image = _heatmap_image_numpy(rel, wave / zfac[i], fn, en, spec)
        images[i] = image
    return Images(images, scales, t_ref, spec)


# ----------------------------------------------------------------------------- shared math


def _shared_math(jit):
    from numba import float64 as f64  # a cast usable on CPU and on the GPU

    """The per-object and per-pixel math, compiled by ``jit`` (numba.njit or cuda.jit(device=True)).

    Observations of an object are time-ordered (a store guarantee), so the observations that can
    touch a time column are found by binary search instead of scanning the whole light curve.
    """

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


# ----------------------------------------------------------------------------- cpu (numba)

_CPU = {}


def _cpu_kernels():
    """Compile the CPU kernels once per process (numba caches them on disk too)."""
    if _CPU:
        return _CPU
    import numba
    from numba import float64 as f64

    m = _shared_math(numba.njit(inline="always", cache=True))
    # numba resolves called functions as closure variables, not namespace attributes
    object_reference, object_scale, time_bin = m.object_reference, m.object_scale, m.time_bin
    heatmap_pixel = m.heatmap_pixel  # the CPU bands kernel scatters instead of bands_pixel
    finish_bands, finish_heatmap = m.finish_bands, m.finish_heatmap

    @numba.njit(parallel=True, cache=True)
    def prepare(offsets, time, flux, err, mode, snr, t_ref, scale):
        for i in numba.prange(len(offsets) - 1):
            t_ref[i] = object_reference(time, flux, err, offsets[i], offsets[i + 1], mode, snr)
            scale[i] = object_scale(flux, offsets[i], offsets[i + 1])

    @numba.njit(parallel=True, cache=True)
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

    @numba.njit(parallel=True, cache=True)
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

    _CPU.update(prepare=prepare, bands=bands, heatmap=heatmap)
    return _CPU


def observation_wavelengths(batch, spec: RasterSpec, xp=np):
    """Effective wavelength of every observation (float32): its band's, unless the batch carries
    its own ``obs["wave"]`` (e.g. a redshift augmentation that moved the object's spectrum)."""
    if "wave" in batch.obs:
        return xp.asarray(batch.obs["wave"], dtype=xp.float32)
    return xp.asarray(np.asarray(spec.wavelengths, dtype=np.float32))[xp.asarray(batch.obs["band"])]


def _output(out, shape, xp):
    """The caller's output buffer (checked) or a new one; kernels write every element."""
    if out is None:
        return xp.empty(shape, dtype=xp.float32)
    if tuple(out.shape) != tuple(shape) or out.dtype != xp.float32:
        raise ValueError(f"out must be float32 of shape {shape}, not {out.dtype} {out.shape}")
    return out


def _flat_inputs(batch, xp=np):
    """Contiguous kernel inputs: offsets, time (f64), band, flux/err (f32), per-band wavelength."""
    offsets = xp.asarray(batch.offsets, dtype=xp.int64)
    time = xp.asarray(batch.obs["time"], dtype=xp.float64)
    band = xp.asarray(batch.obs["band"], dtype=xp.int8)
    flux = xp.asarray(batch.obs["flux"], dtype=xp.float32)
    err = xp.asarray(batch.obs["flux_err"], dtype=xp.float32)
    return offsets, time, band, flux, err


def _row_of_band(spec: RasterSpec) -> np.ndarray:
    """Image row of each registry band (-1: not drawn)."""
    rows = np.full(len(spec.wavelengths), -1, dtype=np.int64)
    rows[list(spec.bands)] = np.arange(len(spec.bands))
    return rows


def rasterize_cpu(batch, spec: RasterSpec, redshift=None, out=None) -> Images:
    k = _cpu_kernels()
    n = len(batch.object_id)
    offsets, time, band, flux, err = _flat_inputs(batch)
    zfac = _redshift_factor(batch, spec, redshift)
    t_ref, scale = np.zeros(n), np.ones(n, dtype=np.float32)
    k["prepare"](offsets, time, flux, err, REFERENCES.index(spec.reference),
                 spec.detection_snr, t_ref, scale)
    out = _output(out, (n, *spec.shape), np)
    if spec.kind == "bands":
        k["bands"](offsets, time, band, flux, err, t_ref, scale, zfac, _row_of_band(spec),
                   spec.t_before, spec.dt, out)
    else:
        wave = observation_wavelengths(batch, spec)
        k["heatmap"](offsets, time, wave, flux, err, t_ref, scale, zfac, spec.t_before, spec.dt,
                     spec.wave_min, spec.dwave, spec.sigma_time, spec.sigma_wave, spec.support, out)
    return Images(out, scale, t_ref, spec)


# ----------------------------------------------------------------------------- numba-cuda

def rasterize_numba_cuda(batch, spec: RasterSpec, redshift=None, out=None, threads=128) -> Images:
    from numba import cuda

    from snia import raster_cuda as k

    n = len(batch.object_id)
    offsets, time, band, flux, err = (cuda.to_device(np.ascontiguousarray(a))
                                      for a in _flat_inputs(batch))
    zfac = cuda.to_device(_redshift_factor(batch, spec, redshift))
    t_ref = cuda.device_array(n, dtype=np.float64)
    scale = cuda.device_array(n, dtype=np.float32)
    out = cuda.to_device(out) if out is not None else cuda.device_array((n, *spec.shape),
                                                                       dtype=np.float32)
    blocks = max(1, min(1024, -(-max(n, 1) // threads)))
    k.prepare[blocks, threads](offsets, time, flux, err, REFERENCES.index(spec.reference),
                                  spec.detection_snr, t_ref, scale)
    pixels = n * int(np.prod(spec.shape[1:]))
    blocks = max(1, min(65535, -(-max(pixels, 1) // threads)))
    if spec.kind == "bands":
        rows = cuda.to_device(np.asarray(spec.bands, dtype=np.int8))
        k.bands[blocks, threads](offsets, time, band, flux, err, t_ref, scale, zfac, rows,
                                    spec.t_before, spec.dt, out)
    else:
        wave = cuda.to_device(observation_wavelengths(batch, spec))
        k.heatmap[blocks, threads](offsets, time, wave, flux, err, t_ref, scale, zfac,
                                      spec.t_before, spec.dt, spec.wave_min, spec.dwave,
                                      spec.sigma_time, spec.sigma_wave, spec.support, out)
    return Images(out, scale, t_ref, spec)


# ----------------------------------------------------------------------------- dispatch


@functools.lru_cache(maxsize=1)
def _available_backends() -> tuple[str, ...]:
    return tuple(_probe_backends())


def available_backends() -> list[str]:
    """Backends usable here, fastest first (cupy > numba-cuda > cpu), numpy last (cached)."""
    return list(_available_backends())


def _probe_backends() -> list[str]:
    found = []
    try:
        import cupy

        if cupy.is_available():
            found.append("cupy")
    except Exception:  # noqa: BLE001 - no CUDA driver, no GPU or no cupy: just not available
        pass
    try:
        import numba
        from numba import cuda

        # Numba's CUDA simulator (tests without a GPU) says "available" but is no GPU.
        if cuda.is_available() and not numba.config.ENABLE_CUDASIM:
            found.append("numba-cuda")
    except Exception:  # noqa: BLE001
        pass
    try:
        import numba  # noqa: F401

        found.append("cpu")
    except ImportError:
        pass
    return found + ["numpy"]


OUTPUT_DTYPES = ("float32", "float16", "bfloat16")


def rasterize(batch, spec: RasterSpec, backend: str = "auto", redshift=None, out=None,
              dtype: str = "float32") -> Images:
    """Images of a ragged batch (``snia.store.Batch``: offsets + flat arrays, time-ordered).

    ``out``: optional float32 buffer [N, C, H, W] to write into (every element is written).
    ``dtype``: the kernels compute in float32/float64; ``float16`` converts the images where they
    are (host or device); ``bfloat16``, which NumPy and CuPy lack, hands them to PyTorch through
    DLPack (no copy) and converts there, returning a torch tensor.
    """
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}, not {dtype!r}")
    result = _rasterize(batch, spec, backend, redshift, out)
    if dtype != "float32":
        result.images = _convert(result.images, dtype)
    return result


def _convert(images, dtype: str):
    if hasattr(images, "copy_to_host"):  # a Numba device array: view it as CuPy (no copy)
        import cupy

        images = cupy.asarray(images)
    if dtype == "float16":
        return images.astype("float16")
    import torch

    return torch.from_dlpack(images).to(torch.bfloat16)


def _rasterize(batch, spec: RasterSpec, backend: str, redshift, out) -> Images:
    if backend == "auto":
        backend = available_backends()[0]
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, not {backend!r}")
    band = batch.obs["band"]  # NumPy or CuPy: only its maximum crosses to the host
    top = int(band.max()) if len(band) else -1
    if top >= len(spec.wavelengths):
        raise ValueError(f"band index {top} has no wavelength in the spec")
    if backend == "numpy":
        return rasterize_numpy(batch, spec, redshift)
    if backend == "cpu":
        return rasterize_cpu(batch, spec, redshift, out=out)
    if backend == "numba-cuda":
        return rasterize_numba_cuda(batch, spec, redshift, out=out)
    from snia.kernels import rasterize_cupy

    return rasterize_cupy(batch, spec, redshift, out=out)


# ----------------------------------------------------------------------------- stores and plots


def spec_for_store(store, kind: str = "heatmap", **options) -> RasterSpec:
    """A spec whose wavelengths come from the store's band table and whose `bands` rows are the
    bands the store actually holds (in registry order)."""
    wavelengths = tuple(float(b.wavelength) for b in store.bands.bands)
    if "bands" not in options:
        present = np.zeros(len(wavelengths), dtype=bool)
        ds = store.file["observations/band"]
        for a in range(0, ds.shape[0], 1 << 24):
            present[np.unique(ds[a:a + (1 << 24)])] = True
        options["bands"] = tuple(int(b) for b in np.flatnonzero(present))
    return RasterSpec(kind=kind, wavelengths=wavelengths, **options)


def rasterize_store(store_path, out_path, spec: RasterSpec | None = None, kind: str = "heatmap",
                    backend: str = "auto", batch_size: int = 4096, progress: bool = True) -> dict:
    """Stream a store through ``rasterize`` into an HDF5 image file, batch by batch.

    Memory stays bounded by ``batch_size`` objects however large the store. The file has
    /images [N, C, H, W] float32 (one chunk per object), /scale, /t_ref, /object_id, /type,
    /split, and the spec as a JSON attribute; it is written under a temporary name and renamed
    at the end, so an image file that exists is complete.
    """
    import json
    import os
    import sys
    from pathlib import Path

    import h5py
    from tqdm import tqdm

    from snia.store import Store

    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    with Store(store_path) as store:
        spec = spec or spec_for_store(store, kind)
        if backend == "auto":
            backend = available_backends()[0]
        n = len(store)
        try:
            with h5py.File(tmp, "w") as f:
                images = f.create_dataset("images", shape=(n, *spec.shape), dtype=np.float32,
                                          chunks=(1, *spec.shape))
                columns = {"scale": np.float32, "t_ref": np.float64, "object_id": np.int64,
                           "type": np.int8, "split": np.int8}
                ds = {k: f.create_dataset(k, shape=(n,), dtype=v) for k, v in columns.items()}
                bar = tqdm(total=n, unit=" LC", desc=f"rasterize ({backend})", disable=not progress,
                           file=sys.stderr, mininterval=1.0)
                for start in range(0, n, batch_size):
                    batch = store.batch(slice(start, min(start + batch_size, n)))
                    result = rasterize(batch, spec, backend)
                    stop = start + len(batch)
                    images[start:stop] = _host(result.images)
                    ds["scale"][start:stop] = _host(result.scale)
                    ds["t_ref"][start:stop] = _host(result.t_ref)
                    ds["object_id"][start:stop] = batch.object_id
                    ds["type"][start:stop] = batch.meta["type"]
                    ds["split"][start:stop] = batch.meta["split"]
                    bar.update(len(batch))
                bar.close()
                f.attrs["spec"] = np.bytes_(json.dumps(spec.to_dict()).encode())
                f.attrs["store"] = np.bytes_(str(Path(store_path).resolve()).encode())
                f.attrs["backend"] = np.bytes_(backend.encode())
            os.replace(tmp, out_path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return {"objects": n, "shape": spec.shape, "backend": backend, "path": str(out_path)}


def _host(x):
    """NumPy view of a result array from any backend (copies device arrays to the host)."""
    if hasattr(x, "copy_to_host"):
        return x.copy_to_host()
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def plot_object(store, object_id: int, path, kinds=("bands", "heatmap")) -> None:
    """One object's light curve next to its images (flux channel), saved to ``path`` (PNG/PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = store.index_of(object_id)
    batch = store.batch(np.array([index]))
    lc = batch.lightcurve(0)
    registry = store.bands
    fig, axes = plt.subplots(1, 1 + len(kinds), figsize=(5 + 4 * len(kinds), 3.6))
    for band in np.unique(lc["band"]):
        pick = lc["band"] == band
        axes[0].errorbar(lc["time"][pick], lc["flux"][pick], lc["flux_err"][pick], fmt="o", ms=3,
                         label=registry.bands[band].name)
    axes[0].set(xlabel="MJD", ylabel="flux", title=f"object {object_id}")
    axes[0].legend(fontsize=7)
    for ax, kind in zip(axes[1:], kinds):
        spec = spec_for_store(store, kind)
        image = rasterize(batch, spec, "numpy").images[0, 0]
        rows = ([registry.bands[b].name for b in spec.bands] if kind == "bands" else None)
        extent = (-spec.t_before, spec.t_after,
                  (len(spec.bands) if kind == "bands" else spec.wave_max),
                  (0 if kind == "bands" else spec.wave_min))
        shown = ax.imshow(image, aspect="auto", cmap="RdBu_r", extent=extent,
                          vmin=-np.abs(image).max(), vmax=np.abs(image).max())
        if rows:
            ax.set_yticks(np.arange(len(rows)) + 0.5, rows)
        ax.set(xlabel="days from reference time",
               ylabel="band" if kind == "bands" else "wavelength (A)", title=f"{kind} image (flux)")
        fig.colorbar(shown, ax=ax, label="flux / peak flux")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
