"""The HDF5 light-curve store: layout, shard writer, final assembly and the reader API.

Layout (schema version 1; full spec in docs/store.md):
  /observations/{time, band, flux, flux_err, flag}   flat arrays, grouped by object, time-ordered
  /objects/{object_id, offset, length, type, source_type, ra, dec, ddf, hostgal_photoz,
            hostgal_photoz_err, specz, mwebv, split}  one row per object
  /bands, /taxonomy                                   registry tables (compound, fixed-length strings)
  root attributes: schema_version, snia_version, n_objects, n_observations, layout, split_names,
                   provenance (JSON text: inputs with sizes and sha256, ranks, options)
No variable-length types anywhere, so the same layout can be written collectively by parallel HDF5.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snia.lightcurve import META_DTYPES, OBS_DTYPES

SCHEMA_VERSION = 1
SPLIT_NAMES = ("train", "validation", "test")
OBJECT_DTYPES = {"object_id": np.int64, "offset": np.int64, "length": np.int64, **META_DTYPES}
OBS_CHUNK = 1 << 16
OBJ_CHUNK = 1 << 13
OBJ_FLUSH = 1 << 16  # per-object rows are buffered and written this many at a time


def _h5py():
    import h5py

    return h5py


def _text_attr(text: str) -> np.bytes_:
    # Fixed-length byte string: readable by h5dump and writable by parallel HDF5 (no vlen types).
    return np.bytes_(text.encode("utf-8"))


class ShardWriter:
    """Appends cleaned chunks to one rank's shard file (resizable, chunked datasets)."""

    def __init__(self, path: str | Path, compression: str | None = None):
        h5py = _h5py()
        self.path = Path(path)
        self.file = h5py.File(self.path, "w")
        self.n_obs = 0
        self.n_objects = 0
        self._pending: list[dict] = []  # object rows not yet written (few HDF5 calls per flush)
        self._written_objects = 0
        opts = {"compression": compression} if compression else {}
        for group, dtypes, chunk in (("observations", OBS_DTYPES, OBS_CHUNK),
                                     ("objects", OBJECT_DTYPES, OBJ_CHUNK)):
            g = self.file.create_group(group)
            for name, dtype in dtypes.items():
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,),
                                 **opts)

    def append(self, chunk) -> None:
        if chunk.n_objects == 0:
            return
        offsets = self.n_obs + np.concatenate(([0], np.cumsum(chunk.length)[:-1]))
        self._pending.append({"object_id": chunk.object_id, "offset": offsets,
                              "length": chunk.length, **chunk.meta})
        self._extend("observations", chunk.obs, self.n_obs, chunk.n_obs)
        self.n_obs += chunk.n_obs
        self.n_objects += chunk.n_objects
        if self.n_objects - self._written_objects >= OBJ_FLUSH:
            self._flush()

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
            ds = self.file[group][name]
            ds.resize((start + n,))
            ds[start:start + n] = values

    @classmethod
    def reopen(cls, path: Path, n_objects: int, n_obs: int) -> "ShardWriter":
        """Open an existing shard again (after compaction) to patch it."""
        self = cls.__new__(cls)
        self.path, self.file = Path(path), _h5py().File(path, "r+")
        self.n_objects, self.n_obs = n_objects, n_obs
        self._pending, self._written_objects = [], n_objects
        return self

    def shift_offsets(self, base: int) -> None:
        """Make object offsets global (base = observations held by lower ranks)."""
        self._flush()
        if base and self.n_objects:
            ds = self.file["objects/offset"]
            ds[...] = ds[...] + base

    def close(self) -> None:
        if self.file:
            self._flush()
            self.file.close()


