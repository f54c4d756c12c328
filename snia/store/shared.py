"""A store's observation columns read once per node and shared by the node's ranks.

Every DDP rank draws its batches from the whole training set (the sampler's permutation is
global), so each needs every light curve; read per rank, a node of 8 ranks holds 8 copies. Here
the node's local rank 0 reads the columns (``read_columns``) into ``.npy`` files in node memory
(``/dev/shm``), and every rank of the node maps them read-only: one copy in the page cache for
all. Once all have mapped them the files are unlinked (the maps stay valid), so nothing is left
behind; a job killed half way leaves its files until the node is cleaned, named by the job's
rendezvous port (``snia-<port>-...``). The values are the store's: batches do not change.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from snia.lightcurve import OBS_DTYPES
from snia.parallel import Dist, barrier, local_ranks
from snia.store.resident import COLUMNS, fits, read_columns, resident_bytes

log = logging.getLogger(__name__)

NODE_MEMORY = Path("/dev/shm")  # a RAM file system on every Linux node


def column_paths(folder: Path, key: str, columns=COLUMNS) -> dict[str, Path]:
    return {k: folder / f"{key}.{k}.npy" for k in columns}


def publish(store, folder: Path, key: str, columns=COLUMNS) -> None:
    """Write the store's columns to ``folder/key.<column>.npy``; each name appears only once its
    file is complete (written under a temporary name, then renamed)."""
    paths = column_paths(folder, key, columns)
    parts = {k: p.with_name(p.name + ".part") for k, p in paths.items()}
    out = {k: np.lib.format.open_memmap(parts[k], mode="w+", dtype=OBS_DTYPES[k],
                                        shape=(store.n_observations,)) for k in columns}
    read_columns(store, columns, out)
    for k, array in out.items():
        array.flush()
        os.replace(parts[k], paths[k])


def mapped(folder: Path, key: str, columns=COLUMNS) -> dict | None:
    """The published columns mapped read-only, or None if they were not published."""
    paths = column_paths(folder, key, columns)
    if not all(p.is_file() for p in paths.values()):
        return None
    return {k: np.load(p, mmap_mode="r") for k, p in paths.items()}


def unlink(folder: Path, key: str, columns=COLUMNS) -> None:
    for p in column_paths(folder, key, columns).values():
        p.unlink(missing_ok=True)
        p.with_name(p.name + ".part").unlink(missing_ok=True)


def job_key(store) -> str:
    """Names this job's copy of this store: the rendezvous port is the job's own on the node."""
    where = hashlib.sha1(str(Path(store.path).resolve()).encode()).hexdigest()[:12]
    return f"snia-{os.environ.get('MASTER_PORT', os.getpid())}-{where}"


def worth_sharing(store, folder: Path, share: float) -> bool:
    """Several ranks on this node, and one copy fits in node memory and in the folder."""
    if local_ranks() < 2 or not folder.is_dir() or not os.access(folder, os.W_OK):
        return False
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    stat = os.statvfs(folder)
    room = stat.f_bavail * stat.f_frsize  # a container's /dev/shm may hold only 64 MB
    return fits(store, share * available) and resident_bytes(store) <= 0.9 * room


def node_shared_columns(store, dist: Dist, share: float = 0.5, folder: Path = NODE_MEMORY) -> dict | None:
    """The store's columns, read by the node's local rank 0 and mapped by all its ranks; None
    (on every rank of the node) where that is not worth it or does not fit. Every rank must call
    it: it waits for the others twice."""
    if dist.world < 2:
        return None
    key = job_key(store)
    if dist.local_rank == 0 and worth_sharing(store, folder, share):
        try:
            publish(store, folder, key)
        except OSError as exc:  # e.g. the folder filled up meanwhile: every rank reads its own
            log.warning("%s: cannot share the store's columns in %s (%s)", store.path, folder, exc)
            unlink(folder, key)
    barrier(dist)  # published (or not) before anyone looks
    columns = mapped(folder, key)
    barrier(dist)  # mapped by all before the names go
    if dist.local_rank == 0:
        unlink(folder, key)
    if columns is not None and dist.local_rank == 0:
        log.info("%s: %.2f GB of observations read once for this node's %d ranks", store.path,
                 resident_bytes(store) / 1e9, local_ranks())
    return columns
