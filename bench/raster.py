"""Rasterization benchmark: light curves per second per backend and image kind, side by side.

    python bench/raster.py [--objects 2000] [--numpy-sample 200] [--gp-sample 20]

On real PLAsTiCC training-set objects (ingested into a temporary store if needed). Prints LC/s of
every available backend for both kinds, the ratio of the `cpu` backend to the NumPy reference,
and to a SCONE-style heatmap: a per-object 2-D Gaussian process over (time, wavelength)
(scikit-learn GaussianProcessRegressor, kernel hyperparameters fitted per object as SCONE does)
predicted on the same grid. Targets on a 2-core machine: cpu >= 20x NumPy, >= 100x the GP.
Slow methods run on a sample of the same objects; LC/s is per object either way.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def load_batch(data: Path, n: int, tmp: Path):
    from snia.ingest import run_ingest
    from snia.store import Store

    store_path = REPO / "results" / "stores" / "plasticc_train.h5"  # written by make run
    if not store_path.exists():
        from snia.data import fetch_plasticc

        fetch_plasticc(data)
        store_path = tmp / "train.h5"
        run_ingest("plasticc", [data / "plasticc_train_lightcurves.csv"], store_path,
                   [data / "plasticc_train_metadata.csv"], progress=False)
    store = Store(store_path)
    return store, store.batch(slice(0, n))


def rate(fn, n_objects: int, repeat: int = 3) -> float:
    """Best-of-``repeat`` light curves per second of ``fn`` (after one untimed warm-up call)."""
    fn()
    best = min(_timed(fn) for _ in range(repeat))
    return n_objects / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def subset(batch, n: int):
    from snia.lightcurve import Batch

    stop = batch.offsets[n]
    return Batch(batch.object_id[:n], batch.offsets[:n + 1],
                 {k: v[:stop] for k, v in batch.obs.items()},
                 {k: v[:n] for k, v in batch.meta.items()})


def gp_heatmap(batch, spec) -> None:
    """SCONE-style heatmaps: fit a 2-D GP (time, wavelength) per object, predict on the grid."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    from snia.raster import rasterize_numpy

    t_ref = rasterize_numpy(batch, spec).t_ref  # same reference times as ours
    t_grid = -spec.t_before + (np.arange(spec.n_time) + 0.5) * spec.dt
    w_grid = spec.wave_min + (np.arange(spec.n_wave) + 0.5) * spec.dwave
    grid = np.stack(np.meshgrid(t_grid, w_grid), axis=-1).reshape(-1, 2)
    wavelengths = np.asarray(spec.wavelengths)
    for i in range(len(batch)):
        lc = batch.lightcurve(i)
        x = np.stack([lc["time"] - t_ref[i], wavelengths[lc["band"]]], axis=1)
        y, e = lc["flux"].astype(float), lc["flux_err"].astype(float)
        kernel = ConstantKernel(max(y.var(), 1.0)) * RBF(length_scale=[20.0, 6000.0],
                                                         length_scale_bounds=(1.0, 1e5))
        gp = GaussianProcessRegressor(kernel, alpha=e ** 2, normalize_y=True)
        with warnings.catch_warnings():  # hyperparameters at their bounds on flat light curves
            warnings.simplefilter("ignore")
            gp.fit(x, y)
        gp.predict(grid, return_std=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "plasticc")
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--numpy-sample", type=int, default=200)
    parser.add_argument("--gp-sample", type=int, default=20)
    args = parser.parse_args()

    from snia.raster import available_backends, rasterize, spec_for_store

    with tempfile.TemporaryDirectory() as tmp:
        store, batch = load_batch(args.data, args.objects, Path(tmp))
        backends = available_backends()
        print(f"{len(batch)} PLAsTiCC objects, {batch.offsets[-1]:,} observations; backends "
              f"here: {', '.join(backends)}")
        print(f"  {'kind':<9}{'backend':<12}{'objects timed':>14}{'LC/s':>14}")
        rates = {}
        for kind in ("bands", "heatmap"):
            spec = spec_for_store(store, kind)
            for backend in backends:
                n = min(args.numpy_sample, len(batch)) if backend == "numpy" else len(batch)
                part = subset(batch, n)
                rates[kind, backend] = rate(lambda p=part, s=spec, b=backend: _sync(rasterize(p, s, b)), n)
                print(f"  {kind:<9}{backend:<12}{n:>14,}{rates[kind, backend]:>14,.0f}")
            if kind == "heatmap":
                n = min(args.gp_sample, len(batch))
                part = subset(batch, n)
                rates[kind, "gp"] = rate(lambda p=part, s=spec: gp_heatmap(p, s), n, repeat=1)
                print(f"  {kind:<9}{'2-D GP':<12}{n:>14,}{rates[kind, 'gp']:>14,.1f}")
        print()
        for kind in ("bands", "heatmap"):
            r = rates[kind, "cpu"] / rates[kind, "numpy"]
            print(f"  {kind}: cpu / NumPy reference = {r:7.1f}x  (target >= 20x: "
                  f"{'met' if r >= 20 else 'MISSED'})")
        r = rates["heatmap", "cpu"] / rates["heatmap", "gp"]
        print(f"  heatmap: cpu / 2-D GP heatmap = {r:7.0f}x  (target >= 100x: "
              f"{'met' if r >= 100 else 'MISSED'})")
        store.close()


def _sync(result):
    """Wait for device work so GPU timings are real (no-op on the CPU)."""
    try:
        import cupy

        cupy.cuda.Device().synchronize()
    except Exception:  # noqa: BLE001 - no cupy or no GPU
        pass
    return result


if __name__ == "__main__":
    main()
