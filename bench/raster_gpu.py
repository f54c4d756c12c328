"""GPU rasterization benchmark on real PLAsTiCC light curves (run by bench/device_check.sh on a
machine with an NVIDIA GPU).

    python bench/raster_gpu.py [--store STORE] [--objects 1000000]

The training store's objects tiled to ``--objects`` and gathered into device memory (real light
curves: synthetic ones are about 1.8x cheaper to draw). For each image kind and geometry (the
model's 60 x 16, RasterSpec's default, and the finer 180 x 32), kernel time only (inputs already
on the device, synchronised):
  cupy            kernels/raster.cu
  numba-cuda      the Numba CUDA kernels (host inputs: its copy to the device is counted)
  heatmap before  the heatmap kernel as it was before issue 11 (bench/raster_before.cu), side by
                  side in the same run, with the speed-up and the largest difference of their
                  images relative to the image's peak (the same math: rounding only)
and the device's ceilings (a large device-to-device copy, a float32 matrix product).
Target (issue 11): the heatmap kernel >= 3x the one before, identical results.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from stores import plasticc_store  # bench/stores.py, beside this script


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


def heatmap_before(batch, spec, drawn):
    """The previous heatmap kernel on the same device batch, with the t_ref and scale that
    ``prepare_objects`` (unchanged) gave the current one."""
    import cupy as cp

    from snia.raster.cupy import MAX_BLOCKS
    from snia.raster.spec import observation_wavelengths

    source = (Path(__file__).parent / "raster_before.cu").read_text()
    kernel = cp.RawModule(code=source, options=("-std=c++17",)).get_function("heatmap_image_before")
    n = len(batch.object_id)
    longest = int(cp.diff(batch.offsets).max())
    tile = max(1, min(longest, 2048))  # its 20 bytes per observation: 40 KiB at most
    wave = observation_wavelengths(batch, spec, cp)
    out = cp.empty((n, *spec.shape), cp.float32)
    _, height, width = spec.shape
    zfac = cp.ones(n, cp.float64)

    def run():
        kernel((min(n, MAX_BLOCKS),), (256,),
               (batch.offsets, batch.obs["time"], wave, batch.obs["flux"], batch.obs["flux_err"],
                drawn.t_ref, drawn.scale, zfac, np.int32(n), np.int32(height), np.int32(width),
                np.float64(spec.t_before), np.float64(spec.dt), np.float64(spec.wave_min),
                np.float64(spec.dwave), np.float64(spec.sigma_time), np.float64(spec.sigma_wave),
                np.float64(spec.support), np.int32(tile), out),
               shared_mem=tile * 20)
    return run, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store")
    parser.add_argument("--objects", type=int, default=1_000_000)
    args = parser.parse_args()

    import tempfile

    import cupy as cp

    from snia.raster import available_backends, rasterize, spec_for_store
    from snia.raster.cupy import rasterize_on_device
    from snia.store import Store
    from snia.store.resident import ResidentStore

    if "cupy" not in available_backends():
        raise SystemExit("no GPU backend available (needs CuPy and an NVIDIA GPU)")
    copy_gbs, matmul_gflops = ceilings()
    print(f"device ceilings: copy {copy_gbs:,.0f} GB/s, float32 matmul {matmul_gflops:,.0f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp, \
            Store(plasticc_store("plasticc_train", args.store, Path(tmp))) as store:
        resident = ResidentStore(store, xp=cp)
        order = np.arange(args.objects) % len(store)
        longest = int(store.objects["length"].max())
        print(f"{args.objects:,} real light curves ({len(store):,} tiled) at 60x16, a fifth of "
              f"them at 180x32 (its images take 6x the memory)")
        numba = "numba-cuda" in available_backends()
        host = ResidentStore(store).batch(order[:100_000]) if numba else None
        print(f"  {'kind':<9}{'geometry':<10}{'kernel':<16}{'LC/s':>14}")
        fine = {"n_time": 180, "n_wave": 32}  # 1-day x 250 A pixels
        for geometry, count in (({}, args.objects), (fine, args.objects // 5)):
            device = resident.batch(order[:count])  # the tiled objects, on the device
            for kind in ("bands", "heatmap"):
                spec = spec_for_store(store, kind, **geometry)
                shape = f"{spec.shape[2]}x{spec.shape[1]}"
                drawn = rasterize_on_device(device, spec, longest)
                seconds = timed(lambda s=spec, b=device, o=drawn.images:
                                rasterize_on_device(b, s, longest, out=o))
                now = count / seconds
                print(f"  {kind:<9}{shape:<10}{'cupy':<16}{now:>14,.0f}")
                if numba:
                    seconds = timed(lambda s=spec: rasterize(host, s, "numba-cuda"), repeat=1)
                    print(f"  {kind:<9}{shape:<10}{'numba-cuda':<16}{len(host) / seconds:>14,.0f}")
                if kind == "heatmap":
                    run, before = heatmap_before(device, spec, drawn)
                    old = count / timed(run)
                    diff = largest_difference(before, drawn.images)
                    print(f"  {kind:<9}{shape:<10}{'before':<16}{old:>14,.0f}   now {now / old:.2f}x "
                          f"faster, largest difference {diff:.1e} of the image peak")
                del drawn
            del device


def largest_difference(before, now, chunk: int = 50_000) -> float:
    """max |before - now| / the image's peak |before|, over all images (in chunks: memory)."""
    import cupy as cp

    worst = 0.0
    for a in range(0, len(now), chunk):
        b, c = before[a:a + chunk], now[a:a + chunk]
        peak = cp.maximum(cp.abs(b).max(axis=(1, 2, 3), keepdims=True), 1e-30)
        worst = max(worst, float((cp.abs(b - c) / peak).max()))
    return worst


if __name__ == "__main__":
    main()
