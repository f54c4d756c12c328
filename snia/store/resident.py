"""A store held in memory: the observation columns a model needs, read once in large contiguous
blocks, so that a training batch is a vectorised gather instead of scattered HDF5 reads.

On a GPU the columns can live in device memory (``xp=cupy``): gathering, augmenting and
rasterizing a batch then never leaves the device. ``fits`` says whether a store's columns fit a
memory budget; a store that does not is read per batch from HDF5 instead (``Store.batch``).
"""

from __future__ import annotations

import numpy as np

from snia.lightcurve import OBS_DTYPES, Batch, offsets_from_lengths

COLUMNS = ("time", "band", "flux", "flux_err")  # what augmentation and images read
READ_BLOCK = 1 << 24  # observations per contiguous read


def resident_bytes(store, columns=COLUMNS) -> int:
    """Memory the columns of a store take when resident."""
    per_obs = sum(np.dtype(OBS_DTYPES[k]).itemsize for k in columns)
    return store.n_observations * per_obs


def fits(store, budget_bytes: float, columns=COLUMNS) -> bool:
    return resident_bytes(store, columns) <= budget_bytes


def read_columns(store, columns=COLUMNS, out: dict | None = None) -> dict:
    """The columns of all observations, read in contiguous blocks of whole objects (about
    READ_BLOCK observations a read), into ``out`` (arrays of ``n_observations``; new if None)."""
    offset = store.objects["offset"].astype(np.int64)
    out = out if out is not None else {k: np.empty(store.n_observations, OBS_DTYPES[k]) for k in columns}
    for start, block in store.blocks(READ_BLOCK, columns):  # only these columns, whole objects
        lo = int(offset[start])
        for k in columns:
            out[k][lo:lo + len(block.obs[k])] = block.obs[k]
    return out


class ResidentStore:
    """The light curves of a ``Store`` in memory; ``batch(indices)`` as ``Store.batch`` does.
    ``obs``: the columns when read already (``read_columns``, e.g. shared by a node's ranks)."""

    def __init__(self, store, xp=np, columns=COLUMNS, obs: dict | None = None):
        objects = store.objects
        self.xp = xp
        self.object_id = objects["object_id"]
        self.offset = objects["offset"].astype(np.int64)
        self.length = objects["length"].astype(np.int64)
        self.meta = {k: v for k, v in objects.items() if k not in ("object_id", "offset", "length")}
        host = obs if obs is not None else read_columns(store, columns)
        self.obs = {k: xp.asarray(host[k]) for k in columns}
        self._device_offset = None if xp is np else xp.asarray(self.offset)
        # the upload runs on the stream current now; batches may be gathered on another (a
        # non-blocking side stream): they wait for this event, not for an incidental sync
        self._uploaded = None
        if xp is not np:
            self._uploaded = xp.cuda.Event(block=False, disable_timing=True)
            self._uploaded.record()

    def __len__(self) -> int:
        return len(self.object_id)

    def batch(self, indices) -> Batch:
        """Objects by store index (any order): one vectorised gather per column. On the device
        (``xp=cupy``) the rows are found there too and the Batch's ``offsets`` are a device array:
        the host only sends the indices and never waits."""
        idx = np.asarray(indices, dtype=np.int64)
        lengths = self.length[idx]
        offsets = offsets_from_lengths(lengths)
        if self.xp is np:
            # row of every observation: its object's first row, plus its place within the object
            rows = np.repeat(self.offset[idx] - offsets[:-1], lengths) + np.arange(offsets[-1])
        else:
            self.xp.cuda.get_current_stream().wait_event(self._uploaded)  # on the GPU; host goes on
            offsets = self.xp.asarray(offsets)
            rows = device_rows(self.xp, self._device_offset[self.xp.asarray(idx)], offsets,
                               int(lengths.sum()))
        obs = {k: v[rows] for k, v in self.obs.items()}
        return Batch(self.object_id[idx], offsets, obs, {k: v[idx] for k, v in self.meta.items()})


def device_rows(xp, first_rows, offsets, total: int):
    """Store row of each observation of a gathered batch, without a host round trip (no
    ``repeat`` by device counts): the object of output position r is the one whose
    [offsets[i], offsets[i+1]) holds r (a search in the batch offsets), and its row is that
    object's first store row plus r - offsets[i]. ``total``: the batch's observations (host)."""
    position = xp.arange(total, dtype=np.int64)
    obj = xp.searchsorted(offsets[1:], position, side="right")
    return first_rows[obj] + (position - offsets[obj])