def compact_shard(path: Path, drop_objects: np.ndarray, compression: str | None = None) -> tuple[int, int]:
    """Rewrite a shard without the objects at local indices ``drop_objects``; returns new counts."""
    h5py = _h5py()
    tmp = path.with_suffix(".compact.h5")
    with h5py.File(path, "r") as src:
        objs = {k: src["objects"][k][...] for k in OBJECT_DTYPES}
        keep = np.ones(len(objs["object_id"]), dtype=bool)
        keep[drop_objects] = False
        writer = ShardWriter(tmp, compression)
        obs_keep = np.repeat(keep, objs["length"])
        # Streams by object batches so a big shard never has to fit in memory at once.
        step = OBJ_CHUNK * 8
        from snia.lightcurve import Chunk

        for a in range(0, len(keep), step):
            b = min(a + step, len(keep))
            lo = objs["offset"][a]
            hi = objs["offset"][b - 1] + objs["length"][b - 1]
            k = keep[a:b]
            ok = obs_keep[lo:hi]
            writer.append(Chunk(
                object_id=objs["object_id"][a:b][k], length=objs["length"][a:b][k],
                obs={n: src["observations"][n][lo:hi][ok] for n in OBS_DTYPES},
                meta={n: objs[n][a:b][k] for n in META_DTYPES},
                where_obs=str, where_object=str))
        counts = writer.n_objects, writer.n_obs
        writer.close()
    os.replace(tmp, path)
    return counts


def root_attributes(provenance: dict, n_objects: int, n_obs: int, layout: str,
                    split_names: list[str]) -> dict:
    from snia import __version__

    return {"schema_version": SCHEMA_VERSION, "snia_version": _text_attr(__version__),
            "n_objects": np.int64(n_objects), "n_observations": np.int64(n_obs),
            "layout": _text_attr(layout), "split_names": _text_attr(json.dumps(split_names)),
            "provenance": _text_attr(json.dumps(provenance, indent=1))}


def _write_tables(f, bands) -> None:
    from snia import taxonomy

    f.create_dataset("bands", data=bands.table())
    f.create_dataset("taxonomy", data=taxonomy.table())


def write_virtual_store(path: Path, shards: list[tuple[Path, int, int]], bands, attrs: dict,
                        relative_to: Path | None = None) -> None:
    """Write the store file whose datasets are virtual datasets over the shards.

    ``shards``: (shard path, n_objects, n_obs) in rank order. Source paths are stored relative to
    the store's folder (``relative_to``, default: ``path``'s folder), so the store file and its
    shard folder move together.
    """
    base = Path(relative_to) if relative_to is not None else path.parent
    h5py = _h5py()
    # libver v110+: virtual datasets, and large attributes (provenance) in dense storage.
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        for group, dtypes, count_index in (("observations", OBS_DTYPES, 2), ("objects", OBJECT_DTYPES, 1)):
            g = f.create_group(group)
            total = sum(s[count_index] for s in shards)
            for name, dtype in dtypes.items():
                layout = h5py.VirtualLayout(shape=(total,), dtype=dtype, maxshape=(total,))
                start = 0
                for shard_path, *counts in shards:
                    n = counts[count_index - 1]
                    if n:
                        rel = os.path.relpath(shard_path, base)
                        layout[start:start + n] = h5py.VirtualSource(rel, f"{group}/{name}", shape=(n,))
                    start += n
                g.create_virtual_dataset(name, layout, fillvalue=_fill(dtype))
        _write_tables(f, bands)
        f.attrs.update(attrs)


def _fill(dtype):
    return np.nan if np.issubdtype(dtype, np.floating) else -1


