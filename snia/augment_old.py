"""Augmentation: fresh, physically motivated variants of the training light curves every epoch.

The training set (PLAsTiCC's, and any spectroscopically confirmed one) is brighter, nearer and
more densely observed than the survey a classifier is applied to. Each variant thins the cadence,
shifts the time, may add flux noise, and moves the object to a higher redshift: times dilate,
fluxes dim with the luminosity distance, effective wavelengths redden, and the errors never
shrink below the wide survey's. Every draw comes from an RNG keyed by (seed, epoch, object index),
so a variant does not depend on the rank that draws it or on the batch it is drawn in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snia.errors import ConfigError
from snia.lightcurve import Batch, offsets_from_lengths


@dataclass
class AugmentConfig:
    """Augmentation settings (``augment:`` under the training settings)."""

    enabled: bool = True
    time_shift: float = 5.0  # days: uniform shift of the reference time
    drop_fraction: float = 0.3  # up to this fraction of observations dropped per object
    # extra Gaussian flux noise of up to this many sigma per object (errors grow to match)
    flux_noise: float = 0.0
    # chance to move an object to a higher redshift each time it is drawn: the test set is
    # fainter and at higher redshift than the training set
    redshift_probability: float = 1.0
    redshift_max: float = 1.2
    # keep only redshift moves the survey would detect (two points at S/N >= 5), trying up to
    # redshift_tries draws; off by default (its measured effect: docs/results.md)
    detection_trigger: bool = False
    redshift_tries: int = 5

    def __post_init__(self):
        for name in ("drop_fraction", "redshift_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment.{name} must be in [0, 1], not {getattr(self, name)}")
        for name in ("time_shift", "flux_noise", "redshift_max"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name} must be >= 0, not {getattr(self, name)}")
        if self.redshift_tries < 1:
            raise ConfigError(f"augment.redshift_tries must be >= 1, not {self.redshift_tries}")


def augment(batch: Batch, indices: np.ndarray, epoch: int, seed: int, cfg: AugmentConfig,
            bands_wavelengths, noise_floor=None) -> Batch:
    """A fresh, reproducible variant of each light curve (new arrays; the batch is not changed).

    Per object, from an RNG keyed by (seed, epoch, object index), so any rank that draws an object
    draws the same variant:
    - drop a random fraction of the observations (at least one is kept); deep-drilling-field
      objects lose more (50-90 %), since the wide survey they must stand in for is far sparser;
    - shift all times by up to ``time_shift`` days;
    - add Gaussian flux noise of k sigma, k uniform in [0, ``flux_noise``], errors grown to
      sqrt(1 + k^2) sigma so they still describe the scatter;
    - with probability ``redshift_probability``, move an extragalactic object (photo-z > 0) from z
      to a higher z': times dilate by (1+z')/(1+z), fluxes dim by the luminosity-distance ratio
      squared (flat LCDM), while the errors do not shrink (sky noise dominates in a fainter
      survey; they even grow by up to 50 %): noise is added to reach them. Its photo-z becomes z',
      and each observation's effective wavelength becomes its band's x (1+z')/(1+z) (``obs["wave"]``,
      used by the heatmap images: the same rest-frame light lands in redder bands).
    - with ``detection_trigger``, a moved object must pass PLAsTiCC's detection trigger (two
      points at S/N >= 5): up to ``redshift_tries`` draws of z', else it stays at z. Without it
      the training set holds undetectable, noise-only copies at high z that the survey would
      never have found (its measured effect: docs/results.md).
    - ``noise_floor`` (per band; the wide survey's typical flux error, see ``wide_survey_noise``):
      deep-drilling objects and moved objects get errors of at least this floor (x 0.7-1.3 per
      object) and the matching added noise: a deep field is 2-5x less noisy than the wide survey
      it must stand in for, and a fainter object does not get a quieter sky.
    """
    times, bands, fluxes, errors, waves, lengths = [], [], [], [], [], []
    band_wave = np.asarray(bands_wavelengths, dtype=np.float64)
    meta = {k: np.array(v, copy=True) for k, v in batch.meta.items()}
    z_all = meta["hostgal_photoz"].astype(np.float64)
    ddf = meta["ddf"] if "ddf" in meta else np.zeros(len(indices), np.int8)
    for j, index in enumerate(indices):
        rng = np.random.default_rng([seed, epoch, int(index)])
        lc = batch.lightcurve(j)
        t = lc["time"].astype(np.float64)
        f, e = lc["flux"].astype(np.float64), lc["flux_err"].astype(np.float64)
        drop = rng.uniform(0.5, 0.9) if ddf[j] == 1 else rng.uniform(0, cfg.drop_fraction)
        keep = rng.random(len(t)) >= drop
        if len(t) and not keep.any():
            keep[rng.integers(len(t))] = True
        t, f, e, b = t[keep], f[keep], e[keep], lc["band"][keep]
        t = t + rng.uniform(-cfg.time_shift, cfg.time_shift)
        if cfg.flux_noise > 0:
            k = rng.uniform(0, cfg.flux_noise)
            f, e = _add_noise(f, e, e * np.sqrt(1 + k * k), 1.0, rng)
        z = z_all[j]
        floor = None if noise_floor is None else np.asarray(noise_floor)[b]
        stretch = 1.0
        moved = None
        if rng.random() < cfg.redshift_probability and np.isfinite(z) and 0 < z < cfg.redshift_max:
            # with the detection trigger, retry lower redshifts until the moved object is one
            # the survey would have found, else leave it where it is
            for _ in range(cfg.redshift_tries):
                z_new = rng.uniform(z, cfg.redshift_max)
                candidate = _move(t, f, e, z, z_new, floor, rng)
                if not cfg.detection_trigger or passes_detection_trigger(candidate[1], candidate[2]):
                    moved = candidate
                    break
        if moved is not None:
            t, f, e = moved
            meta["hostgal_photoz"][j] = z_new
            meta["hostgal_photoz_err"][j] *= (1 + z_new) / (1 + z)
            stretch = (1 + z_new) / (1 + z)
        elif floor is not None and ddf[j] == 1:
            f, e = _add_noise(f, e, np.maximum(e, floor * rng.uniform(0.7, 1.3)), 1.0, rng)
        times.append(t), bands.append(b), fluxes.append(f), errors.append(e), lengths.append(len(t))
        waves.append(band_wave[b] * stretch)
    offsets = offsets_from_lengths(lengths)
    obs = {"time": np.concatenate(times) if times else np.empty(0),
           "band": np.concatenate(bands).astype(np.int8) if bands else np.empty(0, np.int8),
           "flux": np.concatenate(fluxes).astype(np.float32) if fluxes else np.empty(0, np.float32),
           "flux_err": np.concatenate(errors).astype(np.float32) if errors else np.empty(0, np.float32)}
    obs["flag"] = np.zeros(len(obs["time"]), np.int32)
    obs["wave"] = np.concatenate(waves).astype(np.float32) if waves else np.empty(0, np.float32)
    return Batch(batch.object_id, offsets, obs, meta)


DETECTION_SNR = 5.0  # PLAsTiCC's trigger: at least two detections at S/N >= 5
DETECTIONS = 2


def passes_detection_trigger(flux: np.ndarray, err: np.ndarray) -> bool:
    return int(np.sum(flux >= DETECTION_SNR * err)) >= DETECTIONS


def _add_noise(f, e, e_new, dim, rng):
    """Flux dimmed by ``dim`` keeps its own (scaled) noise; top it up to the errors ``e_new``."""
    extra = np.sqrt(np.maximum(e_new ** 2 - (e * dim) ** 2, 0))
    return f * dim + rng.normal(0, 1, len(f)) * extra, e_new


def _move(t, f, e, z, z_new, floor, rng):
    """Times, fluxes and errors of a light curve seen from redshift z_new instead of z."""
    t0 = t.min() if len(t) else 0.0
    t = t0 + (t - t0) * (1 + z_new) / (1 + z)
    dim = (_distance(z) / _distance(z_new)) ** 2
    e_new = e * rng.uniform(1.0, 1.5)
    if floor is not None:
        e_new = np.maximum(e_new, floor * rng.uniform(0.7, 1.3))
    f, e = _add_noise(f, e, e_new, dim, rng)
    return t, f, e


def wide_survey_noise(store, indices: np.ndarray, n_bands: int, sample: int = 2000):
    """Median flux error per band of the wide-survey (non-deep-drilling) training objects: the
    noise level augmented objects are brought to. None when the store has no such objects or no
    ``ddf`` flag (then augmentation only scales errors)."""
    objects = store.objects
    if "ddf" not in objects:
        return None
    wide = np.asarray(indices)[objects["ddf"][indices] == 0]
    if len(wide) == 0:
        return None
    batch = store.batch(np.sort(wide[:: max(1, len(wide) // sample)]))
    floor = np.zeros(n_bands)
    for band in range(n_bands):
        errors = batch.obs["flux_err"][batch.obs["band"] == band]
        floor[band] = np.median(errors) if len(errors) else 0.0
    return floor


def _distance(z: float) -> float:
    """Luminosity distance in units of c/H0 for flat LCDM (Om = 0.3), by a simple integral."""
    zs = np.linspace(0, z, 64)
    integrand = 1 / np.sqrt(0.3 * (1 + zs) ** 3 + 0.7)
    return (1 + z) * float(np.trapezoid(integrand, zs))
