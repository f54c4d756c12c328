"""The NumPy reference of the augmentation: one object at a time, whole-array NumPy, written for
clarity (the test oracle of the Numba CPU and CUDA kernels, which must draw the same numbers)."""

from __future__ import annotations

import numpy as np

from snia.augment import stream
from snia.augment.shared import (
    DDF_FLOOR,
    DDF_NOISE,
    DETECTION_SNR,
    DETECTIONS,
    DISTANCE_STEPS,
    DROP,
    ERR_FACTOR,
    FLOOR_FACTOR,
    KEEP,
    MOVE,
    MOVE_NOISE,
    NOISE,
    NOISE_K,
    OMEGA_M,
    RESCUE,
    SHIFT,
    TRUNCATE,
    TRUNCATE_DAYS,
    TRY_STRIDE,
    Z,
)
from snia.lightcurve import Batch, offsets_from_lengths


def luminosity_distance(z: float) -> float:
    """In units of c/H0 for flat LCDM (Om = 0.3), by the trapezoid rule."""
    zs = np.linspace(0, z, DISTANCE_STEPS)
    return (1 + z) * float(np.trapezoid(1 / np.sqrt(OMEGA_M * (1 + zs) ** 3 + 1 - OMEGA_M), zs))


def passes_detection_trigger(flux: np.ndarray, err: np.ndarray) -> bool:
    """PLAsTiCC's trigger: at least two detections at S/N >= 5."""
    return int(np.sum(flux >= DETECTION_SNR * err)) >= DETECTIONS


def augment_object(lc: dict, key: int, ddf: int, z: float, seed: int, epoch: int, cfg, band_wave,
                   floor) -> tuple[dict, float, float]:
    """One object's variant: (observations, new redshift, stretch (1+z')/(1+z), 1 if not moved)."""
    def u(purpose, index=0):
        return float(stream.uniform(seed, epoch, key, index, purpose)[0])

    n = len(lc["time"])
    if n and u(TRUNCATE) < cfg.truncate_probability:  # as seen some days after detection
        detected = np.flatnonzero(lc["flux"].astype(np.float64)
                                  >= DETECTION_SNR * lc["flux_err"].astype(np.float64))
        start = lc["time"][detected[0]] if detected.size else lc["time"][0]
        n = max(int(np.sum(lc["time"] <= start + cfg.truncate_days * u(TRUNCATE_DAYS))), 1)
        lc = {key: v[:n] for key, v in lc.items()}
    k = np.arange(n)
    drop = 0.5 + 0.4 * u(DROP) if ddf == 1 else cfg.drop_fraction * u(DROP)
    keep = stream.uniform(seed, epoch, key, k, KEEP) >= drop
    if n and not keep.any():
        keep[min(int(u(RESCUE) * n), n - 1)] = True
    k = k[keep]
    t = lc["time"][keep].astype(np.float64) + cfg.time_shift * (2 * u(SHIFT) - 1)
    f, e = lc["flux"][keep].astype(np.float64), lc["flux_err"][keep].astype(np.float64)
    b = lc["band"][keep]
    if cfg.flux_noise > 0:
        e1 = e * np.sqrt(1 + (cfg.flux_noise * u(NOISE_K)) ** 2)
        f = f + stream.normal(seed, epoch, key, k, NOISE) * np.sqrt(np.maximum(e1 ** 2 - e ** 2, 0))
        e = e1
    floor_b = np.asarray(floor, np.float64)[b] if floor is not None else np.zeros(len(b))

    def moved(t_try):
        dim = (luminosity_distance(z) / luminosity_distance(z_of(t_try))) ** 2
        e_new = np.maximum(e * (1 + 0.5 * u(ERR_FACTOR, t_try)),
                           floor_b * (0.7 + 0.6 * u(FLOOR_FACTOR, t_try)))
        extra = np.sqrt(np.maximum(e_new ** 2 - (e * dim) ** 2, 0))
        noise = stream.normal(seed, epoch, key, k, MOVE_NOISE + TRY_STRIDE * t_try)
        return f * dim + noise * extra, e_new

    table = np.asarray(cfg.redshift_quantiles, np.float64)
    steps = np.linspace(0.0, 1.0, len(table))

    def z_of(t_try):
        if len(table) < 2:
            return z + (cfg.redshift_max - z) * u(Z, t_try)
        # the survey's distribution above z: its inverse CDF from F(z) on (quantiles at equal steps)
        cdf = float(np.interp(z, table, steps))
        return max(z, float(np.interp(cdf + (1 - cdf) * u(Z, t_try), steps, table)))

    limit = table[-1] if len(table) >= 2 else cfg.redshift_max
    z_new, stretch, was_moved = z, 1.0, False
    if u(MOVE) < cfg.redshift_probability and np.isfinite(z) and 0 < z < limit:
        for t_try in range(cfg.redshift_tries):
            f_try, e_try = moved(t_try)
            if not cfg.detection_trigger or passes_detection_trigger(f_try, e_try):
                z_new = z_of(t_try)
                stretch = (1 + z_new) / (1 + z)
                t0 = t[0] if len(t) else 0.0
                t, f, e = t0 + (t - t0) * stretch, f_try, e_try
                was_moved = True
                break
    if not was_moved and floor is not None and ddf == 1:
        e_new = np.maximum(e, floor_b * (0.7 + 0.6 * u(DDF_FLOOR)))
        f = f + stream.normal(seed, epoch, key, k, DDF_NOISE) * np.sqrt(np.maximum(e_new ** 2 - e ** 2, 0))
        e = e_new
    obs = {"time": t, "band": b, "flux": f, "flux_err": e,
           "wave": np.asarray(band_wave, np.float64)[b] * stretch}
    return obs, z_new, stretch


def augment_numpy(batch: Batch, epoch: int, seed: int, cfg, band_wave, floor=None) -> Batch:
    """Every object's variant (see ``augment_object``), keyed by its object id."""
    meta = {k: np.array(v, copy=True) for k, v in batch.meta.items()}
    ddf = meta["ddf"] if "ddf" in meta else np.zeros(len(batch), np.int8)
    parts, lengths = [], []
    for j in range(len(batch)):
        z = float(meta["hostgal_photoz"][j])
        obs, z_new, stretch = augment_object(batch.lightcurve(j), int(batch.object_id[j]),
                                             int(ddf[j]), z, seed, epoch, cfg, band_wave, floor)
        meta["hostgal_photoz"][j] = z_new
        meta["hostgal_photoz_err"][j] *= stretch
        parts.append(obs)
        lengths.append(len(obs["time"]))
    return Batch(batch.object_id, offsets_from_lengths(lengths), concatenate_observations(parts), meta)


def concatenate_observations(parts: list) -> dict:
    dtypes = {"time": np.float64, "band": np.int8, "flux": np.float32, "flux_err": np.float32,
              "wave": np.float32}
    obs = {k: (np.concatenate([p[k] for p in parts]) if parts else np.empty(0)).astype(dt)
           for k, dt in dtypes.items()}
    obs["flag"] = np.zeros(len(obs["time"]), np.int32)
    return obs
