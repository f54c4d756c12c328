"""Writing a store: per-rank shard files, then the store file over them (virtual or collective).

Each rank appends cleaned chunks to its own shard (resizable, chunked datasets with HDF5's
fletcher32 filter; memory bounded by a chunk) and checksums every dataset as it goes (sha256 of
the bytes, an attribute of the dataset). The store file is then either HDF5 virtual datasets over
the shards, written by one rank with stock h5py, or one file all ranks write collectively with
parallel HDF5; either way each of its datasets records the shards' checksums as its parts, so no
byte is hashed twice. Text attributes are fixed-length byte strings, so both ways can write them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from snia import __version__, taxonomy
from snia.files import atomic_path
from snia.lightcurve import META_DTYPES, OBS_DTYPES, Batch, offsets_from_lengths
from snia.parallel import MAX
from snia.store.schema import (
    BANDS_PRESENT_ATTR,
    CHECKSUM_ATTR,
    DATASETS,
    HASH_BLOCK,
    OBJ_CHUNK,
    OBJ_FLUSH,
    OBJECT_DTYPES,
    OBS_CHUNK,
    PARTS_ATTR,
    SCHEMA_VERSION,
    parts_attr,
    read_checksum,
    text_attr,
    update_digest,
)


class ShardWriter:
    """Appends cleaned chunks to one rank's shard file (resizable, chunked datasets).

    Every dataset is checksummed as it is written (``objects/offset`` when its values become
    global, in ``shift_offsets``); ``close`` stores the digests as ``sha256`` attributes and
    leaves them in ``checksums``."""

    def __init__(self, path: str | Path, compression: str | None = None):
        import h5py

        self.path = Path(path)
        self.file = h5py.File(self.path, "w")
        self.n_obs = 0
        self.n_objects = 0
        self._pending: list[dict] = []  # object rows not yet written (few HDF5 calls per flush)
        self._open: dict = {}  # (group, name) -> dataset, see _dataset
        self._written_objects = 0
        # offsets are checksummed once final (shift_offsets): they change when made global
        self._digests = {name: hashlib.sha256() for name in DATASETS if name != "objects/offset"}
        self.checksums: dict[str, str] = {}
        opts = {"compression": compression} if compression else {}
        for group, dtypes, chunk in (("observations", OBS_DTYPES, OBS_CHUNK),
                                     ("objects", OBJECT_DTYPES, OBJ_CHUNK)):
            g = self.file.create_group(group)
            for name, dtype in dtypes.items():
                # fletcher32: HDF5 itself refuses to return a chunk whose bytes changed on disk
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,),
                                 fletcher32=True, **opts)

    def append(self, chunk: Batch) -> None:
        if chunk.n_objects == 0:
            return
        self._pending.append({"object_id": chunk.object_id, "offset": self.n_obs + chunk.offsets[:-1],
                              "length": chunk.length, **chunk.meta})
        self._extend("observations", chunk.obs, self.n_obs, chunk.n_obs)
        self.n_obs += chunk.n_obs
        self.n_objects += chunk.n_objects
        if self.n_objects - self._written_objects >= OBJ_FLUSH:
            self._flush()
        # a full disk raises here, naming its errno, instead of in a dataset's destructor, where
        # h5py can only print it (and HDF5 crashes later)
        self.file.flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        columns = {k: np.concatenate([p[k] for p in self._pending]) for k in self._pending[0]}
        n = len(columns["object_id"])
        self._extend("objects", columns, self._written_objects, n)
        self._written_objects += n
        self._pending = []

    def _extend(self, group: str, columns: dict, start: int, n: int) -> None:
        for name, values in columns.items():
            ds = self._dataset(group, name)
            values = np.asarray(values, dtype=ds.dtype)
            ds.resize((start + n,))
            ds[start:start + n] = values
            digest = self._digests.get(f"{group}/{name}")
            if digest is not None:
                update_digest(digest, values)

    def _dataset(self, group: str, name: str):
        """Datasets stay open while writing: one closed mid-run flushes its chunks in h5py's
        destructor, where a full disk can only be printed (and leaves HDF5 to crash later)."""
        if (group, name) not in self._open:
            self._open[group, name] = self.file[group][name]
        return self._open[group, name]

    @classmethod
    def reopen(cls, path: Path, n_objects: int, n_obs: int) -> "ShardWriter":
        """Open an existing shard again (after compaction) to patch it."""
        import h5py

        self = cls.__new__(cls)
        self.path, self.file = Path(path), h5py.File(path, "r+")
        self.n_objects, self.n_obs = n_objects, n_obs
        self._pending, self._written_objects, self._open = [], n_objects, {}
        self._digests, self.checksums = {}, {}  # the other datasets' checksums are in the file
        return self

    def shift_offsets(self, base: int) -> None:
        """Make object offsets global (base = observations held by lower ranks) and checksum them."""
        self._flush()
        ds = self.file["objects/offset"]
        digest = hashlib.sha256()
        for a in range(0, self.n_objects, HASH_BLOCK):
            b = min(a + HASH_BLOCK, self.n_objects)
            values = ds[a:b]
            if base:
                values += base
                ds[a:b] = values
            update_digest(digest, values)
        self._digests["objects/offset"] = digest

    def close(self) -> None:
        if self.file:
            self._flush()
            for name, digest in self._digests.items():
                self.file[name].attrs[CHECKSUM_ATTR] = text_attr(digest.hexdigest())
            self.checksums = {name: read_checksum(self.file[name]) for name in DATASETS}
            self._open = {}
            self.file.close()


def compact_shard(path: Path, drop_objects: np.ndarray, compression: str | None = None) -> tuple[int, int]:
    """Rewrite a shard without the objects at local indices ``drop_objects``; returns new counts."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(path, "r") as src:
        objs = {k: src["objects"][k][...] for k in OBJECT_DTYPES}
        keep = np.ones(len(objs["object_id"]), dtype=bool)
        keep[drop_objects] = False
        writer = ShardWriter(tmp, compression)
        obs_keep = np.repeat(keep, objs["length"])
        # Streams by object batches so a big shard never has to fit in memory at once.
        step = OBJ_CHUNK * 8
        for a in range(0, len(keep), step):
            b = min(a + step, len(keep))
            lo = objs["offset"][a]
            hi = objs["offset"][b - 1] + objs["length"][b - 1]
            k = keep[a:b]
            ok = obs_keep[lo:hi]
            writer.append(Batch(
                object_id=objs["object_id"][a:b][k],
                offsets=offsets_from_lengths(objs["length"][a:b][k]),
                obs={n: src["observations"][n][lo:hi][ok] for n in OBS_DTYPES},
                meta={n: objs[n][a:b][k] for n in META_DTYPES}))
        counts = writer.n_objects, writer.n_obs
        writer.close()
    return counts


