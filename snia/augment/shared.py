"""The per-object augmentation, written once over flat arrays and compiled for each target
(``numba.njit`` for the CPU, ``cuda.jit(device=True)`` for the GPU), like the rasterizer's shared
math. Object i owns observations ``offsets[i]:offsets[i+1]`` (time-ordered); it is processed in two
passes: ``kept_count`` (how many observations survive the thinning, so outputs can be placed) and
``write_object`` (the variant itself, written from ``out_start``). Every random number comes from
the counter-based stream (``stream``), keyed by the object's id and the observation's index within
the object, so both passes draw the same numbers and any backend draws the same as the reference.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from snia.augment.stream import stream_math

# what each random number is for (the stream's `purpose`)
DROP, KEEP, RESCUE, SHIFT, NOISE_K, NOISE, MOVE, Z, ERR_FACTOR, FLOOR_FACTOR, MOVE_NOISE, \
    DDF_FLOOR, DDF_NOISE, TRUNCATE, TRUNCATE_DAYS = range(1, 16)
TRY_STRIDE = 16  # MOVE_NOISE + TRY_STRIDE * t: the noise of redshift try t
# The stream packs (index << 8) | purpose (snia.augment.stream): a purpose must stay below 256, or
# it would spill into the index and draw another observation's numbers. So at most this many tries.
PURPOSE_BITS = 8
MAX_REDSHIFT_TRIES = ((1 << PURPOSE_BITS) - 1 - MOVE_NOISE) // TRY_STRIDE + 1
DETECTION_SNR = 5.0  # PLAsTiCC's trigger: at least two detections at S/N >= 5
DETECTIONS = 2
OMEGA_M = 0.3  # flat LCDM
DISTANCE_STEPS = 64  # trapezoid points of the luminosity-distance integral


class AugmentDiverged(RuntimeError):
    """The write pass kept another number of observations than the count pass placed: the two
    passes recompute the same draws, so this is a bug (or a compiler's), never bad data."""


def check_counts(written, counts, keys) -> None:
    """Raise AugmentDiverged unless each object's write pass kept what its count pass placed
    (host arrays). The write pass never wrote past the slot, so neighbours stay intact."""
    bad = np.flatnonzero(np.asarray(written) != np.asarray(counts))
    if bad.size:
        i = int(bad[0])
        raise AugmentDiverged(f"augmentation: object {int(keys[i])}: the write pass kept {int(written[i])} "
                              f"observations where the count pass placed {int(counts[i])} ({bad.size} "
                              f"object(s) differ); nothing was written past an object's place, but the "
                              f"batch is not used")


def augment_math(jit):
    """The per-object functions compiled by ``jit`` (see the module docstring)."""
    from numba import float64 as f64  # a cast usable on the CPU, the GPU and its simulator

    s = stream_math(jit)
    uniform, normal = s.uniform, s.normal

    @jit
    def luminosity_distance(z):
        # in units of c/H0, flat LCDM: (1 + z) * integral_0^z dz' / E(z'), trapezoid rule
        dz = z / (DISTANCE_STEPS - 1)
        total = 0.0
        for k in range(DISTANCE_STEPS):
            x = 1.0 + k * dz
            w = 0.5 if k == 0 or k == DISTANCE_STEPS - 1 else 1.0
            total += w / math.sqrt(OMEGA_M * x * x * x + 1.0 - OMEGA_M)
        return (1.0 + z) * total * dz

    @jit
    def drop_share(seed, epoch, key, ddf, drop_fraction):
        # deep-drilling objects lose 50-90 %: the wide survey they stand in for is far sparser
        u = uniform(seed, epoch, key, 0, DROP)
        return 0.5 + 0.4 * u if ddf == 1 else drop_fraction * u

    @jit
    def visible_count(seed, epoch, key, time, flux, err, a, n, truncate_probability,
                      truncate_days):
        # with probability truncate_probability, the object as a survey saw it U(0, truncate_days)
        # days after its first detection (flux / error >= 5; never detected: its first
        # observation), as snia.lightcurve.cut_after_first_detection cuts: how many of its first
        # observations that leaves (at least one)
        if n == 0 or uniform(seed, epoch, key, 0, TRUNCATE) >= truncate_probability:
            return n
        start = time[a]
        for k in range(n):
            if f64(flux[a + k]) >= DETECTION_SNR * f64(err[a + k]):
                start = time[a + k]
                break
        limit = start + truncate_days * uniform(seed, epoch, key, 0, TRUNCATE_DAYS)
        count = 0
        while count < n and time[a + count] <= limit:  # time-ordered
            count += 1
        return max(count, 1)

    @jit
    def kept_count(seed, epoch, key, ddf, drop_fraction, n):
        drop = drop_share(seed, epoch, key, ddf, drop_fraction)
        count = 0
        for k in range(n):
            if uniform(seed, epoch, key, k, KEEP) >= drop:
                count += 1
        return count if count > 0 or n == 0 else 1  # at least one observation stays

    @jit
    def root_gap(big, small):
        # sqrt(big^2 - small^2), the noise that grows an error from small to big (big >= small).
        # Clamped at 0: a GPU compiler fuses big*big - small*small into one multiply-add, which
        # falls a rounding below 0 when big == small (the square root would be NaN)
        return math.sqrt(max(big * big - small * small, 0.0))

    @jit
    def rescued(seed, epoch, key, n):
        # the observation kept when the thinning would drop them all
        return min(int(uniform(seed, epoch, key, 0, RESCUE) * n), n - 1)

    @jit
    def noisy(seed, epoch, key, k, f, e, flux_noise, k_noise):
        # extra Gaussian flux noise of k_noise sigma; errors grow to sqrt(1 + k^2) sigma (f, e: float64)
        if flux_noise > 0:
            e1 = e * math.sqrt(1.0 + k_noise * k_noise)
            return f + normal(seed, epoch, key, k, NOISE) * root_gap(e1, e), e1
        return f, e

    @jit
    def move_limit(redshift_max, z_table):
        # moves go up to the survey's highest redshift (its table's last quantile), else
        # redshift_max
        return z_table[len(z_table) - 1] if len(z_table) >= 2 else redshift_max

    @jit
    def target_z(z, u, redshift_max, z_table):
        # where a move at uniform u takes z (< move_limit): uniform on (z, redshift_max), or,
        # with a table of the survey's redshift quantiles (equal probability steps, linear
        # between them), the survey's distribution above z, by its inverse CDF at F(z) + (1 - F(z)) u
        m = len(z_table)
        if m < 2:
            return z + (redshift_max - z) * u
        cdf = 0.0
        if z > z_table[0]:
            i = 0
            while i < m - 2 and z >= z_table[i + 1]:
                i += 1
            cdf = (i + (z - z_table[i]) / (z_table[i + 1] - z_table[i])) / (m - 1)
        position = (cdf + (1.0 - cdf) * u) * (m - 1)
        j = min(int(position), m - 2)
        return max(z, z_table[j] + (position - j) * (z_table[j + 1] - z_table[j]))

    @jit
    def moved_obs(seed, epoch, key, k, t_try, f, e, dim, err_factor, floor_b):
        # seen from further away: fluxes dim, errors at least the wide survey's and never
        # smaller, noise added up to them
        e_new = max(e * err_factor, floor_b)
        extra = root_gap(e_new, e * dim)
        return f * dim + normal(seed, epoch, key, k, MOVE_NOISE + TRY_STRIDE * t_try) * extra, e_new

    @jit
    def write_object(seed, epoch, key, ddf, z, a, b, out_start, out_end, time, band, flux, err,
                     band_wave, floor, has_floor, drop_fraction, time_shift, flux_noise,
                     redshift_probability, redshift_max, z_table, detection_trigger,
                     redshift_tries, truncate_probability, truncate_days, out_time, out_band, out_flux, out_err,
                     out_wave):
        """Write object's variant into [out_start, out_end), its slot from the count pass;
        returns (moved, new redshift, stretch, observations it kept). Never past out_end: were
        the two passes to disagree (the caller compares the count), the next object's slot stays
        intact."""
        n = visible_count(seed, epoch, key, time, flux, err, a, b - a, truncate_probability,
                          truncate_days)
        drop = drop_share(seed, epoch, key, ddf, drop_fraction)
        thinned = 0  # observations the thinning keeps; none kept: one is rescued
        for k in range(n):
            if uniform(seed, epoch, key, k, KEEP) >= drop:
                thinned += 1
        rescue = rescued(seed, epoch, key, n) if thinned == 0 and n > 0 else -1
        shift = time_shift * (2.0 * uniform(seed, epoch, key, 0, SHIFT) - 1.0)
        k_noise = flux_noise * uniform(seed, epoch, key, 0, NOISE_K)
        t0 = 0.0
        for k in range(n):  # the first kept observation's time: the dilation's fixed point
            if k == rescue or uniform(seed, epoch, key, k, KEEP) >= drop:
                t0 = time[a + k] + shift
                break
        moved, z_new, dim, err_factor, floor_factor, t_moved = False, z, 1.0, 1.0, 0.0, 0
        if (uniform(seed, epoch, key, 0, MOVE) < redshift_probability and math.isfinite(z)
                and 0.0 < z < move_limit(redshift_max, z_table)):
            d_z = luminosity_distance(z)
            for t_try in range(redshift_tries):
                z_try = target_z(z, uniform(seed, epoch, key, t_try, Z), redshift_max, z_table)
                dim = (d_z / luminosity_distance(z_try)) ** 2
                err_factor = 1.0 + 0.5 * uniform(seed, epoch, key, t_try, ERR_FACTOR)
                floor_factor = 0.7 + 0.6 * uniform(seed, epoch, key, t_try, FLOOR_FACTOR)
                detected = 0
                if detection_trigger:
                    for k in range(n):
                        if k != rescue and uniform(seed, epoch, key, k, KEEP) < drop:
                            continue
                        f, e = noisy(seed, epoch, key, k, f64(flux[a + k]), f64(err[a + k]), flux_noise,
                                     k_noise)
                        fl = floor[band[a + k]] * floor_factor if has_floor else 0.0
                        f, e = moved_obs(seed, epoch, key, k, t_try, f, e, dim, err_factor, fl)
                        if f >= DETECTION_SNR * e:
                            detected += 1
                if not detection_trigger or detected >= DETECTIONS:
                    moved, z_new, t_moved = True, z_try, t_try
                    break
        stretch = (1.0 + z_new) / (1.0 + z) if moved else 1.0
        ddf_factor = 0.7 + 0.6 * uniform(seed, epoch, key, 0, DDF_FLOOR)
        j = out_start
        for k in range(n):
            if k != rescue and uniform(seed, epoch, key, k, KEEP) < drop:
                continue
            o = a + k
            f, e = noisy(seed, epoch, key, k, f64(flux[o]), f64(err[o]), flux_noise, k_noise)
            t = time[o] + shift
            if moved:
                t = t0 + (t - t0) * stretch
                fl = floor[band[o]] * floor_factor if has_floor else 0.0
                f, e = moved_obs(seed, epoch, key, k, t_moved, f, e, dim, err_factor, fl)
            elif has_floor and ddf == 1:
                # a deep-field object gets the wide survey's noise
                e_new = max(e, floor[band[o]] * ddf_factor)
                f = f + normal(seed, epoch, key, k, DDF_NOISE) * root_gap(e_new, e)
                e = e_new
            if j < out_end:
                out_time[j] = t
                out_band[j] = band[o]
                out_flux[j] = f
                out_err[j] = e
                out_wave[j] = band_wave[band[o]] * stretch
            j += 1
        return moved, z_new, stretch, j - out_start

    return SimpleNamespace(luminosity_distance=luminosity_distance, kept_count=kept_count,
                           target_z=target_z,
                           visible_count=visible_count,
                           write_object=write_object, stream=s)
