"""The ``cupy`` backend: the CUDA C kernels of ``kernels/raster.cu`` launched through CuPy.

``rasterize_cupy`` checks every input on the host (dtype, shape, offsets, band range, launch
settings, shared-memory size) before CuPy is even imported, then checks each kernel's arguments
before its launch. The kernels are compiled at run time by NVRTC (``cuda_sources.load_module``).

``rasterize_cupy`` returns device-resident CuPy arrays. They go to PyTorch without a copy through
DLPack: ``torch.from_dlpack(result.images)`` (same memory, same device).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from snia.raster.cuda_sources import load_module
from snia.raster.spec import REFERENCES, Images, RasterSpec, observation_wavelengths, redshift_factor, to_host

KERNELS = ("prepare_objects", "bands_image", "heatmap_image")
MAX_SHARED_BYTES = 48 * 1024  # dynamic shared memory usable without an opt-in attribute
MAX_TILE = 2048  # observations staged at once (bands: 34 KiB of shared memory)
MAX_BLOCKS = 65535  # blocks per launch; more objects are covered by the kernels' grid-stride loops
# bytes of shared memory per staged observation of the bands kernel: time f64, flux f32, err f32,
# band i8
BANDS_OBS_BYTES = 8 + 4 + 4 + 1
MAX_SUPPORT = 13.0  # sigmas: the heatmap kernel keeps its factors in float32


# ----------------------------------------------------------------------------- host-side checks


def _check_input(name: str, a, length: int | None = None) -> None:
    """A batch array: one-dimensional (and of the expected length)."""
    shape = tuple(getattr(a, "shape", np.shape(a)))
    if len(shape) != 1:
        raise ValueError(f"rasterize_cupy: {name} must be one-dimensional, not of shape {shape}")
    if length is not None and shape[0] != length:
        raise ValueError(f"rasterize_cupy: {name} has {shape[0]} elements, expected {length} "
                         f"(offsets[-1], the number of observations)")


def _check_offsets(offsets: np.ndarray, n: int) -> np.ndarray:
    if offsets.ndim != 1 or len(offsets) != n + 1:
        raise ValueError(f"rasterize_cupy: offsets must have n_objects + 1 = {n + 1} elements, "
                         f"not shape {offsets.shape}")
    if not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"rasterize_cupy: offsets must be integers, not {offsets.dtype}")
    offsets = offsets.astype(np.int64, copy=False)
    if offsets[0] != 0:
        raise ValueError(f"rasterize_cupy: offsets must start at 0, not {offsets[0]}")
    lengths = np.diff(offsets)
    if lengths.size and lengths.min() < 0:
        raise ValueError(f"rasterize_cupy: offsets must be non-decreasing (object "
                         f"{int(np.argmin(lengths))} has length {int(lengths.min())})")
    if lengths.size and lengths.max() >= 2**31:
        raise ValueError("rasterize_cupy: a light curve has 2**31 or more observations")
    return offsets


def _check_kernel_args(kernel: str, arrays: dict, cupy) -> None:
    """Every array handed to ``kernel``: a C-contiguous CuPy array of the kernel's dtype and shape.

    ``arrays``: name -> (array, dtype, shape). Raises ValueError naming the first problem.
    """
    for name, (a, dtype, shape) in arrays.items():
        if not isinstance(a, cupy.ndarray):
            raise ValueError(f"{kernel}: {name} must be a CuPy (device) array, not "
                             f"{type(a).__name__}")
        if a.dtype != np.dtype(dtype):
            raise ValueError(f"{kernel}: {name} must be {np.dtype(dtype)}, not {a.dtype}")
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"{kernel}: {name} must have shape {tuple(shape)}, not "
                             f"{tuple(a.shape)}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{kernel}: {name} must be C-contiguous")


def _launch(module, name: str, blocks: int, threads: int, args: tuple, shared: int = 0) -> None:
    """Launch kernel ``name`` of ``module`` on the current stream, once its block size is known
    to fit (the per-kernel limit depends on its register use and may be below 1024)."""
    kernel = module.get_function(name)
    limit = int(kernel.max_threads_per_block)
    if threads > limit:
        raise ValueError(f"{name}: {threads} threads per block is more than this kernel allows "
                         f"on this device ({limit})")
    if shared > MAX_SHARED_BYTES and kernel.max_dynamic_shared_size_bytes < shared:
        kernel.max_dynamic_shared_size_bytes = shared  # the opt-in beyond 48 KiB
    kernel((blocks,), (threads,), args, shared_mem=shared)


def heatmap_windows(spec: RasterSpec) -> tuple[int, int]:
    """(columns, rows) of the window of kernel factors each observation keeps (``heatmap_image``):
    every column (row) whose centre is within ``support`` sigmas, plus slack for where the window
    starts (one column or row early, and rounding)."""
    columns = math.floor(2 * spec.support * spec.sigma_time / spec.dt) + 4
    rows = math.floor(2 * spec.support * spec.sigma_wave / spec.dwave) + 4
    return min(columns, spec.n_time + 4), min(rows, spec.n_wave + 4)


def obs_bytes(spec: RasterSpec) -> int:
    """Shared memory per staged observation of the spec's image kernel (see raster.cu)."""
    if spec.kind == "bands":
        return BANDS_OBS_BYTES
    columns, rows = heatmap_windows(spec)
    # rel, wl, 1/err^2 (f64) | factors, flux, err (f32) | window starts (i16)
    return 8 * 3 + 4 * (columns + rows + 2) + 2 * 2


