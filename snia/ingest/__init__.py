"""Stage 1: raw survey files -> one HDF5 light-curve store, over MPI ranks.

``pipeline`` runs the phases (read, check, assemble, publish; ``run_ingest``) with ``checks`` (ids
repeated across files or ranks, metadata without light curves) and ``publish`` (the store moved
into place, its provenance); ``guard`` keeps the output safe (paths that would overwrite an
input, temporaries, stale leftovers, signals), ``lock`` one ingestion per output. This file only
names what the package offers.
"""

from snia.ingest.guard import (
    HOST,
    IngestInterrupted,
    Signals,
    check_paths,
    remove_stale_temporaries,
    shard_dir_of,
    temp_name,
)
from snia.ingest.pipeline import LAYOUTS, IngestAborted, IngestResult, parallel_h5py, run_ingest

__all__ = ["HOST", "LAYOUTS", "IngestAborted", "IngestInterrupted", "IngestResult", "Signals",
           "check_paths", "parallel_h5py", "remove_stale_temporaries", "run_ingest", "shard_dir_of",
           "temp_name"]
