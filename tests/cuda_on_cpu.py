"""The CUDA C kernels of ``kernels/raster.cu`` compiled as plain C++ and run on the CPU, so their
logic is tested against the NumPy reference on machines without a GPU.

A small shim defines CUDA's qualifiers, thread indices, ``__syncthreads`` and the rounding
intrinsics for a C++ compiler; each launch runs its blocks one after another with ONE thread per
block (``blockDim.x == 1``), where every barrier holds trivially. What this cannot test (the
partition of work between the threads of a block, races) is left to the GPU tests.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from snia.raster.cuda_sources import source_dir
from snia.raster.cupy import heatmap_windows, tile_size
from snia.raster.spec import REFERENCES, Images, observation_wavelengths, redshift_factor

SHIM = r"""
#include <math.h>
#include <algorithm>
using std::min;
using std::max;
struct dim3_shim { unsigned int x; };
static dim3_shim threadIdx = {0}, blockDim = {1};
static dim3_shim blockIdx = {0}, gridDim = {1};
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
#define __launch_bounds__(...)
static inline void __syncthreads() {}
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
"""

DRIVER = r"""
double raster_smem[1 << 15];  // 256 KiB: more than any launch asks for (227 KiB at most)

// Run a kernel's blocks one after another (one thread each); grid = number of blocks.
#define LAUNCH(grid, call) \
    do { gridDim.x = (grid); for (unsigned b = 0; b < gridDim.x; ++b) { blockIdx.x = b; call; } } while (0)

extern "C" void cpu_prepare_objects(int grid, const long long* offsets, const double* time,
                                    const float* flux, const float* err, int n, int mode,
                                    double snr, double* t_ref, float* scale)
{
    LAUNCH(grid, prepare_objects(offsets, time, flux, err, n, mode, snr, t_ref, scale));
}

extern "C" void cpu_bands_image(int grid, const long long* offsets, const double* time,
                                const signed char* band, const float* flux, const float* err,
                                const double* t_ref, const float* scale, const double* zfac,
                                const signed char* rows, int n, int n_rows, int n_time,
                                double t_before, double dt, int tile, float* out)
{
    LAUNCH(grid, bands_image(offsets, time, band, flux, err, t_ref, scale, zfac, rows, n, n_rows,
                             n_time, t_before, dt, tile, out));
}

extern "C" void cpu_heatmap_image(int grid, const long long* offsets, const double* time,
                                  const float* wave, const float* flux, const float* err,
                                  const double* t_ref, const float* scale, const double* zfac,
                                  int n, int n_wave, int n_time, double t_before, double dt,
                                  double wave_min, double dwave, double sigma_t, double sigma_l,
                                  double support, int n_cols, int n_rows, int tile, float* out)
{
    LAUNCH(grid, heatmap_image(offsets, time, wave, flux, err, t_ref, scale, zfac, n, n_wave,
                               n_time, t_before, dt, wave_min, dwave, sigma_t, sigma_l, support,
                               n_cols, n_rows, tile, out));
}
"""


def compiler() -> str | None:
    return shutil.which("g++") or shutil.which("clang++")


def build(folder: Path) -> ctypes.CDLL:
    """raster.cu + shim + driver as one C++ shared library (no FMA contraction, like the host)."""
    text = SHIM + source_dir().joinpath("raster.cu").read_text() + DRIVER
    source, library = folder / "raster_cpu.cpp", folder / "raster_cpu.so"
    source.write_text(text.replace('extern "C" __global__', "__global__"))
    done = subprocess.run([compiler(), "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-w",
                           str(source), "-o", str(library)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the C++ build of raster.cu failed:\n{done.stderr[-3000:]}")
    return ctypes.CDLL(str(library))


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


def rasterize_on_cpu(lib, batch, spec, grid: int, tile: int | None = None) -> Images:
    """The cupy backend's launches (same arguments, same order) on the CPU build."""
    n = len(batch.object_id)
    offsets = np.ascontiguousarray(batch.offsets, dtype=np.int64)
    time = np.ascontiguousarray(batch.obs["time"], dtype=np.float64)
    flux = np.ascontiguousarray(batch.obs["flux"], dtype=np.float32)
    err = np.ascontiguousarray(batch.obs["flux_err"], dtype=np.float32)
    zfac = np.ascontiguousarray(redshift_factor(batch.meta, n, spec), dtype=np.float64)
    t_ref, scale = np.zeros(n), np.ones(n, np.float32)
    out = np.full((n, *spec.shape), np.nan, np.float32)
    longest = int(np.diff(offsets).max()) if n else 0
    tile, _ = tile_size(spec, longest, tile)
    i32, f64 = ctypes.c_int, ctypes.c_double
    lib.cpu_prepare_objects(i32(grid), _ptr(offsets), _ptr(time), _ptr(flux), _ptr(err), i32(n),
                            i32(REFERENCES.index(spec.reference)), f64(spec.detection_snr),
                            _ptr(t_ref), _ptr(scale))
    _, height, width = spec.shape
    if spec.kind == "bands":
        band = np.ascontiguousarray(batch.obs["band"], dtype=np.int8)
        rows = np.asarray(spec.bands, dtype=np.int8)
        lib.cpu_bands_image(i32(grid), _ptr(offsets), _ptr(time), _ptr(band), _ptr(flux),
                            _ptr(err), _ptr(t_ref), _ptr(scale), _ptr(zfac), _ptr(rows), i32(n),
                            i32(height), i32(width), f64(spec.t_before), f64(spec.dt), i32(tile),
                            _ptr(out))
    else:
        wave = np.ascontiguousarray(observation_wavelengths(batch, spec), dtype=np.float32)
        columns, rows = heatmap_windows(spec)
        lib.cpu_heatmap_image(i32(grid), _ptr(offsets), _ptr(time), _ptr(wave), _ptr(flux),
                              _ptr(err), _ptr(t_ref), _ptr(scale), _ptr(zfac), i32(n),
                              i32(height), i32(width), f64(spec.t_before), f64(spec.dt),
                              f64(spec.wave_min), f64(spec.dwave), f64(spec.sigma_time),
                              f64(spec.sigma_wave), f64(spec.support), i32(columns), i32(rows),
                              i32(tile), _ptr(out))
    return Images(out, scale, t_ref, spec)
