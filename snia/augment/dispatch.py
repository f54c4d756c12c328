"""One ``augment`` for every backend (NumPy reference, Numba CPU, Numba CUDA: the GPU module is
imported only when chosen), and the wide survey's noise floor the augmentation brings objects to
(``wide_survey_noise``).
"""

from __future__ import annotations

import numpy as np

from snia.augment.config import AugmentConfig
from snia.augment.cpu import augment_cpu
from snia.augment.reference import augment_numpy
from snia.errors import ConfigError
from snia.lightcurve import Batch

BACKENDS = ("numpy", "cpu", "numba-cuda")


def augment(batch: Batch, epoch: int, seed: int, cfg: AugmentConfig, band_wave, noise_floor=None,
            backend: str = "cpu") -> Batch:
    """A fresh, reproducible variant of each light curve of a batch (new arrays; the batch is not
    changed), keyed by (seed, epoch, object id). ``band_wave``: effective wavelength per registry
    band; ``noise_floor``: the wide survey's flux error per band, or None."""
    if backend == "cpu":
        return augment_cpu(batch, epoch, seed, cfg, band_wave, noise_floor)
    if backend == "numpy":
        return augment_numpy(batch, epoch, seed, cfg, band_wave, noise_floor)
    if backend == "numba-cuda":
        from snia.augment.numba_cuda import augment_numba_cuda  # needs numba-cuda and a GPU

        return augment_numba_cuda(batch, epoch, seed, cfg, band_wave, noise_floor)
    raise ConfigError(f"augmentation backend must be one of {BACKENDS}, not {backend!r}")


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