def root_attributes(provenance: dict, n_objects: int, n_obs: int, layout: str,
                    split_names: list[str], bands_present=None) -> dict:
    """The store file's attributes; ``bands_present`` (registry indices of the bands with
    observations, found at ingest) spares every reader a scan of observations/band."""
    attrs = {"schema_version": SCHEMA_VERSION, "snia_version": text_attr(__version__),
             "n_objects": np.int64(n_objects), "n_observations": np.int64(n_obs),
             "layout": text_attr(layout), "split_names": text_attr(json.dumps(split_names)),
             "provenance": text_attr(json.dumps(provenance, indent=1))}
    if bands_present is not None:
        attrs[BANDS_PRESENT_ATTR] = text_attr(json.dumps(sorted(int(b) for b in bands_present)))
    return attrs


def _write_tables(f, bands) -> None:
    for name, table in (("bands", bands.table()), ("taxonomy", taxonomy.table())):
        ds = f.create_dataset(name, data=table)
        digest = hashlib.sha256()
        # in the dtype a reader gets back; no read here (collective writers would need a sync)
        update_digest(digest, np.asarray(table).astype(ds.dtype))
        ds.attrs[CHECKSUM_ATTR] = text_attr(digest.hexdigest())


def _parts(name: str, rows: list[int], checksums: list[dict] | None) -> list[tuple[int, int, str]]:
    """(first row, rows, sha256) of each shard's slice of dataset ``name`` (rank order)."""
    if checksums is None:
        return []
    starts = np.concatenate(([0], np.cumsum(rows)[:-1])) if rows else []
    return [(a, n, sums.get(name)) for a, n, sums in zip(starts, rows, checksums)]


