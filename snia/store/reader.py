"""Reading a store: ``Store`` gives objects and ragged batches without loading the file whole.

The per-object table (a few tens of bytes per object) is read once; observations are read per
object or per batch (one contiguous read for a slice). A virtual store whose shard files are missing
is refused: HDF5 itself would quietly return fill values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from snia.bands import BandRegistry
from snia.lightcurve import OBS_DTYPES, Batch, offsets_from_lengths
from snia.store.schema import SCHEMA_VERSION

SCAN_BLOCK = 1 << 24


def scan(ds, fn) -> None:
    """Call fn(block) over a 1-D dataset in fixed-size blocks (bounded memory on huge stores)."""
    for a in range(0, ds.shape[0], SCAN_BLOCK):
        fn(ds[a:a + SCAN_BLOCK])


def missing_sources(f) -> list[str]:
    """Shard files a virtual store points at that are not on disk (HDF5 would read fill values)."""
    missing = set()
    for group in ("observations", "objects"):
        for name in f[group]:
            ds = f[group][name]
            if ds.is_virtual:
                for source in ds.virtual_sources():
                    path = Path(source.file_name)
                    if not path.is_absolute():
                        path = Path(f.filename).parent / path
                    if not path.exists():
                        missing.add(str(path))
    return sorted(missing)


class Store:
    """Read access to a light-curve store without loading it whole.

    The per-object table (a few tens of bytes per object) is read on first use; observations are
    read per object or per batch.
    """

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        self.file = h5py.File(self.path, "r")
        version = int(self.file.attrs.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise ValueError(f"{self.path}: store schema version {version}, this snia reads "
                             f"{SCHEMA_VERSION}")
        missing = missing_sources(self.file)
        if missing:
            self.file.close()
            raise FileNotFoundError(
                f"{self.path} is a virtual store and its shard file(s) are missing ({missing[0]}"
                f"{' ...' if len(missing) > 1 else ''}): keep the store and its "
                f"'{self.path.name}.shards' folder together when moving or copying it")
        self._objects: dict[str, np.ndarray] | None = None
        self._order: np.ndarray | None = None
        self._bands_present: tuple[int, ...] | None = None

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return int(self.file.attrs["n_objects"])

    @property
    def n_observations(self) -> int:
        return int(self.file.attrs["n_observations"])

    @property
    def objects(self) -> dict[str, np.ndarray]:
        if self._objects is None:
            self._objects = {k: self.file["objects"][k][...] for k in self.file["objects"]}
        return self._objects

    @property
    def bands(self) -> BandRegistry:
        return BandRegistry.from_table(self.file["bands"][...])

    def bands_present(self) -> tuple[int, ...]:
        """Registry indices of the bands that have observations, in registry order (one scan of
        observations/band in bounded blocks, then cached)."""
        if self._bands_present is None:
            present = np.zeros(len(self.bands), dtype=bool)
            scan(self.file["observations/band"], lambda block: present.__setitem__(
                np.unique(block), True))
            self._bands_present = tuple(int(b) for b in np.flatnonzero(present))
        return self._bands_present

    @property
    def provenance(self) -> dict:
        return json.loads(bytes(self.file.attrs["provenance"]).decode())

    @property
    def split_names(self) -> list[str]:
        return json.loads(bytes(self.file.attrs["split_names"]).decode())

    def index_of(self, object_id: int) -> int:
        ids = self.objects["object_id"]
        if self._order is None:
            self._order = np.argsort(ids, kind="stable")
        k = np.searchsorted(ids, object_id, sorter=self._order)
        if k == len(ids) or ids[self._order[k]] != object_id:
            raise KeyError(f"object {object_id} is not in {self.path}")
        return int(self._order[k])

    def lightcurve(self, object_id: int) -> dict:
        """One object's observations and metadata, by object id."""
        i = self.index_of(object_id)
        batch = self.batch(np.array([i]))
        out = batch.lightcurve(0)
        out.update({k: v[0] for k, v in batch.meta.items()}, object_id=int(object_id))
        return out

    def batch(self, selection) -> Batch:
        """Objects by index: a slice (one contiguous read) or an array of indices (any order)."""
        objs = self.objects
        if isinstance(selection, slice):
            idx = np.arange(len(self))[selection]
        else:
            idx = np.asarray(selection, dtype=np.int64)
        offsets = offsets_from_lengths(objs["length"][idx])
        obs_group = self.file["observations"]
        if len(idx) and np.all(np.diff(idx) == 1):
            lo = objs["offset"][idx[0]]
            hi = lo + offsets[-1]
            obs = {k: obs_group[k][lo:hi] for k in OBS_DTYPES}
        else:
            obs = {k: np.empty(offsets[-1], dtype=OBS_DTYPES[k]) for k in OBS_DTYPES}
            for k in OBS_DTYPES:
                ds = obs_group[k]
                for j, i in enumerate(idx):
                    lo = objs["offset"][i]
                    obs[k][offsets[j]:offsets[j + 1]] = ds[lo:lo + objs["length"][i]]
        meta = {k: objs[k][idx] for k in objs if k not in ("object_id", "offset", "length")}
        return Batch(object_id=objs["object_id"][idx], offsets=offsets, obs=obs, meta=meta)

    def iter_batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, min(start + batch_size, len(self))))
