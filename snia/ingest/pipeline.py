"""Parallel ingestion (``run_ingest``): raw survey files -> one HDF5 light-curve store, over MPI
ranks.

Phases (every rank runs each phase, then all ranks agree on success before the next one):
  1. read: each rank reads its share of the input (see ``snia.readers.split_work``), applies the
     bad-input policy chunk by chunk and appends to its own shard file (memory bounded by a chunk);
  2. check: rank 0 gathers object ids only, finds ids repeated across files/ranks and metadata rows
     without light curves, and tells ranks what to drop (under ``--on-error skip``);
  3. assemble: exclusive scan of the per-rank counts gives each rank its global offsets; then either
     rank 0 writes a store of virtual datasets over the shards (stock h5py), or all ranks write one
     file collectively (h5py built with MPI).
Everything is written under a temporary folder ``.STORE.tmp-HOST-PID-MS`` and renamed at the end by
rank 0, so a store that exists is complete; if any rank fails, or SIGTERM arrives (what SLURM sends
at a time limit or preemption; handled like Ctrl-C), every rank stops and the temporaries are
removed. A SIGKILL leaves its temporary folder behind: the next run for the same output removes it
once no live process of this host owns it. Outputs that would replace or sit inside an input are
refused before any work.

The output's safety (paths that would overwrite an input, temporary folders named by host and
process, stale ones removed, signals) is ``snia.ingest.guard``; the rank-0 checks of phase 2
``snia.ingest.checks``; the virtual store, the rename into place and the provenance record
``snia.ingest.publish``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snia.bands import BandRegistry
from snia.errors import Problems, SniaError
from snia.files import sha256_of
from snia.ingest.checks import global_checks
from snia.ingest.guard import Signals, check_paths, prepare_output, temp_name
from snia.ingest.lock import OutputLock
from snia.ingest.publish import provenance_record, publish, write_virtual
from snia.lightcurve import clean_chunk
from snia.parallel import world
from snia.progress import progress as show_progress
from snia.readers import reader_for, split_work
from snia.store import (
    SPLIT_NAMES,
    ShardWriter,
    compact_shard,
    root_attributes,
    shard_band_codes,
    write_collective_store,
    write_manifest,
)

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "virtual", "single")


class IngestAborted(SniaError):
    """Another rank failed; this rank stopped cleanly."""


@dataclass
class IngestResult:
    path: Path
    n_objects: int
    n_obs: int
    layout: str
    seconds: float
    problems: Problems


def parallel_h5py() -> bool:
    import h5py

    return bool(h5py.get_config().mpi)


def _sync(comm, error: BaseException | None, stage: str) -> None:
    """Collective: raise on every rank if any rank failed.

    The lowest failing rank re-raises its own error (so it is reported once, with its file, line
    and object); every other rank raises IngestAborted, which the command line reports quietly.
    """
    if error is None and Signals.active is not None and Signals.active.received is not None:
        error = Signals.active.interruption()  # the handler's exception was lost
    failed = [rank for rank, bad in enumerate(comm.allgather(error is not None)) if bad]
    if not failed:
        return
    if comm.rank == failed[0]:
        raise error
    raise IngestAborted(f"ingestion stopped during {stage}: rank {failed[0]} failed")


def run_ingest(fmt: str, inputs, output, metadata=(), *, survey=None, split=None,
               on_error="fail", chunk_bytes=16 << 20, compression=None, layout="auto",
               overwrite=False, bands=None, comm=None, progress=True) -> IngestResult:
    """Ingest ``inputs`` of format ``fmt`` into the store ``output`` (see module docstring)."""
    started = time.perf_counter()
    comm = comm or world()
    bands = bands or BandRegistry()
    requested, output = Path(output), Path(output).resolve()
    problems = Problems(on_error)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    if layout == "auto":
        layout = "single" if (parallel_h5py() and hasattr(comm, "mpi_comm")) else "virtual"
    if layout == "single" and not (parallel_h5py() and hasattr(comm, "mpi_comm")):
        raise SniaError("layout 'single' needs h5py built with MPI (h5py.get_config().mpi) and "
                        "mpi4py; use --layout virtual with the stock h5py wheel")
    work = output.parent / comm.bcast(temp_name(output) if comm.rank == 0 else None)
    shard = work / "shards" / f"shard-{comm.rank:05d}.h5"

    with Signals() as signals, OutputLock(output, take=comm.rank == 0) as lock:
        try:
            error = None
            if comm.rank == 0:
                try:
                    lock.check()  # one ingestion per output: another one's would be replaced
                    prepare_output(output, work, overwrite, [*inputs, *metadata], requested)
                except BaseException as exc:  # noqa: BLE001 - passed to every rank by _sync
                    error = exc
            _sync(comm, error, "setup")
            state = _read_phase(fmt, inputs, metadata, survey, split, bands, problems, chunk_bytes,
                                compression, shard, output, comm, progress)
            log.debug("read phase done at %.3f s", time.perf_counter() - started)
            drops = _check_phase(state, problems, comm)
            log.debug("global checks done at %.3f s", time.perf_counter() - started)
            counts = _assemble_phase(state, drops, problems, compression, layout, bands, output,
                                     work, comm, fmt, survey, split, on_error, signals)
        except BaseException:
            if comm.rank == 0:
                shutil.rmtree(work, ignore_errors=True)  # a fresh name: never another run's
            raise
    seconds = time.perf_counter() - started
    if comm.rank == 0:
        log.info("wrote %s: %d objects, %d observations (%s layout, %d rank(s), %.2f s)", output,
                 counts[0], counts[1], layout, comm.size, seconds)
        if problems.counts:
            log.warning(problems.summary())
    return IngestResult(output, counts[0], counts[1], layout, seconds, problems)


@dataclass
class _ReadState:
    reader: object
    writer: object
    raw_ids: np.ndarray  # every object id met in the light curves, before the policy
    ids: np.ndarray  # ids written to this rank's shard
    files: np.ndarray  # input file index of each written object
    hashes: dict


def _read_phase(fmt, inputs, metadata, survey, split, bands, problems, chunk_bytes, compression,
                shard, output, comm, progress) -> _ReadState:
    state, error = None, None
    try:
        reader = reader_for(fmt)(inputs, metadata, bands, problems, survey=survey,
                                 chunk_bytes=chunk_bytes)
        files = [Path(p) for p in reader.input_files()]
        check_paths(output, shard.parent.parent, files)  # files the reader adds (SNANA PHOT files)
        file_index = {str(p): i for i, p in enumerate(files)}
        hashers = [i % comm.size for i in range(len(files))]  # rank that checksums input i
        pieces = split_work(reader.weights(), comm.size, comm.rank, atomic=reader.atomic,
                            reserved=_hash_reserve(reader, files, hashers, comm.size))
        split_code = _split_code(split)
        # Checksums first, on this rank's own core; split_work gave it less parsing for them.
        hashes = {str(p): sha256_of(p) for i, p in enumerate(files) if hashers[i] == comm.rank}
        writer = ShardWriter(shard, compression)
        raw_ids, ids, where = [], [], []
        t0 = time.perf_counter()
        unit = getattr(reader, "progress_unit", None)  # None: no total known (counts objects)
        bar = show_progress(sum(p.stop - p.start for p in pieces) if unit else None, "ingest",
                            unit or " objects", bar=progress, enabled=comm.rank == 0)
        for chunk in reader.read(pieces):
            Signals.check()
            bar.update(chunk.units if unit and chunk.units is not None else chunk.n_objects)
            raw_ids.append(chunk.object_id)
            chunk = clean_chunk(chunk, problems)
            if chunk.n_objects == 0:
                continue
            chunk.meta["split"][:] = split_code
            writer.append(chunk)
            ids.append(chunk.object_id)
            where.append(_input_index(chunk, file_index))
        bar.finish()  # the byte counts of the blocks leave out the header line
        bar.close()
        log.debug("checksummed and parsed %d objects in %.3f s", writer.n_objects,
                  time.perf_counter() - t0)
        state = _ReadState(reader, writer, _cat(raw_ids, np.int64), _cat(ids, np.int64),
                           _cat(where, np.int32), hashes)
    except BaseException as exc:  # noqa: BLE001 - passed to every rank by _sync
        error = exc
    _sync(comm, error, "reading")
    return state


def _hash_reserve(reader, files, hashers, nranks) -> list[int]:
    """Checksumming a file is serial work for one rank; in the reader's work units (when they are
    bytes), give that rank correspondingly less to parse so all ranks finish together."""
    ratio = getattr(reader, "hash_speedup", None)  # how many times faster hashing is than reading
    reserved = [0] * nranks
    if ratio:
        for path, rank in zip(files, hashers):
            reserved[rank] += int(path.stat().st_size / ratio)
    return reserved


def _input_index(chunk, file_index: dict[str, int]) -> np.ndarray:
    """Index of each object's input file in the provenance list (for duplicate-id messages)."""
    indices = np.array([file_index[f] for f in chunk.files], dtype=np.int32)
    if chunk.file_of_object is None:
        return np.full(chunk.n_objects, indices[0], dtype=np.int32)
    return indices[chunk.file_of_object]


