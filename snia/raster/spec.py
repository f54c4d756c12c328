"""What every backend shares: the image kinds and options (``RasterSpec``), the result
(``Images``), and the small host-side helpers the backends call before they launch anything.

Nothing here compiles or imports a GPU library: a NumPy array, a CuPy array or a Numba device
array may come in (``to_host`` brings any of them back to NumPy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from snia.bands import DEFAULT_BANDS
from snia.errors import ConfigError

KINDS = ("bands", "heatmap")
DEFAULT_KIND = "heatmap"  # the one default image kind (RasterSpec, spec_for_store, rasterize_store)
BACKENDS = ("numpy", "cpu", "numba-cuda", "cupy")
REFERENCES = ("peak", "first_detection")  # index = the mode number the kernels receive
OUTPUT_DTYPES = ("float32", "float16", "bfloat16")


# what a setting of each scalar type accepts, and how a refusal says it
_SCALAR_TYPES = {"int": (int, "a whole number"), "float": ((int, float), "a number"),
                 "bool": (bool, "true or false")}


@dataclass(frozen=True)
class RasterSpec:
    """Image geometry and options. The defaults are the images of the model the workflow ships
    (PLAsTiCC, LSST ugrizy): the one source of them for ``snia rasterize``, ``snia train`` and the
    workflow's image files, so images drawn without settings are the ones the model sees."""

    kind: str = DEFAULT_KIND
    t_before: float = 50.0  # days before the reference time covered by the image
    t_after: float = 130.0  # days after it
    # 3-day x 500 A pixels, 60 x 16: coarser than 1-day x 250 A (180 x 32), it scored better and
    # runs many times faster (docs/results.md)
    n_time: int = 60
    bands: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # band-registry indices, one row each (bands kind)
    # effective wavelength of every registry band (Angstrom), indexed by band index (heatmap kind)
    wavelengths: tuple[float, ...] = tuple(b.wavelength for b in DEFAULT_BANDS)
    n_wave: int = 16
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
            raise ConfigError(f"image kind must be one of {KINDS}, not {self.kind!r}")
        if self.reference not in REFERENCES:
            raise ConfigError(f"reference must be one of {REFERENCES}, not {self.reference!r}")
        if self.n_time < 1 or self.n_wave < 1 or not self.bands:
            raise ConfigError("an image needs at least one row and one column")
        if self.t_before + self.t_after <= 0 or self.wave_max <= self.wave_min:
            raise ConfigError("empty time or wavelength range")

    @classmethod
    def from_dict(cls, values: dict, where: str = "raster") -> "RasterSpec":
        """A spec from a mapping (a config section, a checkpoint's or an image file's spec).
        Unknown keys and bad values are one-line ConfigErrors naming ``where``."""
        values = dict(values)
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown image setting(s) {unknown} under '{where}'; known: {known}")
        for key in ("bands", "wavelengths"):
            if key in values:
                values[key] = tuple(values[key])
        types = {f.name: f.type for f in fields(cls)}  # strings: annotations are postponed
        for key, value in values.items():
            wanted, what = _SCALAR_TYPES.get(types[key], (None, ""))
            if wanted and (not isinstance(value, wanted)
                           or (wanted is not bool and isinstance(value, bool))):
                raise ConfigError(f"{where}: {key} must be {what}, not {value!r}")
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:  # e.g. bands that are not indices
            raise ConfigError(f"{where}: bad image setting ({exc})") from None

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