def write_virtual_store(path: Path, shards: list[tuple[Path, int, int]], bands, attrs: dict,
                        relative_to: Path | None = None, checksums: list[dict] | None = None) -> None:
    """Write the store file whose datasets are virtual datasets over the shards.

    ``shards``: (shard path, n_objects, n_obs) in rank order. Source paths are stored relative to
    the store's folder (``relative_to``, default: ``path``'s folder), so the store file and its
    shard folder move together. ``checksums``: each shard's {dataset: sha256} (ShardWriter's
    ``checksums``), recorded as each store dataset's ``sha256_parts``.
    """
    import h5py

    base = Path(relative_to) if relative_to is not None else path.parent
    # libver v110+: virtual datasets, and large attributes (provenance) in dense storage.
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        for group, dtypes, count_index in (("observations", OBS_DTYPES, 2), ("objects", OBJECT_DTYPES, 1)):
            g = f.create_group(group)
            rows = [s[count_index] for s in shards]
            total = sum(rows)
            for name, dtype in dtypes.items():
                layout = h5py.VirtualLayout(shape=(total,), dtype=dtype, maxshape=(total,))
                start = 0
                for shard_path, *counts in shards:
                    n = counts[count_index - 1]
                    if n:
                        rel = os.path.relpath(shard_path, base)
                        layout[start:start + n] = h5py.VirtualSource(rel, f"{group}/{name}", shape=(n,))
                    start += n
                ds = g.create_virtual_dataset(name, layout, fillvalue=_fill(dtype))
                if checksums is not None:
                    ds.attrs[PARTS_ATTR] = parts_attr(_parts(f"{group}/{name}", rows, checksums))
        _write_tables(f, bands)
        f.attrs.update(attrs)


def _fill(dtype):
    return np.nan if np.issubdtype(dtype, np.floating) else -1


def write_collective_store(path: Path, comm, shard: Path, counts: tuple[int, int], bands, attrs: dict,
                           compression: str | None, block: int = 1 << 20) -> None:
    """All ranks write one store file with parallel HDF5 (``driver='mpio'``), copying their shard
    into their slice with collective writes (required for compressed datasets)."""
    import h5py

    n_objects, n_obs = counts
    obj_base = comm.exscan(n_objects) or 0
    obs_base = comm.exscan(n_obs) or 0
    totals = (comm.allreduce(n_objects), comm.allreduce(n_obs))
    with h5py.File(shard, "r") as src:
        sums = {name: read_checksum(src[name]) for name in DATASETS}
    # Every rank needs every part: attributes are written collectively, with identical values.
    # No fletcher32 here: filters under parallel HDF5 need collective chunked writes (HDF5 >=
    # 1.10.2), untested without a parallel h5py build; the sha256 parts cover the data.
    everyone = comm.allgather(((n_objects, n_obs), sums))
    obj_rows = [c[0] for c, _ in everyone]
    obs_rows = [c[1] for c, _ in everyone]
    shard_sums = [s for _, s in everyone]
    opts = {"compression": compression} if compression else {}
    # libver v110+: large attributes (provenance of thousands of inputs) go to dense storage.
    with h5py.File(path, "w", driver="mpio", comm=comm.mpi_comm, libver=("v110", "latest")) as f, \
            h5py.File(shard, "r") as src:
        # Structural changes are collective: every rank creates every dataset identically.
        for group, dtypes, total, base, n, chunk, rows in (
                ("observations", OBS_DTYPES, totals[1], obs_base, n_obs, OBS_CHUNK, obs_rows),
                ("objects", OBJECT_DTYPES, totals[0], obj_base, n_objects, OBJ_CHUNK, obj_rows)):
            g = f.create_group(group)
            rounds = comm.allreduce(-(-n // block), op=MAX)
            for name, dtype in dtypes.items():
                ds = g.create_dataset(name, shape=(total,), dtype=dtype,
                                      chunks=(min(chunk, max(total, 1)),) if opts else None, **opts)
                ds.attrs[PARTS_ATTR] = parts_attr(_parts(f"{group}/{name}", rows, shard_sums))
                for r in range(rounds):
                    a, b = min(r * block, n), min((r + 1) * block, n)
                    with ds.collective:
                        ds[base + a:base + b] = src[group][name][a:b]
        _write_tables(f, bands)
        for key, value in attrs.items():
            f.attrs[key] = value
