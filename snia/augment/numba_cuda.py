"""The augmentation on an NVIDIA GPU: the shared per-object math as Numba CUDA kernels, one thread
per object (grid-stride loops). Inputs may be NumPy (copied to the device) or device arrays
(CuPy or Numba), so a resident training set never leaves the GPU. Imported only when used:
Numba's CUDA simulator (tests without a GPU) needs ``cuda`` as this module's global.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
from numba import cuda
from numba import float64 as f64

from snia.augment.shared import augment_math
from snia.lightcurve import Batch

m = augment_math(cuda.jit(device=True))
kept_count, write_object = m.kept_count, m.write_object


@cuda.jit
def count(offsets, keys, ddf, seed, epoch, drop_fraction, out):
    for i in range(cuda.grid(1), len(keys), cuda.gridsize(1)):
        out[i] = kept_count(seed, epoch, keys[i], ddf[i], drop_fraction, offsets[i + 1] - offsets[i])


@cuda.jit
def write(offsets, out_offsets, keys, ddf, z, z_err, time, band, flux, err, band_wave, floor,
          has_floor, seed, epoch, drop_fraction, time_shift, flux_noise, redshift_probability,
          redshift_max, detection_trigger, redshift_tries, out_time, out_band, out_flux, out_err,
          out_wave, out_z, out_z_err):
    for i in range(cuda.grid(1), len(keys), cuda.gridsize(1)):
        moved, z_new, stretch = write_object(
            seed, epoch, keys[i], ddf[i], f64(z[i]), offsets[i], offsets[i + 1], out_offsets[i],
            time, band, flux, err, band_wave, floor, has_floor, drop_fraction, time_shift,
            flux_noise, redshift_probability, redshift_max, detection_trigger, redshift_tries,
            out_time, out_band, out_flux, out_err, out_wave)
        out_z[i] = z_new if moved else z[i]
        out_z_err[i] = z_err[i] * stretch


@contextmanager
def _wrapping():
    """Numba's CUDA simulator (tests without a GPU) hashes with NumPy scalars in Python threads,
    where the stream's by-design uint64 wrap-around warns: silence exactly that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        yield


def _device(a, dtype):
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype)) if isinstance(a, np.ndarray) \
        else cuda.as_cuda_array(a)


def augment_numba_cuda(batch: Batch, epoch: int, seed: int, cfg, band_wave, floor=None,
                       threads: int = 128, max_blocks: int = 1024) -> Batch:
    """Every object's variant on the GPU; the result's arrays are Numba device arrays."""
    n = len(batch)
    blocks = max(1, min(max_blocks, -(-max(n, 1) // threads)))
    offsets = _device(np.asarray(batch.offsets), np.int64)
    keys = _device(np.asarray(batch.object_id), np.int64)
    ddf = _device(batch.meta["ddf"] if "ddf" in batch.meta else np.zeros(n), np.int8)
    counts = cuda.device_array(n, dtype=np.int64)
    with _wrapping():
        count[blocks, threads](offsets, keys, ddf, seed, epoch, float(cfg.drop_fraction), counts)
    # the exclusive sum that places each object's output: on the host, one small copy per batch
    host_counts = counts.copy_to_host()
    out_offsets_host = np.concatenate(([0], np.cumsum(host_counts))).astype(np.int64)
    total = int(out_offsets_host[-1])
    out = {"time": cuda.device_array(total, np.float64), "band": cuda.device_array(total, np.int8),
           "flux": cuda.device_array(total, np.float32),
           "flux_err": cuda.device_array(total, np.float32),
           "wave": cuda.device_array(total, np.float32)}
    z = _device(np.asarray(batch.meta["hostgal_photoz"]), np.float32)
    z_err = _device(np.asarray(batch.meta["hostgal_photoz_err"]), np.float32)
    out_z, out_z_err = cuda.device_array(n, np.float32), cuda.device_array(n, np.float32)
    has_floor = floor is not None
    floor = np.asarray(floor if has_floor else np.zeros(len(band_wave)), dtype=np.float64)
    with _wrapping():
        write[blocks, threads](
            offsets, cuda.to_device(out_offsets_host), keys, ddf, z, z_err,
            _device(batch.obs["time"], np.float64), _device(batch.obs["band"], np.int8),
            _device(batch.obs["flux"], np.float32), _device(batch.obs["flux_err"], np.float32),
            cuda.to_device(np.asarray(band_wave, np.float64)), cuda.to_device(floor), has_floor, seed,
            epoch, float(cfg.drop_fraction), float(cfg.time_shift), float(cfg.flux_noise),
            float(cfg.redshift_probability), float(cfg.redshift_max), bool(cfg.detection_trigger),
            int(cfg.redshift_tries), out["time"], out["band"], out["flux"], out["flux_err"],
            out["wave"], out_z, out_z_err)
    out["flag"] = cuda.to_device(np.zeros(total, np.int32))
    meta = {**batch.meta, "hostgal_photoz": out_z, "hostgal_photoz_err": out_z_err}
    return Batch(batch.object_id, out_offsets_host, out, meta)
