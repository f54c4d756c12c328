"""The HDF5 light-curve store: flat observation arrays + a per-object table with offset/length.

One store holds the light curves of one ingestion run; docs/store.md is its plain specification.
No variable-length types anywhere, so the same layout can be written collectively by parallel HDF5.
The package follows the data: ``schema`` (version, dtypes, chunk sizes, checksum attributes),
``writer`` (per-rank shards, then the store file as virtual datasets over them or written
collectively), ``reader`` (``Store``: objects and ragged ``Batch``es without loading the file;
a damaged store is refused at open with a ``StoreError``) and ``check`` (``summarize``,
``verify``) and ``manifest`` (the input files, ``STORE.manifest.tsv`` beside the store, and
their one digest). Everything public is importable from ``snia.store``.
"""

from __future__ import annotations

from snia.errors import StoreError
from snia.lightcurve import Batch
from snia.store.check import format_summary, redshift_quantiles, summarize, verify
from snia.store.manifest import manifest_path, manifest_summary, read_manifest, write_manifest
from snia.store.reader import SCAN_BLOCK, Store, missing_sources, scan, shard_band_codes
from snia.store.schema import OBJ_CHUNK, OBJ_FLUSH, OBJECT_DTYPES, OBS_CHUNK, SCHEMA_VERSION, SPLIT_NAMES
from snia.store.writer import (
    ShardWriter,
    compact_shard,
    root_attributes,
    write_collective_store,
    write_virtual_store,
)

__all__ = ["OBJ_CHUNK", "OBJ_FLUSH", "OBJECT_DTYPES", "OBS_CHUNK", "SCAN_BLOCK", "SCHEMA_VERSION",
           "SPLIT_NAMES", "Batch", "ShardWriter", "Store", "StoreError", "compact_shard",
           "format_summary", "manifest_path", "manifest_summary", "missing_sources",
           "read_manifest", "redshift_quantiles", "root_attributes", "scan",
           "shard_band_codes", "summarize", "verify",
           "write_collective_store", "write_manifest", "write_virtual_store"]