def write_collective_store(path: Path, comm, shard: Path, counts: tuple[int, int], bands, attrs: dict,
                           compression: str | None, block: int = 1 << 20) -> None:
    """All ranks write one store file with parallel HDF5 (``driver='mpio'``), copying their shard
    into their slice with collective writes (required for compressed datasets)."""
    h5py = _h5py()
    n_objects, n_obs = counts
    obj_base = comm.exscan(n_objects) or 0
    obs_base = comm.exscan(n_obs) or 0
    totals = (comm.allreduce(n_objects), comm.allreduce(n_obs))
    opts = {"compression": compression} if compression else {}
    # libver v110+: large attributes (provenance of thousands of inputs) go to dense storage.
    with h5py.File(path, "w", driver="mpio", comm=comm.mpi_comm, libver=("v110", "latest")) as f, \
            h5py.File(shard, "r") as src:
        # Structural changes are collective: every rank creates every dataset identically.
        for group, dtypes, total, base, n, chunk in (
                ("observations", OBS_DTYPES, totals[1], obs_base, n_obs, OBS_CHUNK),
                ("objects", OBJECT_DTYPES, totals[0], obj_base, n_objects, OBJ_CHUNK)):
            g = f.create_group(group)
            rounds = comm.allreduce(-(-n // block), op=_max_op())
            for name, dtype in dtypes.items():
                ds = g.create_dataset(name, shape=(total,), dtype=dtype,
                                      chunks=(min(chunk, max(total, 1)),) if opts else None, **opts)
                for r in range(rounds):
                    a, b = min(r * block, n), min((r + 1) * block, n)
                    with ds.collective:
                        ds[base + a:base + b] = src[group][name][a:b]
        _write_tables(f, bands)
        for key, value in attrs.items():
            f.attrs[key] = value


def _max_op():
    from snia.parallel import MAX

    return MAX


# ----------------------------------------------------------------------------- reading


@dataclass
class Batch:
    """Ragged light curves: object i owns observations ``offsets[i]:offsets[i+1]`` of ``obs``."""

    object_id: np.ndarray
    offsets: np.ndarray  # int64, n_objects + 1, starting at 0
    obs: dict[str, np.ndarray]
    meta: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.object_id)

    def lightcurve(self, i: int) -> dict[str, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return {k: v[a:b] for k, v in self.obs.items()}


class Store:
    """Read access to a light-curve store without loading it whole.

    The per-object table (a few tens of bytes per object) is read on first use; observations are
    read per object or per batch.
    """

    def __init__(self, path: str | Path):
        h5py = _h5py()
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
    def bands(self):
        from snia.bands import BandRegistry

        return BandRegistry.from_table(self.file["bands"][...])

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
        offsets = np.concatenate(([0], np.cumsum(objs["length"][idx]))).astype(np.int64)
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


# ----------------------------------------------------------------------------- info and verify

SCAN_BLOCK = 1 << 24


def _scan(ds, fn) -> None:
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


def summarize(path: str | Path) -> dict:
    """Counts a survey scientist checks first: objects, observations, per type/band/split, time span."""
    from snia import taxonomy

    with Store(path) as store:
        objs = store.objects
        bands = store.bands
        band_counts = np.zeros(len(bands), dtype=np.int64)
        span = [np.inf, -np.inf]

        def count_bands(block):
            band_counts[:] += np.bincount(block, minlength=len(bands))[:len(bands)]

        def time_span(block):
            if block.size:
                span[0], span[1] = min(span[0], block.min()), max(span[1], block.max())

        _scan(store.file["observations/band"], count_bands)
        _scan(store.file["observations/time"], time_span)
        types = np.bincount(objs["type"], minlength=len(taxonomy.CLASSES))
        splits = store.split_names
        split_codes, split_counts = np.unique(objs["split"], return_counts=True)
        return {
            "store": str(store.path),
            "layout": bytes(store.file.attrs["layout"]).decode(),
            "objects": len(store),
            "observations": store.n_observations,
            "types": {taxonomy.CLASSES[i]: int(n) for i, n in enumerate(types) if n},
            "bands": {bands.bands[i].name: int(n) for i, n in enumerate(band_counts) if n},
            "splits": {(splits[c] if c >= 0 else "none"): int(n)
                       for c, n in zip(split_codes, split_counts)},
            "time_span_mjd": [float(span[0]), float(span[1])],
            "ranks": store.provenance.get("ranks"),
            "inputs": [p["path"] for p in store.provenance.get("inputs", [])],
        }


def verify(path: str | Path, check_inputs: bool = True) -> list[str]:
    """Every structural invariant of the store; returns a list of failures (empty = valid)."""
    failures: list[str] = []
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        failures += [f"missing shard file {p}" for p in missing_sources(f)]
        if failures:
            return failures
    with Store(path) as store:
        failures += _verify_table(store)
        failures += _verify_observations(store)
        if check_inputs:
            failures += _verify_inputs(store.provenance)
    return failures


def _verify_table(store: "Store") -> list[str]:
    from snia import taxonomy

    out = []
    objs = store.objects
    n, n_obs = len(store), store.n_observations
    sizes = {name: store.file["objects"][name].shape[0] for name in OBJECT_DTYPES}
    out += [f"objects/{k} has {v} rows, expected {n}" for k, v in sizes.items() if v != n]
    sizes = {name: store.file["observations"][name].shape[0] for name in OBS_DTYPES}
    out += [f"observations/{k} has {v} rows, expected {n_obs}" for k, v in sizes.items() if v != n_obs]
    if out:
        return out
    offset, length = objs["offset"], objs["length"]
    expected = np.concatenate(([0], np.cumsum(length)[:-1]))
    if np.any(offset != expected):
        i = int(np.flatnonzero(offset != expected)[0])
        out.append(f"offsets not contiguous: object {objs['object_id'][i]} (row {i}) has offset "
                   f"{offset[i]}, expected {expected[i]}")
    if np.any(length <= 0):
        out.append(f"{int(np.sum(length <= 0))} object(s) with no observations")
    if length.sum() != n_obs:
        out.append(f"lengths add up to {length.sum()}, but the store holds {n_obs} observations")
    ids = np.sort(objs["object_id"])
    if np.any(ids[1:] == ids[:-1]):
        out.append(f"object id {ids[1:][ids[1:] == ids[:-1]][0]} appears more than once")
    bad_type = (objs["type"] < 0) | (objs["type"] >= len(taxonomy.CLASSES))
    if bad_type.any():
        out.append(f"{int(bad_type.sum())} object(s) with a type outside the taxonomy table")
    return out


def _verify_observations(store: "Store") -> list[str]:
    out = []
    n_bands = len(store.bands)
    for batch in store.iter_batches(1 << 16):
        o = batch.obs
        if np.any((o["band"] < 0) | (o["band"] >= n_bands)):
            out.append("band index outside the bands table")
        if not (np.all(np.isfinite(o["flux"])) and np.all(np.isfinite(o["flux_err"]))
                and np.all(o["flux_err"] > 0) and np.all(np.isfinite(o["time"]))):
            out.append("non-finite time/flux/flux_err or flux_err <= 0")
        t = o["time"]
        inside = np.ones(len(t) - 1 if len(t) else 0, dtype=bool)
        inside[batch.offsets[1:-1] - 1] = False  # pairs that straddle two objects
        if np.any((t[1:] < t[:-1]) & inside):
            out.append("observations not in time order within an object")
        if out:
            return [f"{m} (in objects {batch.object_id[0]}..{batch.object_id[-1]})" for m in out]
    return out


def _verify_inputs(provenance: dict) -> list[str]:
    import hashlib

    out = []
    for entry in provenance.get("inputs", []):
        path = Path(entry["path"])
        if not path.exists():
            continue  # inputs may have been moved away; only present files can be compared
        if path.stat().st_size != entry["bytes"]:
            out.append(f"input {path} changed size since ingestion")
            continue
        with open(path, "rb") as fh:
            if hashlib.file_digest(fh, "sha256").hexdigest() != entry["sha256"]:
                out.append(f"input {path} changed (sha256 differs from the provenance record)")
    return out
