"""One API over the backends: ``rasterize(batch, spec, backend)`` and ``available_backends()``.

``numpy`` and ``cpu`` are always importable; the GPU backends (``numba-cuda``, ``cupy``) pull in
optional libraries, so their modules are imported here only when chosen.
"""

from __future__ import annotations

import functools

from snia.errors import ConfigError
from snia.numba_cuda_compat import numba_cuda_works
from snia.raster.cpu import rasterize_cpu
from snia.raster.reference import rasterize_numpy
from snia.raster.spec import BACKENDS, OUTPUT_DTYPES, Images, RasterSpec


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
    # a kernel compiled and run: Numba's CUDA simulator (tests without a GPU) says "available"
    # but is no GPU, and a numba-cuda too old for this NumPy cannot compile (numba_cuda_compat)
    if numba_cuda_works():
        found.append("numba-cuda")
    try:
        import numba  # noqa: F401

        found.append("cpu")
    except ImportError:
        pass
    return found + ["numpy"]


def rasterize(batch, spec: RasterSpec, backend: str = "auto", redshift=None, out=None,
              dtype: str = "float32") -> Images:
    """Images of a ragged batch (``snia.lightcurve.Batch``: offsets + flat arrays, time-ordered).

    ``out``: optional float32 buffer [N, C, H, W] to write into (every element is written).
    ``dtype``: the kernels compute in float32/float64; ``float16`` converts the images where they
    are (host or device); ``bfloat16``, which NumPy and CuPy lack, hands them to PyTorch through
    DLPack (no copy) and converts there, returning a torch tensor.
    """
    if dtype not in OUTPUT_DTYPES:
        raise ConfigError(f"dtype must be one of {OUTPUT_DTYPES}, not {dtype!r}")
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
        raise ConfigError(f"backend must be 'auto' or one of {BACKENDS}, not {backend!r}")
    band = batch.obs["band"]  # NumPy or CuPy: only its maximum crosses to the host
    top = int(band.max()) if len(band) else -1
    if top >= len(spec.wavelengths):
        raise ValueError(f"band index {top} has no wavelength in the spec")
    if backend == "numpy":
        return rasterize_numpy(batch, spec, redshift)
    if backend == "cpu":
        return rasterize_cpu(batch, spec, redshift, out=out)
    if backend == "numba-cuda":
        from snia.raster.numba_cuda import rasterize_numba_cuda  # needs numba.cuda

        return rasterize_numba_cuda(batch, spec, redshift, out=out)
    from snia.raster.cupy import rasterize_cupy  # needs cupy at launch time

    return rasterize_cupy(batch, spec, redshift, out=out)
