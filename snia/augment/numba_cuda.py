"""The augmentation on an NVIDIA GPU: the shared per-object math as Numba CUDA kernels, one thread
per object (grid-stride loops). Inputs may be NumPy (copied to the device) or CuPy arrays, so a
resident training set never leaves the GPU (``augment_numba_cuda``). Imported only when used:
Numba's CUDA simulator (tests without a GPU) needs ``cuda`` as this module's global.
"""

from __future__ import annotations

import warnings
from collections import deque
from contextlib import contextmanager

import numpy as np
from numba import cuda
from numba import float64 as f64

from snia.augment.shared import augment_math, check_counts
from snia.lightcurve import Batch
from snia.numba_cuda_compat import ensure_numpy_names
from snia.raster import is_cupy

ensure_numpy_names()  # before numba-cuda first compiles (see snia.numba_cuda_compat)

m = augment_math(cuda.jit(device=True))
kept_count, write_object = m.kept_count, m.write_object
visible_count = m.visible_count


@cuda.jit
def count(offsets, keys, ddf, time, flux, err, seed, epoch, drop_fraction, truncate_probability,
          truncate_days, out):
    for i in range(cuda.grid(1), len(keys), cuda.gridsize(1)):
        n = visible_count(seed, epoch, keys[i], time, flux, err, offsets[i],
                          offsets[i + 1] - offsets[i], truncate_probability, truncate_days)
        out[i] = kept_count(seed, epoch, keys[i], ddf[i], drop_fraction, n)


@cuda.jit
def write(offsets, out_offsets, keys, ddf, z, z_err, time, band, flux, err, band_wave, floor,
          has_floor, seed, epoch, drop_fraction, time_shift, flux_noise, redshift_probability,
          redshift_max, z_table, detection_trigger, redshift_tries, truncate_probability,
          truncate_days, out_time, out_band, out_flux, out_err, out_wave, out_z, out_z_err, written):
    for i in range(cuda.grid(1), len(keys), cuda.gridsize(1)):
        moved, z_new, stretch, kept = write_object(
            seed, epoch, keys[i], ddf[i], f64(z[i]), offsets[i], offsets[i + 1], out_offsets[i],
            out_offsets[i + 1],
            time, band, flux, err, band_wave, floor, has_floor, drop_fraction, time_shift,
            flux_noise, redshift_probability, redshift_max, z_table, detection_trigger,
            redshift_tries, truncate_probability, truncate_days, out_time, out_band, out_flux, out_err, out_wave)
        out_z[i] = z_new if moved else z[i]
        out_z_err[i] = z_err[i] * stretch
        written[i] = kept  # compared with the count pass's by the caller


@contextmanager
def _wrapping():
    """Numba's CUDA simulator (tests without a GPU) hashes with NumPy scalars in Python threads,
    where the stream's by-design uint64 wrap-around warns: silence exactly that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        yield


def _array_module(batch):
    """CuPy when the batch's observations live on the GPU, else NumPy."""
    if is_cupy(batch.obs["time"]):
        import cupy

        return cupy
    return np


def _kernel_arg(a):
    """A kernel argument: NumPy arrays as they are (Numba copies them; the simulator runs on
    them), CuPy arrays viewed in place without Numba's synchronisation of their stream (the
    launches below run on that same stream)."""
    if isinstance(a, np.ndarray):
        return a
    return cuda.from_cuda_array_interface(a.__cuda_array_interface__, owner=a, sync=False)


def _stream(xp):
    """The stream CuPy is on (a GPU batch), else Numba's default stream."""
    if xp is np:
        return 0
    pointer = xp.cuda.get_current_stream().ptr
    return cuda.external_stream(pointer) if pointer else cuda.default_stream()


# device batches' count checks not yet read: (event after the write pass, number of objects whose
# two passes differ, written, counts, object ids)
_PENDING: deque = deque()


def check_pending(wait: bool = True) -> None:
    """Raise AugmentDiverged for a device batch whose write pass kept another number of
    observations than its count pass placed. Without ``wait``, only batches whose kernels have
    finished are read (the host never waits); with it (e.g. at the end of an epoch), all."""
    while _PENDING and (wait or _PENDING[0][0].done):
        done, differ, written, counts, keys = _PENDING.popleft()
        done.synchronize()
        if int(differ):
            check_counts(written.get(), counts.get(), keys)


