"""A counter-based random stream: every draw is a hash of (seed, epoch, object, index, purpose).

No generator state is carried from one draw to the next, so a draw does not depend on which rank
makes it, in which batch, in which order, or on which device: the NumPy reference, the Numba CPU
kernels and the CUDA kernels all compute the same numbers. The hash is splitmix64's finaliser
(Steele, Lea & Flood 2014) applied three times, mixing in the seed and epoch, then the object key,
then the index and the purpose (a small integer naming what the number is for).

``stream_math(jit)`` compiles the scalar functions for a target (numba.njit, cuda.jit(device=True));
``uniform``/``normal`` below are the same functions over NumPy arrays (the reference's).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S8, S11, S27, S30, S31 = (np.uint64(s) for s in (8, 11, 27, 30, 31))
TO_UNIT = 2.0 ** -53  # 53 random bits -> [0, 1)
TWO_PI = 2 * np.pi


def stream_math(jit):
    """The scalar stream, compiled by ``jit``; arguments are cast to unsigned 64-bit integers."""
    from numba import float64 as f64
    from numba import uint64 as u64

    @jit
    def mix64(x):
        x = (x ^ (x >> S30)) * M1
        x = (x ^ (x >> S27)) * M2
        return x ^ (x >> S31)

    @jit
    def draw(seed, epoch, key, index, purpose):
        h = mix64(u64(seed) * GOLDEN + u64(epoch))
        h = mix64(h ^ (u64(key) * GOLDEN))
        return mix64(h ^ ((u64(index) << S8) | u64(purpose)))

    @jit
    def uniform(seed, epoch, key, index, purpose):
        return f64(draw(seed, epoch, key, index, purpose) >> S11) * TO_UNIT

    @jit
    def normal(seed, epoch, key, index, purpose):
        # Box-Muller on two draws: the second from the first's hash, mixed once more
        h = draw(seed, epoch, key, index, purpose)
        u1 = 1.0 - f64(h >> S11) * TO_UNIT  # (0, 1]: log is finite
        u2 = f64(mix64(h ^ GOLDEN) >> S11) * TO_UNIT
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(TWO_PI * u2)

    return SimpleNamespace(mix64=mix64, draw=draw, uniform=uniform, normal=normal)


# ----------------------------------------------------------------------------- NumPy arrays


def _mix64(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> S30)) * M1
    x = (x ^ (x >> S27)) * M2
    return x ^ (x >> S31)


def _u64(values) -> np.ndarray:
    return np.atleast_1d(np.asarray(values)).astype(np.int64).astype(np.uint64)


def draw(seed, epoch, key, index, purpose) -> np.ndarray:
    """The hashes of (seed, epoch, key, index, purpose), broadcast over array arguments (uint64
    arithmetic wraps by design: arrays, never NumPy scalars, which would warn)."""
    h = _mix64(_u64(seed) * GOLDEN + _u64(epoch))
    h = _mix64(h ^ (_u64(key) * GOLDEN))
    return _mix64(h ^ ((_u64(index) << S8) | _u64(purpose)))


def uniform(seed, epoch, key, index, purpose) -> np.ndarray:
    return (draw(seed, epoch, key, index, purpose) >> S11).astype(np.float64) * TO_UNIT


def normal(seed, epoch, key, index, purpose) -> np.ndarray:
    h = draw(seed, epoch, key, index, purpose)
    u1 = 1.0 - (h >> S11).astype(np.float64) * TO_UNIT
    u2 = (_mix64(h ^ GOLDEN) >> S11).astype(np.float64) * TO_UNIT
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(TWO_PI * u2)
