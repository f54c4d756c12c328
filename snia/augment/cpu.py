"""The augmentation on the CPU: Numba kernels, objects in parallel, over the shared per-object math.

Two passes: the number of observations each object keeps (so every object's output place is
known: an exclusive cumulative sum), then every object's variant written in place.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import float64 as f64

from snia.augment.shared import augment_math, check_counts
from snia.lightcurve import Batch, offsets_from_lengths

# The shared math compiled for the CPU, as module globals: the kernels below reference them as
# globals, so Numba's on-disk cache of the kernels is found again by the next process (kernels
# that reference closure variables are compiled anew in every process, ~10 s).
_math = augment_math(numba.njit)
kept_count, write_object = _math.kept_count, _math.write_object
visible_count = _math.visible_count


@numba.njit(parallel=True, cache=True, nogil=True)
def count(offsets, keys, ddf, time, flux, err, seed, epoch, drop_fraction, truncate_probability,
          truncate_days, out):
    for i in numba.prange(len(keys)):
        n = visible_count(seed, epoch, keys[i], time, flux, err, offsets[i],
                          offsets[i + 1] - offsets[i], truncate_probability, truncate_days)
        out[i] = kept_count(seed, epoch, keys[i], ddf[i], drop_fraction, n)


@numba.njit(parallel=True, cache=True, nogil=True)
def write(offsets, out_offsets, keys, ddf, z, z_err, time, band, flux, err, band_wave, floor,
          has_floor, seed, epoch, drop_fraction, time_shift, flux_noise, redshift_probability,
          redshift_max, z_table, detection_trigger, redshift_tries, truncate_probability,
          truncate_days, out_time, out_band, out_flux, out_err, out_wave, out_z, out_z_err, written):
    for i in numba.prange(len(keys)):
        moved, z_new, stretch, kept = write_object(
            seed, epoch, keys[i], ddf[i], f64(z[i]), offsets[i], offsets[i + 1], out_offsets[i],
            out_offsets[i + 1],
            time, band, flux, err, band_wave, floor, has_floor, drop_fraction, time_shift,
            flux_noise, redshift_probability, redshift_max, z_table, detection_trigger,
            redshift_tries, truncate_probability, truncate_days, out_time, out_band, out_flux, out_err, out_wave)
        out_z[i] = z_new if moved else z[i]
        out_z_err[i] = z_err[i] * stretch
        written[i] = kept  # compared with the count pass's by the caller


def augment_cpu(batch: Batch, epoch: int, seed: int, cfg, band_wave, floor=None) -> Batch:
    n = len(batch)
    offsets = np.ascontiguousarray(batch.offsets, dtype=np.int64)
    keys = np.ascontiguousarray(batch.object_id, dtype=np.int64)
    meta = dict(batch.meta)
    ddf = np.ascontiguousarray(meta["ddf"] if "ddf" in meta else np.zeros(n), dtype=np.int8)
    time = np.ascontiguousarray(batch.obs["time"], dtype=np.float64)
    flux = np.ascontiguousarray(batch.obs["flux"], dtype=np.float32)
    err = np.ascontiguousarray(batch.obs["flux_err"], dtype=np.float32)
    counts = np.empty(n, dtype=np.int64)
    written = np.empty(n, dtype=np.int64)
    count(offsets, keys, ddf, time, flux, err, seed, epoch, float(cfg.drop_fraction),
          float(cfg.truncate_probability), float(cfg.truncate_days), counts)
    out_offsets = offsets_from_lengths(counts)
    total = int(out_offsets[-1])
    obs = {"time": np.empty(total), "band": np.empty(total, np.int8),
           "flux": np.empty(total, np.float32), "flux_err": np.empty(total, np.float32),
           "wave": np.empty(total, np.float32), "flag": np.zeros(total, np.int32)}
    z = np.asarray(meta["hostgal_photoz"], dtype=np.float32)
    z_err = np.asarray(meta["hostgal_photoz_err"], dtype=np.float32)
    meta["hostgal_photoz"], meta["hostgal_photoz_err"] = np.empty_like(z), np.empty_like(z_err)
    has_floor = floor is not None
    floor = np.asarray(floor if has_floor else np.zeros(len(band_wave)), dtype=np.float64)
    write(offsets, out_offsets, keys, ddf, z, z_err, time,
          np.ascontiguousarray(batch.obs["band"], dtype=np.int8), flux, err,
          np.asarray(band_wave, dtype=np.float64), floor, has_floor, seed, epoch,
          float(cfg.drop_fraction), float(cfg.time_shift), float(cfg.flux_noise),
          float(cfg.redshift_probability), float(cfg.redshift_max),
          np.asarray(cfg.redshift_quantiles, dtype=np.float64), bool(cfg.detection_trigger),
          int(cfg.redshift_tries), float(cfg.truncate_probability), float(cfg.truncate_days),
          obs["time"], obs["band"], obs["flux"], obs["flux_err"], obs["wave"],
          meta["hostgal_photoz"], meta["hostgal_photoz_err"], written)
    check_counts(written, counts, keys)
    return Batch(batch.object_id, out_offsets, obs, meta)