def augment_numba_cuda(batch: Batch, epoch: int, seed: int, cfg, band_wave, floor=None,
                       threads: int = 128, max_blocks: int = 1024) -> Batch:
    """Every object's variant on the GPU (or in Numba's CUDA simulator).

    A batch of CuPy arrays (a device-resident training set) never leaves the device and the host
    never waits: the kernels run on CuPy's current stream, each object's output place is a device
    scan of the kept counts, and the output arrays are as long as the input's (augmentation only
    drops observations) with their tails unused, so no count crosses to the host. The result is
    then a Batch of CuPy arrays whose ``offsets`` are on the device too. A batch of NumPy arrays
    gives NumPy arrays, trimmed to the observations kept.
    """
    xp = _array_module(batch)
    check_pending(wait=False)  # earlier batches' count checks that have finished by now
    n = len(batch)
    blocks = max(1, min(max_blocks, -(-max(n, 1) // threads)))
    stream = _stream(xp)
    capacity = len(batch.obs["time"])  # at least the observations of the batch

    def device(a, dtype):
        return xp.ascontiguousarray(xp.asarray(a, dtype=dtype))

    offsets = device(batch.offsets, np.int64)
    keys = device(batch.object_id, np.int64)
    ddf = device(batch.meta["ddf"] if "ddf" in batch.meta else np.zeros(n), np.int8)
    time = device(batch.obs["time"], np.float64)
    flux = device(batch.obs["flux"], np.float32)
    err = device(batch.obs["flux_err"], np.float32)
    counts = xp.zeros(n, dtype=np.int64)
    with _wrapping():
        count[blocks, threads, stream](*map(_kernel_arg, (offsets, keys, ddf, time, flux, err)),
                                       seed, epoch, float(cfg.drop_fraction),
                                       float(cfg.truncate_probability), float(cfg.truncate_days),
                                       _kernel_arg(counts))
    out_offsets = xp.concatenate([xp.zeros(1, np.int64), xp.cumsum(counts)])
    out = {"time": xp.empty(capacity, np.float64), "band": xp.empty(capacity, np.int8),
           "flux": xp.empty(capacity, np.float32), "flux_err": xp.empty(capacity, np.float32),
           "wave": xp.empty(capacity, np.float32)}
    out_z, out_z_err = xp.empty(n, np.float32), xp.empty(n, np.float32)
    written = xp.empty(n, dtype=np.int64)
    has_floor = floor is not None
    floor = np.asarray(floor if has_floor else np.zeros(len(band_wave)), dtype=np.float64)
    args = [offsets, out_offsets, keys, ddf, device(batch.meta["hostgal_photoz"], np.float32),
            device(batch.meta["hostgal_photoz_err"], np.float32), time,
            device(batch.obs["band"], np.int8), flux, err, device(band_wave, np.float64),
            device(floor, np.float64)]
    with _wrapping():
        write[blocks, threads, stream](
            *map(_kernel_arg, args), has_floor, seed, epoch, float(cfg.drop_fraction),
            float(cfg.time_shift), float(cfg.flux_noise), float(cfg.redshift_probability),
            float(cfg.redshift_max),
            _kernel_arg(device(np.asarray(cfg.redshift_quantiles, dtype=np.float64).reshape(-1),
                               np.float64)),
            bool(cfg.detection_trigger), int(cfg.redshift_tries),
            float(cfg.truncate_probability), float(cfg.truncate_days),
            *map(_kernel_arg, (out["time"], out["band"], out["flux"], out["flux_err"],
                               out["wave"], out_z, out_z_err, written)))
    if xp is np:
        check_counts(written, counts, batch.object_id)
    else:  # checked once done, without making the host wait (check_pending)
        differ = xp.count_nonzero(written != counts)
        done = xp.cuda.Event(block=False, disable_timing=True)
        done.record()
        _PENDING.append((done, differ, written, counts, np.asarray(batch.object_id)))
    if xp is np:  # on the host the total is known: trim to it
        out = {k: v[:out_offsets[-1]] for k, v in out.items()}
    out["flag"] = xp.zeros(len(out["time"]), np.int32)
    meta = {**batch.meta, "hostgal_photoz": out_z, "hostgal_photoz_err": out_z_err}
    return Batch(batch.object_id, out_offsets, out, meta)
