"""Stage 2: light curves -> fixed-size images a CNN can read ([N, C, H, W], float32).

Two image kinds (``RasterSpec.kind``, default ``DEFAULT_KIND``):

``bands`` (PELICAN style): one row per band, one column per time bin. Channels: the
    inverse-variance-weighted mean flux of the observations in the pixel, its uncertainty
    1/sqrt(sum 1/sigma^2), and a mask (1 where observed). Empty pixels are exactly 0 in every
    channel.
``heatmap`` (wavelength x time, SCONE-like without a Gaussian process): rows are wavelength bins,
    columns time bins. Channels: the Gaussian-kernel weighted mean flux, weights
    w_i = exp(-dt^2/2 s_t^2 - dl^2/2 s_l^2) / sigma_i^2, and its propagated uncertainty
    sqrt(sum w_i^2 sigma_i^2) / sum w_i. The kernel is cut at ``support`` sigmas in time and in
    wavelength, so a pixel far from every observation is empty (0) rather than an extrapolation.

Time is measured from a per-object reference time (the observation with the largest SNR-weighted
flux f^2/sigma, or the first detection with f/sigma >= ``detection_snr``), optionally divided by
1 + z together with the wavelengths (rest frame). Fluxes and uncertainties are divided by a
per-object scale (the peak flux), returned next to the images so a model can still use brightness.

Backends (one API, ``rasterize(batch, spec, backend)`` in ``dispatch.py``), one module each:
  numpy       ``reference.py``: plain implementation, written for clarity: the test oracle;
  cpu         ``cpu.py``: Numba ``@njit(parallel=True)``, objects in parallel;
  numba-cuda  ``numba_cuda.py``: ``@cuda.jit`` kernels, one thread per output pixel;
  cupy        ``cupy.py``: CUDA C in ``kernels/raster.cu``, loaded by ``cuda_sources.py``.
The per-object and per-pixel math of ``cpu`` and ``numba-cuda`` is one set of plain Python
functions (``shared.shared_math``) compiled for each target, so the two cannot drift apart.
``spec.py`` holds the spec, the result and the helpers every backend shares; ``files.py`` turns a
store into an HDF5 image file; ``plots.py`` draws one object. The GPU backends' modules are
imported only when chosen, so importing this package imports neither CuPy nor Numba.
"""

from snia.raster.cpu import rasterize_cpu
from snia.raster.dispatch import available_backends, rasterize
from snia.raster.files import geometry_from_file, rasterize_store, spec_for_store
from snia.raster.plots import plot_object
from snia.raster.reference import rasterize_numpy
from snia.raster.spec import (
    BACKENDS,
    DEFAULT_KIND,
    GEOMETRY_FIELDS,
    KINDS,
    OUTPUT_DTYPES,
    REFERENCES,
    Images,
    RasterSpec,
    is_cupy,
    observation_wavelengths,
    redshift_factor,
    to_host,
)

__all__ = ["RasterSpec", "Images", "KINDS", "DEFAULT_KIND", "BACKENDS", "REFERENCES",
           "OUTPUT_DTYPES", "rasterize", "available_backends", "rasterize_numpy", "rasterize_cpu",
           "spec_for_store", "rasterize_store", "plot_object", "observation_wavelengths",
           "redshift_factor", "to_host", "is_cupy", "GEOMETRY_FIELDS", "geometry_from_file"]
