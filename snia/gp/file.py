"""A store's GP fits, kept beside it: ``STORE.gp.h5``, written once, checked against the store.

Layout: /objects/{object_id, amplitude, time_scale, peak_time, nll, n_fitted, failed} one row per
object of the store, in its order; /observations/alpha one row per observation of the store, in
its order (the GP mean's weights, see ``snia.gp.fit``; 0 outside the fitted window); attributes
``settings`` (JSON of ``GPSettings``), ``store`` (its path when fitted) and ``store_checksums``
(JSON: the store's recorded ``sha256_parts`` of the datasets the fit read, with its object and
observation counts). A fit is only used with the store it was made from: ``read_fits`` compares
the checksums and refuses a mismatch by name, so a re-ingested store cannot be paired with stale fits.
The file is published atomically (``snia.files.atomic_path``): one that exists is complete.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from snia.errors import StoreError
from snia.files import atomic_path
from snia.gp.fit import GPSettings, fit_batch
from snia.store import Store
from snia.store.schema import read_parts

log = logging.getLogger(__name__)

OBJECT_FIELDS = {"object_id": np.int64, "amplitude": np.float64, "time_scale": np.float64,
                 "peak_time": np.float64, "nll": np.float64, "n_fitted": np.int32,
                 "failed": np.bool_}
# the store datasets a fit reads: a change to any of them makes the fit stale
FITTED_FROM = ("objects/object_id", "objects/length", "observations/time", "observations/band",
               "observations/flux", "observations/flux_err")


def default_path(store_path) -> Path:
    """``results/stores/x.h5`` -> ``results/stores/x.gp.h5``."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.stem + ".gp.h5")


def store_checksums(store: Store) -> dict:
    with store.reading("its checksums"):
        parts = {name: read_parts(store.file[name]) for name in FITTED_FROM}
    return {"n_objects": len(store), "n_observations": store.n_observations, "sha256_parts": parts}


def observation_wavelengths(store: Store, batch) -> np.ndarray:
    wavelengths = np.array([b.wavelength for b in store.bands.bands], dtype=np.float64)
    return wavelengths[batch.obs["band"]]


def fit_store(store_path, out_path=None, settings: GPSettings | None = None, device: str = "cpu",
              chunk: int = 4096, progress: bool = True) -> dict:
    """Fit every object of a store, ``chunk`` objects read at a time (memory bounded by the chunk,
    not the store), and write the fits beside it. Returns a summary (objects, failed, seconds)."""
    from tqdm import tqdm

    settings = settings or GPSettings()
    out_path = Path(out_path) if out_path else default_path(store_path)
    import h5py

    started = time.perf_counter()
    with Store(store_path) as store, atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        n, n_obs = len(store), store.n_observations
        objects = {k: f.create_dataset(f"objects/{k}", shape=(n,), dtype=v)
                   for k, v in OBJECT_FIELDS.items()}
        alpha = f.create_dataset("observations/alpha", shape=(n_obs,), dtype=np.float64)
        bar = tqdm(total=n, unit=" LC", desc=f"gp fit ({device})", disable=not progress,
                   file=sys.stderr, mininterval=1.0)
        failed = 0
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            batch = store.batch(slice(start, stop))
            fits = fit_batch(batch, observation_wavelengths(store, batch), settings, device)
            first = int(store.objects["offset"][start])
            alpha[first:first + len(fits["alpha"])] = fits["alpha"]
            objects["object_id"][start:stop] = batch.object_id
            for k in OBJECT_FIELDS:
                if k != "object_id":
                    objects[k][start:stop] = fits[k]
            failed += int(fits["failed"].sum())
            bar.update(stop - start)
            log.info("gp fit: %d of %d objects (%.0f%%), %d failed", stop, n, 100 * stop / n, failed)
        bar.close()
        f.attrs["settings"] = np.bytes_(json.dumps(asdict(settings)).encode())
        f.attrs["store"] = np.bytes_(str(Path(store_path).resolve()).encode())
        f.attrs["store_checksums"] = np.bytes_(json.dumps(store_checksums(store)).encode())
    seconds = time.perf_counter() - started
    return {"objects": n, "failed": failed, "seconds": seconds, "path": str(out_path)}


@dataclass
class GPFits:
    """A store's fits in memory (a few tens of bytes per object and 8 per observation)."""
    settings: GPSettings
    objects: dict[str, np.ndarray]
    alpha: np.ndarray


def read_fits(path, store: Store) -> GPFits:
    """The fits of ``store`` from ``path``, refused (``StoreError`` naming both files) when they
    were made from another store or the file is not a GP fit file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no GP fits (make them with `snia gp fit {store.path}`)")
    try:
        with h5py.File(path, "r") as f:
            recorded = json.loads(bytes(f.attrs["store_checksums"]).decode())
            settings = GPSettings(**json.loads(bytes(f.attrs["settings"]).decode()))
            objects = {k: f[f"objects/{k}"][...] for k in OBJECT_FIELDS}
            alpha = f["observations/alpha"][...]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"{path}: not a readable GP fit file ({exc})") from None
    # JSON turns the parts' tuples into lists: compare in that form
    current = json.loads(json.dumps(store_checksums(store)))
    if recorded != current:
        raise StoreError(f"{path}: fitted to another store than {store.path} (its objects or "
                         f"observations differ); fit again with `snia gp fit {store.path}`")
    return GPFits(settings=settings, objects=objects, alpha=alpha)
