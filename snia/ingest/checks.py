"""The ingestion's global checks, on rank 0 once every rank has read its share: what no single
rank can see (an object id in two files or on two ranks, a metadata row whose light curve no
rank met)."""

from __future__ import annotations

import numpy as np

from snia.errors import InputError, Problems


def global_checks(gathered, reader, problems: Problems) -> list[np.ndarray]:
    """On rank 0, over every rank's (ids, input file indices, raw ids, problem counts, problem
    examples): object ids repeated across files or ranks (the first in input order is kept) and
    metadata rows without a light curve, counted in ``problems`` (which raises under
    ``--on-error fail``). Returns per rank the local indices of the objects to drop."""
    files = [str(p) for p in reader.input_files()]
    for rank_problems in gathered[1:]:
        problems.merge(rank_problems[3], rank_problems[4])
    ids = np.concatenate([g[0] for g in gathered])
    where = np.concatenate([g[1] for g in gathered])
    sizes = [len(g[0]) for g in gathered]
    rank_of = np.repeat(np.arange(len(gathered)), sizes)
    local = np.concatenate([np.arange(n) for n in sizes]) if ids.size else np.empty(0, np.int64)
    order = np.argsort(ids, kind="stable")  # stable: the first occurrence in input order is kept
    repeat = np.zeros(len(ids), dtype=bool)
    repeat[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    if repeat.any():
        k = int(np.flatnonzero(repeat)[0])
        first = int(np.flatnonzero(ids == ids[k])[0])
        problems.found("duplicate_object_id",
                       f"object {ids[k]} appears more than once: in {files[where[first]]} and again "
                       f"in {files[where[k]]} (object ids must be unique across the inputs and an "
                       f"object's rows contiguous within a file)", int(repeat.sum()))
    metadata_ids = reader.metadata_ids()
    if metadata_ids is not None:
        raw = np.concatenate([g[2] for g in gathered])
        orphans = np.setdiff1d(metadata_ids, raw)
        if orphans.size:
            problems.found("metadata_without_lightcurve",
                           f"{reader.where_metadata(int(orphans[0]))}: object {orphans[0]} is in the "
                           f"metadata but has no light curve", int(orphans.size))
    if ids.size == 0:
        raise InputError("no objects to store: the inputs hold no valid light curves")
    return [local[repeat & (rank_of == r)] for r in range(len(gathered))]
