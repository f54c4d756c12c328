"""The ``cupy`` backend: the CUDA C kernels of ``kernels/raster.cu`` launched through CuPy.

``rasterize_cupy`` checks every input on the host (dtype, shape, offsets, band range, launch
settings, shared-memory size) before CuPy is even imported, then checks each kernel's arguments
before its launch. The kernels are compiled at run time by NVRTC (``cuda_sources.load_module``).

``rasterize_cupy`` returns device-resident CuPy arrays. They go to PyTorch without a copy through
DLPack: ``torch.from_dlpack(result.images)`` (same memory, same device).
"""

from __future__ import annotations

import numpy as np

from snia.raster.cuda_sources import load_module
from snia.raster.spec import REFERENCES, Images, RasterSpec, observation_wavelengths, redshift_factor, to_host

KERNELS = ("prepare_objects", "bands_image", "heatmap_image")
MAX_SHARED_BYTES = 48 * 1024  # dynamic shared memory usable without an opt-in attribute
MAX_TILE = 2048  # observations staged at once (bands: 34 KiB, heatmap: 40 KiB of shared memory)
# bytes of shared memory per staged observation: time f64, flux f32, err f32, band i8 / wave f32
OBS_BYTES = {"bands": 8 + 4 + 4 + 1, "heatmap": 8 + 4 + 4 + 4}


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
    kernel((blocks,), (threads,), args, shared_mem=shared)


def tile_size(kind: str, longest: int, tile: int | None = None) -> tuple[int, int]:
    """(observations per shared-memory tile, dynamic shared-memory bytes) for an image kernel.

    By default the tile holds the longest light curve of the batch (each object is then staged
    once), up to ``MAX_TILE`` observations; longer light curves are processed tile by tile.
    """
    if tile is None:
        tile = max(1, min(int(longest), MAX_TILE))
    tile = int(tile)
    if tile < 1:
        raise ValueError(f"rasterize_cupy: tile must be at least 1 observation, not {tile}")
    shared = tile * OBS_BYTES[kind]
    if shared > MAX_SHARED_BYTES:
        raise ValueError(f"rasterize_cupy: a tile of {tile} observations needs {shared} bytes of "
                         f"shared memory, more than {MAX_SHARED_BYTES}")
    return tile, shared


# ----------------------------------------------------------------------------- the backend


def rasterize_cupy(batch, spec: RasterSpec, redshift=None, out=None, threads: int = 256,
                   tile: int | None = None) -> Images:
    """Images of a ragged batch on the GPU: ``snia.raster.Images`` of CuPy arrays.

    ``batch``: ``snia.lightcurve.Batch`` whose arrays are NumPy or CuPy (time-ordered within each
    object). ``out``: optional float32 buffer [N, C, H, W] (CuPy; a NumPy buffer is copied to the
    device and the device copy is returned); every element is written. ``threads``: threads per
    block (1..1024). ``tile``: observations per shared-memory tile (default: the longest light
    curve, at most ``MAX_TILE``).

    The result stays on the device: ``torch.from_dlpack(result.images)`` hands it to PyTorch
    without a copy. Inputs are checked on the host before every launch (ValueError).
    """
    # --- host-side validation, before CuPy is even imported
    threads = int(threads)
    if not 1 <= threads <= 1024:
        raise ValueError(f"rasterize_cupy: threads per block must be in 1..1024, not {threads}")
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
    tile, shared = tile_size(spec.kind, longest, tile)
    if spec.rest_frame:
        if redshift is not None:
            redshift = to_host(redshift)
            _check_input("redshift", redshift, n)
        zfac_host = redshift_factor(batch.meta, n, spec, redshift)
    else:
        zfac_host = np.ones(n)

    import cupy

    _, height, width = spec.shape
    if out is None:
        out = cupy.empty(shape, dtype=cupy.float32)
    else:
        out = cupy.ascontiguousarray(cupy.asarray(out))
    t_ref = cupy.zeros(n, dtype=cupy.float64)
    scale = cupy.ones(n, dtype=cupy.float32)
    if n == 0:
        return Images(out, scale, t_ref, spec)

    offsets = cupy.asarray(offsets_host)
    time = cupy.ascontiguousarray(cupy.asarray(batch.obs["time"], dtype=cupy.float64))
    band = cupy.ascontiguousarray(cupy.asarray(batch.obs["band"], dtype=cupy.int8))
    flux = cupy.ascontiguousarray(cupy.asarray(batch.obs["flux"], dtype=cupy.float32))
    err = cupy.ascontiguousarray(cupy.asarray(batch.obs["flux_err"], dtype=cupy.float32))
    zfac = cupy.asarray(zfac_host, dtype=cupy.float64)

    module = load_module()
    common = {"offsets": (offsets, np.int64, (n + 1,)), "time": (time, np.float64, (n_obs,)),
              "flux": (flux, np.float32, (n_obs,)), "err": (err, np.float32, (n_obs,)),
              "t_ref": (t_ref, np.float64, (n,)), "scale": (scale, np.float32, (n,))}

    # per-object reference time and flux scale: one thread per object
    _check_kernel_args("prepare_objects", common, cupy)
    blocks = max(1, min(1024, -(-n // threads)))
    _launch(module, "prepare_objects", blocks, threads,
            (offsets, time, flux, err, np.int32(n), np.int32(REFERENCES.index(spec.reference)),
             np.float64(spec.detection_snr), t_ref, scale))

    # the images: one block per object (grid-stride), one thread per pixel
    blocks = min(n, 65535)
    images = {**common, "zfac": (zfac, np.float64, (n,)), "out": (out, np.float32, shape)}
    if spec.kind == "bands":
        rows = cupy.asarray(np.asarray(spec.bands, dtype=np.int8))
        _check_kernel_args("bands_image", {**images, "band": (band, np.int8, (n_obs,)),
                                           "rows": (rows, np.int8, (height,))}, cupy)
        _launch(module, "bands_image", blocks, threads,
                (offsets, time, band, flux, err, t_ref, scale, zfac, rows, np.int32(n),
                 np.int32(height), np.int32(width), np.float64(spec.t_before),
                 np.float64(spec.dt), np.int32(tile), out),
                shared)
    else:
        wave = observation_wavelengths(batch, spec, cupy)
        _check_kernel_args("heatmap_image", {**images, "wave": (wave, np.float32, (n_obs,))},
                           cupy)
        _launch(module, "heatmap_image", blocks, threads,
                (offsets, time, wave, flux, err, t_ref, scale, zfac, np.int32(n),
                 np.int32(height), np.int32(width), np.float64(spec.t_before),
                 np.float64(spec.dt), np.float64(spec.wave_min), np.float64(spec.dwave),
                 np.float64(spec.sigma_time), np.float64(spec.sigma_wave),
                 np.float64(spec.support), np.int32(tile), out),
                shared)
    return Images(out, scale, t_ref, spec)
