"""Numba CUDA on NumPy >= 2.5: numba-cuda (0.30 and earlier) registers an implementation for
``np.row_stack`` when it first compiles a kernel, and NumPy 2.5 removed that name (an alias of
``np.vstack`` since NumPy 2.0, deprecated then). Without it every CUDA kernel fails to compile
with "module 'numpy' has no attribute 'row_stack'" (seen on an H200 machine with NumPy 2.5.2 and
numba-cuda 0.30). ``ensure_numpy_names()`` puts the alias back before numba-cuda compiles;
``numba_cuda_works()`` tells whether Numba CUDA can compile and run a kernel here at all.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

log = logging.getLogger(__name__)


def ensure_numpy_names() -> None:
    """Restore the NumPy names numba-cuda still looks up (the same functions as before)."""
    if "row_stack" not in dir(np):
        np.row_stack = np.vstack


@functools.lru_cache(maxsize=1)
def numba_cuda_works() -> bool:
    """Whether a tiny Numba CUDA kernel compiles and gives the right answer on this machine (a
    GPU is there and usable, and this numba-cuda works with this NumPy). False under Numba's CUDA
    simulator, which is not a GPU."""
    try:
        import numba
        from numba import cuda

        if numba.config.ENABLE_CUDASIM or not cuda.is_available():
            return False
        ensure_numpy_names()

        @cuda.jit
        def add_one(a):
            i = cuda.grid(1)
            if i < a.shape[0]:
                a[i] += 1

        a = cuda.to_device(np.arange(4, dtype=np.int64))
        add_one[1, 4](a)
        return bool((a.copy_to_host() == np.arange(1, 5)).all())
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable here
        log.warning("Numba CUDA is installed but cannot run a kernel here (%s: %s): its backends "
                    "are not used", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return False