def shared_limit() -> int:
    """Dynamic shared memory a block may use on the current GPU once it opts in (227 KiB on
    Hopper); ``MAX_SHARED_BYTES`` without a usable GPU."""
    try:
        import cupy

        return _shared_limit(cupy.cuda.Device().id)
    except Exception:  # noqa: BLE001 - no CuPy, no driver or no GPU
        return MAX_SHARED_BYTES


@functools.lru_cache(maxsize=None)
def _shared_limit(device_id: int) -> int:
    import cupy

    return int(cupy.cuda.Device(device_id).attributes["MaxSharedMemoryPerBlockOptin"])


def tile_size(spec: RasterSpec, longest: int, tile: int | None = None,
              limit: int = MAX_SHARED_BYTES) -> tuple[int, int]:
    """(observations per shared-memory tile, dynamic shared-memory bytes) for an image kernel.

    By default the tile holds the longest light curve of the batch (each object is then staged
    once), up to what fits in ``limit`` bytes (and ``MAX_TILE``); longer light curves are
    processed tile by tile.
    """
    per_obs = obs_bytes(spec)
    if tile is None:
        tile = max(1, min(int(longest), MAX_TILE, limit // per_obs))
    tile = int(tile)
    if tile < 1:
        raise ValueError(f"rasterize_cupy: tile must be at least 1 observation, not {tile}")
    shared = tile * per_obs
    if shared > limit:
        raise ValueError(f"rasterize_cupy: a tile of {tile} observations needs {shared} bytes of "
                         f"shared memory, more than {limit}")
    return tile, shared


def check_heatmap_spec(spec: RasterSpec) -> None:
    """What the heatmap kernel supports: factors above float32's smallest normal number (a cut
    of at most 13 sigmas: exp(-13^2/2) ~ 2e-37) and window starts that fit 16 bits."""
    if spec.kind == "heatmap" and spec.support > MAX_SUPPORT:
        raise ValueError(f"rasterize_cupy: a heatmap kernel cut at {spec.support} sigmas is beyond "
                         f"the {MAX_SUPPORT} this backend supports (weights below 1e-37)")
    if max(spec.n_time, spec.n_wave) > 30_000:
        raise ValueError("rasterize_cupy: images of more than 30,000 columns or rows")


# ----------------------------------------------------------------------------- the backend


def rasterize_cupy(batch, spec: RasterSpec, redshift=None, out=None, threads: int = 256,
                   tile: int | None = None, max_blocks: int = MAX_BLOCKS) -> Images:
    """Images of a ragged batch on the GPU: ``snia.raster.Images`` of CuPy arrays.

    ``batch``: ``snia.lightcurve.Batch`` whose arrays are NumPy or CuPy (time-ordered within each
    object). ``out``: optional float32 buffer [N, C, H, W] (CuPy; a NumPy buffer is copied to the
    device and the device copy is returned); every element is written. ``threads``: threads per
    block (1..1024). ``tile``: observations per shared-memory tile (default: the longest light
    curve, as far as shared memory allows). ``max_blocks``: blocks per launch (tests make it small
    so that the kernels' grid-stride loops run on small batches).

    The result stays on the device: ``torch.from_dlpack(result.images)`` hands it to PyTorch
    without a copy. Inputs are checked on the host before every launch (ValueError).
    """
    # --- host-side validation, before CuPy is even imported
    threads = int(threads)
    if not 1 <= threads <= 1024:
        raise ValueError(f"rasterize_cupy: threads per block must be in 1..1024, not {threads}")
    max_blocks = int(max_blocks)
    if not 1 <= max_blocks <= MAX_BLOCKS:
        raise ValueError(f"rasterize_cupy: max_blocks must be in 1..{MAX_BLOCKS}, not {max_blocks}")
    n = len(batch.object_id)
    shape = (n, *spec.shape)
    offsets_host = _check_offsets(to_host(batch.offsets), n)
    n_obs = int(offsets_host[-1])
    for key in ("time", "band", "flux", "flux_err"):
        if key not in batch.obs:
            raise ValueError(f"rasterize_cupy: the batch has no observation array {key!r}")
        _check_input(f"obs[{key!r}]", batch.obs[key], n_obs)
    if n_obs:  # (a NumPy or CuPy reduction; the values are checked before any int8 cast)
        low, high = int(np.min(batch.obs["band"])), int(np.max(batch.obs["band"]))
        if low < 0 or high >= len(spec.wavelengths):
            bad = low if low < 0 else high
            raise ValueError(f"rasterize_cupy: band index {bad} has no wavelength in the spec")
    if out is not None:
        if tuple(out.shape) != shape or np.dtype(out.dtype) != np.float32:
            raise ValueError(f"rasterize_cupy: out must be float32 of shape {shape}, not "
                             f"{out.dtype} {tuple(out.shape)}")
    longest = int(np.diff(offsets_host).max()) if n else 0
    check_heatmap_spec(spec)
    tile, shared = tile_size(spec, longest, tile, shared_limit())
    if spec.rest_frame:
        if redshift is not None:
            redshift = to_host(redshift)
            _check_input("redshift", redshift, n)
        zfac_host = redshift_factor(batch.meta, n, spec, redshift)
    else:
        zfac_host = np.ones(n)

    import cupy

    out = cupy.empty(shape, dtype=cupy.float32) if out is None else \
        cupy.ascontiguousarray(cupy.asarray(out))
    if n == 0:
        return Images(out, cupy.ones(0, cupy.float32), cupy.zeros(0, cupy.float64), spec)
    return _draw(batch, spec, cupy.asarray(offsets_host), cupy.asarray(zfac_host, cupy.float64),
                 tile, shared, out, threads, max_blocks)


def rasterize_on_device(batch, spec: RasterSpec, longest: int, out=None, threads: int = 256,
                        max_blocks: int = MAX_BLOCKS) -> Images:
    """Images of a batch made on the GPU from checked data (a resident store gathered and
    augmented there), with no host check and nothing that makes the host wait for the device.

    Every array of ``batch`` is a CuPy array, ``offsets`` too; the observation arrays may be
    longer than ``offsets[-1]`` (their tails are not read). ``longest``: a bound on the
    observations of one object, known on the host (it sizes the shared-memory tile). In
    rest-frame mode the redshifts come from ``batch.meta`` (host or device arrays).
    """
    import cupy

    n = len(batch.object_id)
    out = cupy.empty((n, *spec.shape), dtype=cupy.float32) if out is None else out
    if n == 0:
        return Images(out, cupy.ones(0, cupy.float32), cupy.zeros(0, cupy.float64), spec)
    check_heatmap_spec(spec)
    tile, shared = tile_size(spec, longest, limit=shared_limit())
    return _draw(batch, spec, batch.offsets, _device_zfac(batch.meta, n, spec, cupy), tile,
                 shared, out, threads, max_blocks)


def _device_zfac(meta: dict, n: int, spec: RasterSpec, cupy):
    """``redshift_factor`` computed on the device: 1 + z (spec-z where known, else photo-z)."""
    if not spec.rest_frame:
        return cupy.ones(n, dtype=cupy.float64)
    specz = cupy.asarray(meta["specz"], dtype=cupy.float64)
    photoz = cupy.asarray(meta["hostgal_photoz"], dtype=cupy.float64)
    z = cupy.where(cupy.isfinite(specz) & (specz > 0), specz, photoz)
    return cupy.where(cupy.isfinite(z) & (z > 0), 1.0 + z, 1.0)


def _draw(batch, spec: RasterSpec, offsets, zfac, tile: int, shared: int, out, threads: int,
          max_blocks: int) -> Images:
    """The kernels' launches on CuPy's current stream (each kernel's arguments checked first)."""
    import cupy

    n = len(batch.object_id)
    _, height, width = spec.shape
    t_ref = cupy.zeros(n, dtype=cupy.float64)
    scale = cupy.ones(n, dtype=cupy.float32)
    time = cupy.ascontiguousarray(cupy.asarray(batch.obs["time"], dtype=cupy.float64))
    band = cupy.ascontiguousarray(cupy.asarray(batch.obs["band"], dtype=cupy.int8))
    flux = cupy.ascontiguousarray(cupy.asarray(batch.obs["flux"], dtype=cupy.float32))
    err = cupy.ascontiguousarray(cupy.asarray(batch.obs["flux_err"], dtype=cupy.float32))
    capacity = len(time)  # offsets[-1], or more for a batch made on the device

    module = load_module()
    common = {"offsets": (offsets, np.int64, (n + 1,)), "time": (time, np.float64, (capacity,)),
              "flux": (flux, np.float32, (capacity,)), "err": (err, np.float32, (capacity,)),
              "t_ref": (t_ref, np.float64, (n,)), "scale": (scale, np.float32, (n,))}

    # per-object reference time and flux scale: one thread per object
    _check_kernel_args("prepare_objects", common, cupy)
    blocks = max(1, min(max_blocks, -(-n // threads)))
    _launch(module, "prepare_objects", blocks, threads,
            (offsets, time, flux, err, np.int32(n), np.int32(REFERENCES.index(spec.reference)),
             np.float64(spec.detection_snr), t_ref, scale))

    # the images: one block per object (grid-stride), one thread per pixel
    blocks = min(n, max_blocks)
    images = {**common, "zfac": (zfac, np.float64, (n,)), "out": (out, np.float32, out.shape)}
    if spec.kind == "bands":
        rows = cupy.asarray(np.asarray(spec.bands, dtype=np.int8))
        _check_kernel_args("bands_image", {**images, "band": (band, np.int8, (capacity,)),
                                           "rows": (rows, np.int8, (height,))}, cupy)
        _launch(module, "bands_image", blocks, threads,
                (offsets, time, band, flux, err, t_ref, scale, zfac, rows, np.int32(n),
                 np.int32(height), np.int32(width), np.float64(spec.t_before),
                 np.float64(spec.dt), np.int32(tile), out),
                shared)
    else:
        wave = observation_wavelengths(batch, spec, cupy)
        _check_kernel_args("heatmap_image", {**images, "wave": (wave, np.float32, (capacity,))},
                           cupy)
        columns, rows = heatmap_windows(spec)
        _launch(module, "heatmap_image", blocks, threads,
                (offsets, time, wave, flux, err, t_ref, scale, zfac, np.int32(n),
                 np.int32(height), np.int32(width), np.float64(spec.t_before),
                 np.float64(spec.dt), np.float64(spec.wave_min), np.float64(spec.dwave),
                 np.float64(spec.sigma_time), np.float64(spec.sigma_wave),
                 np.float64(spec.support), np.int32(columns), np.int32(rows), np.int32(tile), out),
                shared)
    return Images(out, scale, t_ref, spec)
