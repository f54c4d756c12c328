"""The store's schema: version, column dtypes and chunk sizes shared by its writers and readers.

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

import numpy as np

from snia.lightcurve import META_DTYPES

SCHEMA_VERSION = 1
SPLIT_NAMES = ("train", "validation", "test")
OBJECT_DTYPES = {"object_id": np.int64, "offset": np.int64, "length": np.int64, **META_DTYPES}
OBS_CHUNK = 1 << 16
OBJ_CHUNK = 1 << 13
OBJ_FLUSH = 1 << 16  # per-object rows are buffered and written this many at a time