def _cat(parts, dtype):
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


def _split_code(split: str | None) -> int:
    if split is None:
        return -1
    if split not in SPLIT_NAMES:
        raise SniaError(f"split must be one of {SPLIT_NAMES}, not {split!r}")
    return SPLIT_NAMES.index(split)


def _check_phase(state: _ReadState, problems: Problems, comm) -> np.ndarray:
    """Global checks on rank 0; returns this rank's local object indices to drop."""
    gathered = comm.gather((state.ids, state.files, state.raw_ids, dict(problems.counts),
                            dict(problems.examples)))
    drops, error = None, None
    if comm.rank == 0:
        try:
            drops = global_checks(gathered, state.reader, problems)
        except BaseException as exc:  # noqa: BLE001 - passed to every rank by _sync
            error = exc
    _sync(comm, error, "global checks")
    return comm.bcast(drops)[comm.rank] if comm.size > 1 else drops[0]


def _assemble_phase(state, drops, problems, compression, layout, bands, output, work, comm,
                    fmt, survey, split, on_error, signals) -> tuple[int, int]:
    writer = state.writer
    error, bands_here = None, []
    try:
        counts = (writer.n_objects, writer.n_obs)
        if drops.size:
            writer.close()
            counts = compact_shard(writer.path, drops, compression)
            writer = ShardWriter.reopen(writer.path, *counts)
        obs_base = comm.exscan(counts[1]) or 0
        writer.shift_offsets(obs_base)
        writer.close()
        bands_here = shard_band_codes(writer.path).tolist()  # once here, not by every reader
    except BaseException as exc:  # noqa: BLE001
        error = exc
    _sync(comm, error, "offsets")
    bands_present = sorted({b for part in comm.allgather(bands_here) for b in part})
    all_counts = comm.allgather(counts)
    all_checksums = comm.allgather(writer.checksums)
    hashes = {}
    for part in comm.allgather(state.hashes):
        hashes.update(part)
    totals = (sum(c[0] for c in all_counts), sum(c[1] for c in all_counts))
    attrs = None
    if comm.rank == 0:  # one copy: collective HDF5 writes need identical attributes on every rank
        provenance = provenance_record(state.reader, hashes, comm.size, fmt, survey, split, on_error,
                                 layout, compression, problems)
        attrs = root_attributes(provenance, totals[0], totals[1], layout, list(SPLIT_NAMES),
                                bands_present)
    attrs = comm.bcast(attrs)
    tmp_store = work / output.name
    error = None
    try:
        if layout == "single":
            write_collective_store(tmp_store, comm, writer.path, counts, bands, attrs, compression)
        elif comm.rank == 0:
            write_virtual(tmp_store, output, all_counts, all_checksums, bands, attrs)
    except BaseException as exc:  # noqa: BLE001
        error = exc
    _sync(comm, error, "writing the store")
    error = None
    if comm.rank == 0:
        try:
            with signals.hold():
                publish(tmp_store, work, output, layout)
                write_manifest(output, provenance["inputs"])  # STORE.manifest.tsv beside it
        except BaseException as exc:  # noqa: BLE001
            error = exc
    _sync(comm, error, "renaming the store into place")
    return totals
