"""Reading a store: ``Store`` gives objects and ragged batches without loading the file whole.

The per-object table (a few tens of bytes per object) is read once; observations are read per
object or per batch (one contiguous read for a slice). Opening checks what is cheap to check, so a
damaged store is refused with a ``StoreError`` naming the file instead of being read wrongly:
the datasets and their row counts; for a virtual store that its shard files exist (HDF5 itself
would quietly return fill values), open as HDF5 and hold the datasets the store was written with
(their recorded checksums, attributes only); and, when the object table is first read, that
offsets are the running sum of lengths, lengths are positive and add up to the observations, and
types are codes of the taxonomy. Any HDF5 error while reading becomes a ``StoreError`` too.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from snia import stopping
from snia.bands import BandRegistry
from snia.errors import SniaError, StoreError
from snia.lightcurve import OBS_DTYPES, Batch, offsets_from_lengths
from snia.store.integrity import (  # noqa: F401 (check.py's names, read from here)
    HDF5_ERRORS,
    Source,
    missing_sources,
    source_problems,
    structure_problems,
    table_problems,
    virtual_sources,
)
from snia.store.schema import BANDS_PRESENT_ATTR, SCHEMA_VERSION

SCAN_BLOCK = 1 << 24


def scan(ds, fn) -> None:
    """Call fn(block) over a 1-D dataset in fixed-size blocks (bounded memory on huge stores)."""
    for a in range(0, ds.shape[0], SCAN_BLOCK):
        fn(ds[a:a + SCAN_BLOCK])


def band_codes(ds) -> np.ndarray:
    """The distinct codes of a band column (sorted), in one scan of bounded blocks."""
    found: set[int] = set()
    scan(ds, lambda block: found.update(np.unique(block).tolist()))
    return np.array(sorted(found), dtype=np.int64)


def shard_band_codes(path) -> np.ndarray:
    """The band codes a shard file's observations hold (what ingest records for the store)."""
    import h5py

    with h5py.File(path, "r") as f:
        return band_codes(f["observations/band"])


def corrupt(path, what: str) -> StoreError:
    """The one wording of a damaged store: the file, then what is wrong with it."""
    return StoreError(f"{path}: the store is corrupt: {what}")


@contextmanager
def reading(path, what: str):
    """Turn HDF5's errors while reading ``what`` of store ``path`` into a StoreError naming it."""
    try:
        yield
    except (SniaError, FileNotFoundError, PermissionError):
        raise  # ours, with their own message; a missing file is not a damaged one
    except HDF5_ERRORS as exc:
        raise corrupt(path, f"cannot read {what} ({exc})") from exc


def _refuse(path, problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more; see 'snia store verify')" if len(problems) > 1 else ""
        raise corrupt(path, problems[0] + more)


