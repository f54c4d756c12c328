"""What every backend shares: the image kinds and options (``RasterSpec``), the result
(``Images``), and the small host-side helpers the backends call before they launch anything.

Nothing here compiles or imports a GPU library: a NumPy array, a CuPy array or a Numba device
array may come in (``to_host`` brings any of them back to NumPy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from snia.bands import DEFAULT_BANDS

KINDS = ("bands", "heatmap")
DEFAULT_KIND = "heatmap"  # the one default image kind (RasterSpec, spec_for_store, rasterize_store)
BACKENDS = ("numpy", "cpu", "numba-cuda", "cupy")
REFERENCES = ("peak", "first_detection")  # index = the mode number the kernels receive
OUTPUT_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class RasterSpec:
    """Image geometry and options. Defaults suit PLAsTiCC (LSST ugrizy)."""

    kind: str = DEFAULT_KIND
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


# The image geometry of the model the workflow ships (3-day x 500 A pixels, 60 x 16; measured:
# docs/results.md): the training settings' default, and what the workflow's image files use for
# geometry keys a config leaves out (``model_geometry``).
MODEL_GEOMETRY = {"n_time": 60, "n_wave": 16}


def model_geometry(raster: dict | None) -> dict:
    """A training config's ``raster:`` section with the keys it leaves out at the shipped model's."""
    return {**MODEL_GEOMETRY, **(raster or {})}


# The image-geometry settings of a spec (all but the kind and the store-given bands/wavelengths):
# what a config's `raster:` section and the training settings' `raster:` may set.
GEOMETRY_FIELDS = tuple(f.name for f in fields(RasterSpec)
                        if f.name not in ("kind", "bands", "wavelengths"))


@dataclass
class Images:
    """Rasterized batch: images [N, C, H, W], with each object's flux scale and reference time."""

    images: object  # numpy or cupy array
    scale: object  # [N] float32: the per-object flux scale the images were divided by
    t_ref: object  # [N] float64: reference time (MJD) of column 0 + t_before
    spec: RasterSpec = field(repr=False)


def is_cupy(x) -> bool:
    """Whether ``x`` is a CuPy (GPU) array, without importing CuPy."""
    return type(x).__module__.split(".")[0] == "cupy"


def to_host(x) -> np.ndarray:
    """NumPy view of an array from any backend (copies CuPy or Numba device arrays to the host)."""
    if hasattr(x, "copy_to_host"):  # a Numba device array
        return x.copy_to_host()
    if is_cupy(x):
        return x.get()
    return np.asarray(x)


def redshift_factor(meta: dict, n: int, spec: RasterSpec, redshift=None) -> np.ndarray:
    """1 + z for each of ``n`` objects in rest-frame mode (``redshift`` if given, else spec-z where
    known, else host photo-z from ``meta``; host or device arrays), else 1."""
    if not spec.rest_frame:
        return np.ones(n)
    if redshift is None:
        specz = to_host(meta["specz"]).astype(np.float64)
        photoz = to_host(meta["hostgal_photoz"]).astype(np.float64)
        redshift = np.where(np.isfinite(specz) & (specz > 0), specz, photoz)
    z = to_host(redshift).astype(np.float64)
    return np.where(np.isfinite(z) & (z > 0), 1.0 + z, 1.0)


def observation_wavelengths(batch, spec: RasterSpec, xp=np):
    """Effective wavelength of every observation (float32): its band's, unless the batch carries
    its own ``obs["wave"]`` (e.g. a redshift augmentation that moved the object's spectrum)."""
    if "wave" in batch.obs:
        return xp.asarray(batch.obs["wave"], dtype=xp.float32)
    return xp.asarray(np.asarray(spec.wavelengths, dtype=np.float32))[xp.asarray(batch.obs["band"])]


def row_of_band(spec: RasterSpec) -> np.ndarray:
    """Image row of each registry band (-1: not drawn)."""
    rows = np.full(len(spec.wavelengths), -1, dtype=np.int64)
    rows[list(spec.bands)] = np.arange(len(spec.bands))
    return rows


def flat_inputs(batch, xp=np):
    """Kernel inputs in the kernels' dtypes: offsets i64, time f64, band i8, flux and err f32."""
    offsets = xp.asarray(batch.offsets, dtype=xp.int64)
    time = xp.asarray(batch.obs["time"], dtype=xp.float64)
    band = xp.asarray(batch.obs["band"], dtype=xp.int8)
    flux = xp.asarray(batch.obs["flux"], dtype=xp.float32)
    err = xp.asarray(batch.obs["flux_err"], dtype=xp.float32)
    return offsets, time, band, flux, err


def output_buffer(out, shape, xp=np):
    """The caller's output buffer (checked) or a new one; kernels write every element."""
    if out is None:
        return xp.empty(shape, dtype=xp.float32)
    if tuple(out.shape) != tuple(shape) or out.dtype != xp.float32:
        raise ValueError(f"out must be float32 of shape {shape}, not {out.dtype} {out.shape}")
    return out
