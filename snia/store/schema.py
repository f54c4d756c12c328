"""The store's schema: version, column dtypes, chunk sizes and the form of the data checksums,
shared by its writers and readers.

Layout (schema version 1; full spec in docs/store.md):
  /observations/{time, band, flux, flux_err, flag}   flat arrays, grouped by object, time-ordered
  /objects/{object_id, offset, length, type, source_type, ra, dec, ddf, hostgal_photoz,
            hostgal_photoz_err, specz, mwebv, split}  one row per object
  /bands, /taxonomy                                   registry tables (compound, fixed-length strings)
  root attributes: schema_version, snia_version, n_objects, n_observations, layout, split_names,
                   provenance (JSON text: inputs with sizes and sha256, ranks, options),
                   bands_present (JSON list of band indices with observations; stores written
                   before it was recorded lack it and are scanned)
Checksums: a shard's datasets carry ``sha256`` (hex digest of the dataset's little-endian bytes);
the store's datasets carry ``sha256_parts`` (JSON ``[[first_row, rows, sha256], ...]``, one part
per shard/rank, in row order); ``/bands`` and ``/taxonomy`` carry ``sha256``.
No variable-length types anywhere, so the same layout can be written collectively by parallel HDF5.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from snia.lightcurve import META_DTYPES, OBS_DTYPES

SCHEMA_VERSION = 1
SPLIT_NAMES = ("train", "validation", "test")
OBJECT_DTYPES = {"object_id": np.int64, "offset": np.int64, "length": np.int64, **META_DTYPES}
OBS_CHUNK = 1 << 16
OBJ_CHUNK = 1 << 13
OBJ_FLUSH = 1 << 16  # per-object rows are buffered and written this many at a time
# every per-row dataset of a store or shard, as "group/name"
DATASETS = ([f"observations/{k}" for k in OBS_DTYPES] + [f"objects/{k}" for k in OBJECT_DTYPES])

CHECKSUM_ATTR = "sha256"  # a shard's dataset, /bands, /taxonomy: hex digest of all its bytes
PARTS_ATTR = "sha256_parts"  # a store's dataset: JSON [[first row, rows, hex digest], ...]
BANDS_PRESENT_ATTR = "bands_present"  # root: JSON list of the registry indices observed (ingest)
HASH_BLOCK = 1 << 20  # rows per read when checksumming a dataset (bounded memory)


def update_digest(digest, values: np.ndarray) -> None:
    """Feed an array's bytes to a hashlib digest, in little-endian order on any machine (the
    checksum is of the data, not of how one machine holds it)."""
    values = np.ascontiguousarray(values)
    digest.update(values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes())


def dataset_sha256(ds, start: int = 0, stop: int | None = None) -> str:
    """Hex sha256 of rows ``start:stop`` of a 1-D dataset, read in blocks of HASH_BLOCK rows."""
    stop = ds.shape[0] if stop is None else stop
    digest = hashlib.sha256()
    for a in range(start, stop, HASH_BLOCK):
        update_digest(digest, ds[a:min(a + HASH_BLOCK, stop)])
    return digest.hexdigest()


def text_attr(text: str) -> np.bytes_:
    # Fixed-length byte string: readable by h5dump and writable by parallel HDF5 (no vlen types).
    return np.bytes_(text.encode("utf-8"))


def parts_attr(parts: list[tuple[int, int, str]]) -> np.bytes_:
    """The ``sha256_parts`` attribute: (first row, rows, hex digest) of each non-empty part."""
    return text_attr(json.dumps([[int(a), int(n), h] for a, n, h in parts if n]))


def read_checksum(ds) -> str | None:
    """A dataset's recorded ``sha256`` (None when the writer recorded none)."""
    value = ds.attrs.get(CHECKSUM_ATTR)
    return None if value is None else bytes(value).decode()


def read_parts(ds) -> list[tuple[int, int, str]] | None:
    """A store dataset's recorded ``sha256_parts`` (None when the writer recorded none)."""
    value = ds.attrs.get(PARTS_ATTR)
    return None if value is None else [tuple(p) for p in json.loads(bytes(value).decode())]
