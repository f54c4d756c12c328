"""GPU rasterization benchmark (run by bench/device_check.sh on a machine with an NVIDIA GPU).

    python bench/raster_gpu.py [--objects 1000000]

Synthetic PLAsTiCC-like light curves (about 80 observations over three years in six bands).
For each GPU backend and image kind: light curves per second with the inputs already on the
device (kernel time, synchronised), the achieved memory throughput and an estimate of useful
GFLOP/s, next to the device's measured ceilings (a large device-to-device copy, a large float32
matrix product). Target on an H200: >= 2 M light curves per second for the heatmap kind.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

FLOPS_PER_VISIT = 20  # heatmap: ~20 floating-point operations per (pixel, observation) in range


def synthetic(n: int, seed: int = 0):
    from snia.lightcurve import Batch

    rng = np.random.default_rng(seed)
    lengths = rng.poisson(80, n).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    total = int(offsets[-1])
    start = np.repeat(rng.uniform(59580, 60000, n), lengths)
    # sorted times per object: cumulative gaps from each object's start
    gaps = rng.exponential(1000 / 80, total)
    first = offsets[:-1]
    csum = np.cumsum(gaps)
    time_ = start + csum - np.repeat(csum[first] - gaps[first], lengths)
    peak = np.repeat(rng.uniform(59600, 60900, n), lengths)
    flux = 100 * np.exp(-0.5 * ((time_ - peak) / 15) ** 2) + rng.normal(0, 5, total)
    obs = {"time": time_, "band": rng.integers(0, 6, total).astype(np.int8),
           "flux": flux.astype(np.float32), "flux_err": rng.uniform(2, 8, total).astype(np.float32),
           "flag": np.zeros(total, np.int32)}
    meta = {"specz": np.full(n, np.nan, np.float32), "hostgal_photoz": np.full(n, np.nan, np.float32)}
    return Batch(np.arange(n), offsets, obs, meta)


def to_device(batch):
    import cupy as cp

    from snia.lightcurve import Batch

    return Batch(batch.object_id, cp.asarray(batch.offsets),
                 {k: cp.asarray(v) for k, v in batch.obs.items()}, batch.meta)


def timed(fn, repeat=3) -> float:
    import cupy as cp

    fn()
    cp.cuda.Device().synchronize()
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def ceilings() -> tuple[float, float]:
    import cupy as cp

    a = cp.ones(1 << 29, dtype=cp.float32)  # 2 GiB
    b = cp.empty_like(a)
    copy_s = timed(lambda: b.__setitem__(Ellipsis, a))
    n = 8192
    x, y = cp.random.rand(n, n, dtype=cp.float32), cp.random.rand(n, n, dtype=cp.float32)
    mm_s = timed(lambda: x @ y)
    return 2 * a.nbytes / copy_s / 1e9, 2 * n ** 3 / mm_s / 1e9


def heatmap_visits(batch, spec, sample=2000) -> float:
    """Mean (pixel, observation) pairs per object inside the heatmap's time support (host)."""
    from snia.raster import rasterize_numpy

    part = batch if len(batch) <= sample else _head(batch, sample)
    t_ref = rasterize_numpy(_head(part, min(len(part), 200)), spec).t_ref
    centers = -spec.t_before + (np.arange(spec.n_time) + 0.5) * spec.dt
    reach = spec.support * spec.sigma_time
    visits = []
    for i in range(len(t_ref)):
        t = part.obs["time"][part.offsets[i]:part.offsets[i + 1]] - t_ref[i]
        lo, hi = np.searchsorted(t, centers - reach), np.searchsorted(t, centers + reach)
        visits.append((hi - lo).sum() * spec.n_wave)
    return float(np.mean(visits))


def _head(batch, n):
    from snia.lightcurve import Batch

    stop = int(batch.offsets[n])
    return Batch(batch.object_id[:n], batch.offsets[:n + 1],
                 {k: v[:stop] for k, v in batch.obs.items()}, {k: v[:n] for k, v in batch.meta.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    args = parser.parse_args()

    from snia.raster import RasterSpec, available_backends, rasterize

    backends = [b for b in available_backends() if b in ("cupy", "numba-cuda")]
    if not backends:
        raise SystemExit("no GPU backend available (needs CuPy or Numba CUDA and an NVIDIA GPU)")
    host = synthetic(args.objects)
    device = to_device(host)
    copy_gbs, matmul_gflops = ceilings()
    print(f"{args.objects:,} synthetic light curves, {int(host.offsets[-1]):,} observations")
    print(f"device ceilings: copy {copy_gbs:,.0f} GB/s, float32 matmul {matmul_gflops:,.0f} GFLOP/s")
    in_bytes = int(host.offsets[-1]) * (8 + 1 + 4 + 4) + 8 * (args.objects + 1)
    print(f"  {'kind':<9}{'backend':<12}{'LC/s':>14}{'GB/s':>9}{'GFLOP/s':>10}")
    for kind in ("bands", "heatmap"):
        spec = RasterSpec(kind=kind)
        out_bytes = args.objects * int(np.prod(spec.shape)) * 4
        visits = heatmap_visits(host, spec) if kind == "heatmap" else 0.0
        for backend in backends:
            batch = device if backend == "cupy" else host  # numba-cuda copies host inputs itself
            seconds = timed(lambda b=batch, s=spec, k=backend: rasterize(b, s, k))
            gflops = visits * args.objects * FLOPS_PER_VISIT / seconds / 1e9
            print(f"  {kind:<9}{backend:<12}{args.objects / seconds:>14,.0f}"
                  f"{(in_bytes + out_bytes) / seconds / 1e9:>9,.0f}"
                  f"{gflops if kind == 'heatmap' else float('nan'):>10,.0f}")
    print("target: heatmap >= 2,000,000 LC/s on an H200")


if __name__ == "__main__":
    main()
