"""What a store's opening checks look for: the datasets of the schema with their row counts, the
shard files behind a virtual store (there, readable, holding the data the store was written
with) and the object table's invariants. Each function returns a list of problems in words
(empty: none); ``Store`` refuses a store with any, ``snia store verify`` lists them all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snia import taxonomy
from snia.lightcurve import offsets_from_lengths
from snia.store.schema import DATASETS, read_checksum, read_parts

# what h5py raises on bytes that are not the HDF5 it expects (truncated, overwritten, swapped)
HDF5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


@dataclass(frozen=True)
class Source:
    """One slice of a virtual dataset: rows ``start:start + rows`` of ``dataset`` are the whole
    dataset ``dataset`` of the shard file ``path``."""

    dataset: str
    path: Path
    start: int
    rows: int


def virtual_sources(f) -> list[Source]:
    """The shard slices behind a virtual store's datasets (empty for the single-file layout)."""
    out = []
    for name in DATASETS:
        if name not in f or not f[name].is_virtual:
            continue
        dcpl = f[name].id.get_create_plist()  # kept alive while its dataspaces are read
        for i in range(dcpl.get_virtual_count()):
            path = Path(dcpl.get_virtual_filename(i))
            if not path.is_absolute():
                path = Path(f.filename).parent / path
            vspace = dcpl.get_virtual_vspace(i)
            start = int(vspace.get_regular_hyperslab()[0][0])
            out.append(Source(name, path, start, int(vspace.get_select_npoints())))
    return out


def missing_sources(f) -> list[str]:
    """Shard files a virtual store points at that are not on disk (HDF5 would read fill values)."""
    return sorted({str(s.path) for s in virtual_sources(f) if not s.path.exists()})


def structure_problems(f, n_objects: int, n_obs: int) -> list[str]:
    """Every dataset of the schema is there, with one row per object or per observation."""
    out = [f"dataset /{name} is missing" for name in ("bands", "taxonomy") if name not in f]
    for name in DATASETS:
        rows = n_obs if name.startswith("observations/") else n_objects
        if name not in f:
            out.append(f"dataset /{name} is missing")
        elif f[name].shape != (rows,):
            out.append(f"{name} has {f[name].shape[0] if f[name].shape else 0} rows, expected {rows}")
    return out


def source_problems(f) -> list[str]:
    """Each shard file opens as HDF5 and holds, with the rows the store maps, the data the store
    was written with (the shard's recorded sha256 equals the store's record; attributes only)."""
    import h5py

    by_file: dict[Path, list[Source]] = {}
    for source in virtual_sources(f):
        by_file.setdefault(source.path, []).append(source)
    parts = {name: {p[0]: p[2] for p in read_parts(f[name]) or []} for name in DATASETS
             if by_file and name in f}
    out = []
    for path, sources in by_file.items():
        try:
            with h5py.File(path, "r") as shard:
                for s in sources:
                    if s.dataset not in shard:
                        out.append(f"shard file {path} has no dataset {s.dataset}")
                        continue
                    ds = shard[s.dataset]
                    if ds.shape != (s.rows,):
                        out.append(f"shard file {path}: {s.dataset} has {ds.shape[0] if ds.shape else 0} "
                                   f"rows where the store expects {s.rows} (a shard file swapped or "
                                   f"from another store?)")
                        continue
                    recorded, theirs = parts[s.dataset].get(s.start), read_checksum(ds)
                    if recorded and theirs and recorded != theirs:
                        out.append(f"shard file {path}: {s.dataset} is not the data the store was "
                                   f"written with (its sha256 differs from the store's record: a "
                                   f"shard file swapped or from another store?)")
        except HDF5_ERRORS as exc:
            out.append(f"shard file {path} cannot be read as HDF5 ({exc})")
    return out


def table_problems(objects: dict[str, np.ndarray], n_obs: int) -> list[str]:
    """The object table's cheap invariants: lengths positive, offsets their running sum, lengths
    adding up to the observations, types codes of the taxonomy. One message per broken rule,
    naming the first object that breaks it."""
    ids, offset, length, types = (objects[k] for k in ("object_id", "offset", "length", "type"))
    out = []
    empty = np.flatnonzero(length <= 0)
    if empty.size:
        i = int(empty[0])
        out.append(f"{empty.size} object(s) with no observations: object {ids[i]} (row {i}) has "
                   f"length {length[i]}")
    expected = offsets_from_lengths(length)
    wrong = np.flatnonzero(offset != expected[:-1])
    if wrong.size:
        i = int(wrong[0])
        out.append(f"offsets not contiguous: object {ids[i]} (row {i}) has offset {offset[i]}, "
                   f"expected {expected[i]}")
    if expected[-1] != n_obs:
        out.append(f"lengths add up to {expected[-1]}, but the store holds {n_obs} observations")
    bad = np.flatnonzero((types < 0) | (types >= len(taxonomy.CLASSES)))
    if bad.size:
        i = int(bad[0])
        out.append(f"{bad.size} object(s) with a type outside the taxonomy table: object {ids[i]} "
                   f"(row {i}) has type code {types[i]} (codes are 0..{len(taxonomy.CLASSES) - 1})")
    return out