class Store:
    """Read access to a light-curve store without loading it whole.

    The per-object table (a few tens of bytes per object) is read on first use; observations are
    read per object or per batch. ``check=False`` skips the invariant checks (for ``verify``,
    which reports every broken one instead of refusing at the first).
    """

    def __init__(self, path: str | Path, check: bool = True):
        import h5py

        self.path = Path(path)
        self.check = check
        try:
            self.file = h5py.File(self.path, "r")
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except HDF5_ERRORS as exc:
            raise corrupt(self.path, f"cannot be read as HDF5 ({exc})") from exc
        try:
            self._open()
        except BaseException:
            self.file.close()
            raise
        self._objects: dict[str, np.ndarray] | None = None
        self._order: np.ndarray | None = None
        self._bands: BandRegistry | None = None
        self._bands_present: tuple[int, ...] | None = None

    def _open(self) -> None:
        with self.reading("its root attributes"):
            version = int(self.file.attrs.get("schema_version", -1))
            if version == -1:
                raise StoreError(f"{self.path} is not a snia store (no schema_version attribute)")
            if version != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: store schema version {version}, this snia reads "
                                 f"{SCHEMA_VERSION}")
            self._n_objects = int(self.file.attrs["n_objects"])
            self._n_obs = int(self.file.attrs["n_observations"])
        if not self.check:
            return
        with self.reading("its virtual datasets"):
            missing = missing_sources(self.file)
        if missing:
            raise FileNotFoundError(
                f"{self.path} is a virtual store and its shard file(s) are missing ({missing[0]}"
                f"{' ...' if len(missing) > 1 else ''}): keep the store and its "
                f"'{self.path.name}.shards' folder together when moving or copying it")
        with self.reading("its datasets"):
            _refuse(self.path, structure_problems(self.file, self._n_objects, self._n_obs))
            _refuse(self.path, source_problems(self.file))

    def reading(self, what: str):
        """Context: HDF5 errors while reading ``what`` become a StoreError naming this store."""
        return reading(self.path, what)

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return self._n_objects

    @property
    def n_observations(self) -> int:
        return self._n_obs

    @property
    def layout(self) -> str:
        with self.reading("its root attributes"):
            return bytes(self.file.attrs["layout"]).decode()

    @property
    def objects(self) -> dict[str, np.ndarray]:
        if self._objects is None:
            with self.reading("the objects table"):
                objects = {k: self.file["objects"][k][...] for k in self.file["objects"]}
            if self.check:
                _refuse(self.path, table_problems(objects, self._n_obs))
            self._objects = objects
        return self._objects

    @property
    def bands(self) -> BandRegistry:
        if self._bands is None:
            with self.reading("the bands table"):
                self._bands = BandRegistry.from_table(self.file["bands"][...])
        return self._bands

    def bands_present(self) -> tuple[int, ...]:
        """Registry indices of the bands that have observations, in registry order: as recorded
        at ingest, else (a store written before that was recorded) found by a scan; cached."""
        if self._bands_present is None:
            recorded = self.recorded_bands_present()
            self._bands_present = self.scan_bands_present() if recorded is None else recorded
        return self._bands_present

    def recorded_bands_present(self) -> tuple[int, ...] | None:
        """The ``bands_present`` attribute ingest wrote (None when the store has none)."""
        with self.reading(f"its {BANDS_PRESENT_ATTR} attribute"):
            value = self.file.attrs.get(BANDS_PRESENT_ATTR)
            if value is None:
                return None
            codes = tuple(int(b) for b in json.loads(bytes(value).decode()))
        self._check_band_codes(codes, f"the {BANDS_PRESENT_ATTR} attribute")
        return codes

    def scan_bands_present(self) -> tuple[int, ...]:
        """The bands with observations, by one scan of observations/band in bounded blocks."""
        with self.reading("observations/band"):
            codes = tuple(int(b) for b in band_codes(self.file["observations/band"]))
        self._check_band_codes(codes, "observations/band")
        return codes

    def _check_band_codes(self, codes, where: str) -> None:
        bad = [b for b in codes if not 0 <= b < len(self.bands)]
        if bad:
            raise corrupt(self.path, f"band code {bad[0]} in {where} is outside the bands table "
                                     f"(0..{len(self.bands) - 1})")

    @property
    def provenance(self) -> dict:
        with self.reading("its provenance attribute"):
            return json.loads(bytes(self.file.attrs["provenance"]).decode())

    @property
    def split_names(self) -> list[str]:
        with self.reading("its split_names attribute"):
            return json.loads(bytes(self.file.attrs["split_names"]).decode())

    def rows_of(self, object_ids) -> np.ndarray:
        """Each object id's row in the store, -1 for an id it does not hold."""
        ids = self.objects["object_id"]
        wanted = np.asarray(object_ids, dtype=np.int64)
        if not len(ids):
            return np.full(len(wanted), -1, dtype=np.int64)
        if self._order is None:
            self._order = np.argsort(ids, kind="stable")
        rows = self._order[np.minimum(np.searchsorted(ids, wanted, sorter=self._order), len(ids) - 1)]
        return np.where(ids[rows] == wanted, rows, -1)

    def index_of(self, object_id: int) -> int:
        row = int(self.rows_of([object_id])[0])
        if row < 0:
            raise KeyError(f"object {object_id} is not in {self.path}")
        return row

    def lightcurve(self, object_id: int) -> dict:
        """One object's observations and metadata, by object id."""
        i = self.index_of(object_id)
        batch = self.batch(np.array([i]))
        out = batch.lightcurve(0)
        out.update({k: v[0] for k, v in batch.meta.items()}, object_id=int(object_id))
        return out

    def batch(self, selection, columns=tuple(OBS_DTYPES)) -> Batch:
        """Objects by index: a slice (one contiguous read) or an array of indices (any order).
        ``columns``: the observation columns to read (a reader that needs fewer reads less)."""
        stopping.check()  # every command reads through here: stop on a signal whose exception was lost
        objs = self.objects
        if isinstance(selection, slice):
            idx = np.arange(*selection.indices(len(self)))  # the batch's rows, not all the store's
        else:
            idx = np.asarray(selection, dtype=np.int64)
        offsets = offsets_from_lengths(objs["length"][idx])
        with self.reading("observations"):
            obs_group = self.file["observations"]
            if len(idx) and np.all(np.diff(idx) == 1):
                lo = objs["offset"][idx[0]]
                obs = {k: obs_group[k][lo:lo + offsets[-1]] for k in columns}
            else:
                obs = {k: np.empty(offsets[-1], dtype=OBS_DTYPES[k]) for k in columns}
                for k in columns:
                    ds = obs_group[k]
                    for j, i in enumerate(idx):
                        lo = objs["offset"][i]
                        obs[k][offsets[j]:offsets[j + 1]] = ds[lo:lo + objs["length"][i]]
        meta = {k: objs[k][idx] for k in objs if k not in ("object_id", "offset", "length")}
        return Batch(object_id=objs["object_id"][idx], offsets=offsets, obs=obs, meta=meta)

    def block_bounds(self, observations: int, objects: int = 1) -> list[tuple[int, int]]:
        """Consecutive object ranges [start, stop) of about ``observations`` observations each,
        whole objects, a multiple of ``objects`` of them (but the last): the large contiguous
        reads that keep memory bounded by the block, not by the store, and that batches of
        ``objects`` cut from them are the batches cut from the whole store."""
        offset = self.objects["offset"]
        bounds, start = [], 0
        while start < len(self):
            stop = int(np.searchsorted(offset, offset[start] + observations, "right"))
            whole = max(-(-(stop - start) // objects), 1) * objects  # rounded up, at least one
            stop = min(start + whole, len(self))
            bounds.append((start, stop))
            start = stop
        return bounds

    def blocks(self, observations: int, columns=tuple(OBS_DTYPES), objects: int = 1):
        """The store as consecutive blocks of whole objects (``block_bounds``), one contiguous
        read of each of ``columns`` per block: (first object index, Batch)."""
        for start, stop in self.block_bounds(observations, objects):
            yield start, self.batch(slice(start, stop), columns)

    def iter_batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, min(start + batch_size, len(self))))
