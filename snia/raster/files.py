"""Stores in, image files out: the spec a store calls for, and a whole store rasterized to HDF5.

``rasterize_store`` streams the store batch by batch, so memory stays bounded however large the
store; the image file is published atomically (``snia.files.atomic_path``): one that exists is
complete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from snia.config_file import read_section
from snia.errors import ConfigError
from snia.files import atomic_path
from snia.raster.dispatch import available_backends, rasterize
from snia.raster.spec import DEFAULT_KIND, GEOMETRY_FIELDS, RasterSpec, to_host
from snia.store import Store


def geometry_from_file(path) -> dict:
    """Image-geometry keys of a YAML config's ``raster:`` section, as RasterSpec arguments (keys
    left out keep RasterSpec's defaults, the shipped model's images); anything else, and a bad
    value, is a ConfigError naming the file and the key."""
    if path is None:
        return {}
    section = read_section(path, "raster") or {}
    image_keys = (*GEOMETRY_FIELDS, "bands")  # rows of a bands image: registry indices
    unknown = set(section) - set(image_keys)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} under 'raster:' "
                          f"(image settings: {sorted(image_keys)})")
    spec = RasterSpec.from_dict(section, where=f"{path}: raster")  # bad values, named here
    return {k: getattr(spec, k) for k in section}


def spec_for_store(store, kind: str = DEFAULT_KIND, **options) -> RasterSpec:
    """A spec whose wavelengths come from the store's band table and whose `bands` rows are the
    bands the store actually holds (in registry order)."""
    wavelengths = tuple(float(b.wavelength) for b in store.bands.bands)
    if "bands" not in options:
        options["bands"] = store.bands_present()
    return RasterSpec.from_dict({"kind": kind, "wavelengths": wavelengths, **options})


def rasterize_store(store_path, out_path, spec: RasterSpec | None = None, kind: str = DEFAULT_KIND,
                    backend: str = "auto", batch_size: int = 4096, progress: bool = True) -> dict:
    """Stream a store through ``rasterize`` into an HDF5 image file, batch by batch.

    Memory stays bounded by ``batch_size`` objects however large the store. The file has
    /images [N, C, H, W] float32 (one chunk per object), /scale, /t_ref, /object_id, /type,
    /split, and the spec as a JSON attribute; it is written under a temporary name and renamed
    at the end, so an image file that exists is complete.
    """
    import h5py
    from tqdm import tqdm

    out_path = Path(out_path)
    with Store(store_path) as store, atomic_path(out_path) as tmp:
        spec = spec or spec_for_store(store, kind)
        if backend == "auto":
            backend = available_backends()[0]
        n = len(store)
        with h5py.File(tmp, "w") as f:
            images = f.create_dataset("images", shape=(n, *spec.shape), dtype=np.float32,
                                      chunks=(1, *spec.shape))
            columns = {"scale": np.float32, "t_ref": np.float64, "object_id": np.int64,
                       "type": np.int8, "split": np.int8}
            ds = {k: f.create_dataset(k, shape=(n,), dtype=v) for k, v in columns.items()}
            bar = tqdm(total=n, unit=" LC", desc=f"rasterize ({backend})", disable=not progress,
                       file=sys.stderr, mininterval=1.0)
            for start in range(0, n, batch_size):
                batch = store.batch(slice(start, min(start + batch_size, n)))
                result = rasterize(batch, spec, backend)
                stop = start + len(batch)
                images[start:stop] = to_host(result.images)
                ds["scale"][start:stop] = to_host(result.scale)
                ds["t_ref"][start:stop] = to_host(result.t_ref)
                ds["object_id"][start:stop] = batch.object_id
                ds["type"][start:stop] = batch.meta["type"]
                ds["split"][start:stop] = batch.meta["split"]
                bar.update(len(batch))
            bar.close()
            f.attrs["spec"] = np.bytes_(json.dumps(spec.to_dict()).encode())
            f.attrs["store"] = np.bytes_(str(Path(store_path).resolve()).encode())
            f.attrs["backend"] = np.bytes_(backend.encode())
    return {"objects": n, "shape": spec.shape, "backend": backend, "path": str(out_path)}
