"""The light-curve data model: canonical columns, survey aliases, and the checks every reader shares.

Ragged light curves everywhere are a ``Batch``: flat per-observation arrays in the canonical
columns ``time`` (MJD, float64), ``band`` (band-registry index), ``flux``/``flux_err`` (float32)
and ``flag``, with per-object ``object_id``, ``offsets`` (object i owns rows offsets[i]:offsets[i+1])
and metadata. Readers deliver ``Chunk``s: batches of whole objects that also say where each row
came from. ``clean_chunk`` applies the bad-input policy and puts each object's observations in
time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from snia.errors import InputError, Problems

OBS_DTYPES = {"time": np.float64, "band": np.int8, "flux": np.float32, "flux_err": np.float32,
              "flag": np.int32}

# Per-object metadata columns of the store, with the value that means "not given".
META_DTYPES = {"type": np.int8, "source_type": np.int32, "ra": np.float64, "dec": np.float64,
               "ddf": np.int8, "hostgal_photoz": np.float32, "hostgal_photoz_err": np.float32,
               "specz": np.float32, "mwebv": np.float32, "split": np.int8}
META_MISSING = {"type": 7, "source_type": -1, "ra": np.nan, "dec": np.nan, "ddf": -1,
                "hostgal_photoz": np.nan, "hostgal_photoz_err": np.nan, "specz": np.nan,
                "mwebv": np.nan, "split": -1}

# Survey spellings of the canonical observation columns (matched case-insensitively).
OBS_ALIASES = {
    "object_id": ("object_id", "objid", "snid", "id"),
    "time": ("time", "mjd", "date"),
    "band": ("band", "passband", "flt", "filter", "bandpass"),
    "flux": ("flux", "fluxcal"),
    "flux_err": ("flux_err", "fluxerr", "fluxcalerr", "flux_error"),
    "flag": ("flag", "detected_bool", "detected", "photflag"),
}
REQUIRED_OBS = ("object_id", "time", "band", "flux", "flux_err")


def match_columns(names: list[str], aliases: dict[str, tuple[str, ...]], required, where: str):
    """Map canonical name -> position in ``names``; also return the unrecognised names.

    Raises InputError naming ``where`` if a required column is missing or ambiguous.
    """
    lowered = [n.strip().lower() for n in names]
    found: dict[str, int] = {}
    for canonical, spellings in aliases.items():
        hits = [i for i, n in enumerate(lowered) if n in spellings]
        if len(hits) > 1:
            raise InputError(f"{where}: columns {[names[i] for i in hits]} all mean {canonical!r}; "
                             f"keep one")
        if hits:
            found[canonical] = hits[0]
    missing = [c for c in required if c not in found]
    if missing:
        raise InputError(f"{where}: missing column(s) {missing} (have {names}; accepted spellings: "
                         + "; ".join(f"{c}: {'/'.join(aliases[c])}" for c in missing) + ")")
    extra = [names[i] for i in range(len(names)) if i not in found.values()]
    return found, extra


def offsets_from_lengths(lengths) -> np.ndarray:
    """Offsets (int64, n + 1, starting at 0) of consecutive ragged runs of these lengths."""
    return np.concatenate(([0], np.cumsum(lengths, dtype=np.int64))).astype(np.int64)


@dataclass
class Batch:
    """Ragged light curves, the one batch model of snia: object i owns observations
    ``offsets[i]:offsets[i+1]`` of the flat ``obs`` arrays (each object's rows time-ordered once
    a chunk is cleaned). Arrays may be NumPy or, on a GPU, CuPy."""

    object_id: np.ndarray  # int64, per object
    offsets: np.ndarray  # int64, n_objects + 1, starting at 0
    obs: dict[str, np.ndarray]  # OBS_DTYPES columns (and optionally "wave"), flat over objects
    meta: dict[str, np.ndarray]  # META_DTYPES columns, per object

    def __len__(self) -> int:
        return len(self.object_id)

    @property
    def n_objects(self) -> int:
        return len(self.object_id)

    @property
    def n_obs(self) -> int:
        return len(self.obs["time"])

    @property
    def length(self) -> np.ndarray:
        """Observations per object."""
        return np.diff(self.offsets)

    def lightcurve(self, i: int) -> dict[str, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return {k: v[a:b] for k, v in self.obs.items()}

    def objects(self, start: int, stop: int) -> Batch:
        """Objects ``start:stop`` as a Batch of views (no copy): how a block read at once is
        cut into the batches a model runs on."""
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        return Batch(self.object_id[start:stop], self.offsets[start:stop + 1] - a,
                     {k: v[a:b] for k, v in self.obs.items()},
                     {k: v[start:stop] for k, v in self.meta.items()})


DETECTION_SNR = 5.0  # a detection: flux / error >= 5 (PLAsTiCC's trigger; the images' default)


def cut_after_first_detection(batch: Batch, days: float | None,
                              snr: float = DETECTION_SNR) -> Batch:
    """The light curves as they were ``days`` after each object's first detection (the first
    observation with flux / error >= ``snr``; an object never detected is cut after its first
    observation instead): what a survey had seen by then, for early classification. ``days``
    None: the whole light curves. Host (NumPy) arrays; objects keep their place, and an object
    keeps at least its first observation."""
    if days is None:
        return batch
    lengths = np.diff(batch.offsets)
    obj = np.repeat(np.arange(len(lengths)), lengths)
    time = np.asarray(batch.obs["time"], dtype=np.float64)
    detected = (np.asarray(batch.obs["flux"], np.float64)
                >= snr * np.asarray(batch.obs["flux_err"], np.float64))
    first = np.full(len(lengths), np.inf)
    np.minimum.at(first, obj[detected], time[detected])  # first detection time of each object
    starts = batch.offsets[:-1][lengths > 0]
    never = np.isinf(first) & (lengths > 0)
    first[never] = time[batch.offsets[:-1][never]]
    keep = time <= first[obj] + days
    keep[starts] = True  # an object's first observation always stays
    kept = np.bincount(obj[keep], minlength=len(lengths))
    return Batch(batch.object_id, offsets_from_lengths(kept),
                 {k: np.asarray(v)[keep] for k, v in batch.obs.items()}, batch.meta)


@dataclass
class Chunk(Batch):
    """Whole objects from one input file, as readers deliver them (see module docstring).

    ``where_obs(i)`` and ``where_object(j)`` describe the source position (file and line or row) of
    observation ``i`` / object ``j`` for error messages; they may be slow (only called on errors).
    """

    where_obs: Callable[[int], str] = str
    where_object: Callable[[int], str] = str
    band_label: np.ndarray | None = None  # survey band spelling per observation, for messages
    has_meta: np.ndarray | None = None  # bool per object: found in the metadata file(s)
    files: tuple[str, ...] = ()  # input file(s) the objects come from
    file_of_object: np.ndarray | None = None  # index into files per object (None: all files[0])
    units: int | None = None  # the reader's work units (its weights) this chunk done; None: 1/object


def empty_meta(n: int) -> dict[str, np.ndarray]:
    return {k: np.full(n, META_MISSING[k], dtype=dt) for k, dt in META_DTYPES.items()}


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_rows(chunk: Chunk, obj_of_obs: np.ndarray, problems: Problems) -> np.ndarray:
    """Row-level checks; returns the mask of rows to keep (raises under policy 'fail')."""
    t, f, e, b = (chunk.obs[k] for k in ("time", "flux", "flux_err", "band"))
    checks = [
        ("nonfinite_time", ~np.isfinite(t), "time is {v}", t),
        ("nonfinite_flux", ~np.isfinite(f), "flux is {v}", f),
        ("nonfinite_flux_err", ~np.isfinite(e), "flux_err is {v}", e),
        ("nonpositive_flux_err", np.isfinite(e) & (e <= 0), "flux_err is {v} (must be > 0)", e),
        ("unknown_band", b < 0, "unknown band {v}", chunk.band_label if chunk.band_label is not None else b),
    ]
    bad_any = np.zeros(chunk.n_obs, dtype=bool)
    found = [(reason, mask, text, values) for reason, mask, text, values in checks if mask.any()]
    # Report in file order: the first bad row anywhere is the one a 'fail' run names.
    found.sort(key=lambda item: _first(item[1]))
    for reason, mask, text, values in found:
        i = _first(mask)
        oid = chunk.object_id[obj_of_obs[i]]
        problems.found(reason, f"{chunk.where_obs(i)}: object {oid}: {text.format(v=values[i])}",
                       int(mask.sum()))
        bad_any |= mask
    return ~bad_any


def _time_order(t: np.ndarray, obj_of_obs: np.ndarray) -> np.ndarray | None:
    """Permutation putting each object's rows in time order (stable), or None if already so."""
    same = obj_of_obs[1:] == obj_of_obs[:-1]
    if not np.any(same & (t[1:] < t[:-1])):
        return None
    return np.lexsort((t, obj_of_obs))


def _duplicate_rows(t, b, f, e, obj_of_obs) -> np.ndarray:
    """Mask of rows repeating an earlier row of the same object exactly (time, band, flux, flux_err).

    Rows must be time-ordered per object. Two different measurements in one band at the same
    (rounded) time are real data, e.g. back-to-back DES exposures, and are both kept.
    """
    dup = np.zeros(len(t), dtype=bool)
    tie = np.flatnonzero((obj_of_obs[1:] == obj_of_obs[:-1]) & (t[1:] == t[:-1]))
    if tie.size == 0:
        return dup
    # Only runs of equal (object, time) can hold duplicates; examine just those rows.
    for start in np.unique(_run_starts(tie)):
        stop = start + 1
        while stop < len(t) and obj_of_obs[stop] == obj_of_obs[start] and t[stop] == t[start]:
            stop += 1
        seen = set()
        for i in range(start, stop):
            key = (b[i], f[i], e[i])
            if key in seen:
                dup[i] = True
            seen.add(key)
    return dup


def _run_starts(tie: np.ndarray) -> np.ndarray:
    """For indices i where row i+1 ties row i, the first row of each tie run."""
    starts = tie.copy()
    for k in range(1, len(tie)):
        if tie[k] == tie[k - 1] + 1:
            starts[k] = starts[k - 1]
    return starts


def _is_clean(chunk: Chunk) -> bool:
    """Cheap test of the common case: nothing to report and every object strictly time-ordered.

    Anything else (including equal times, which might be duplicates) takes the full path below.
    """
    if chunk.has_meta is not None and not chunk.has_meta.all():
        return False
    if np.any(chunk.length <= 0):
        return False
    t, f, e, b = (chunk.obs[k] for k in ("time", "flux", "flux_err", "band"))
    if not (np.isfinite(t).all() and np.isfinite(f).all() and ((e > 0) & (e < np.inf)).all()
            and (b >= 0).all()):
        return False
    inside = np.ones(max(len(t) - 1, 0), dtype=bool)
    inside[chunk.offsets[1:-1] - 1] = False  # pairs of rows that straddle two objects
    return not np.any((t[1:] <= t[:-1]) & inside)


def clean_chunk(chunk: Chunk, problems: Problems) -> Chunk:
    """Apply the bad-input policy to a chunk and time-order each object's observations.

    Row problems: non-finite time/flux/flux_err, flux_err <= 0, unknown band, a row repeating an
    earlier one of the object exactly. Object problems: not in the metadata, no observations left.
    """
    if _is_clean(chunk):
        return chunk
    obj_of_obs = np.repeat(np.arange(chunk.n_objects), chunk.length)
    keep_obj = np.ones(chunk.n_objects, dtype=bool)

    if chunk.has_meta is not None and not chunk.has_meta.all():
        missing = ~chunk.has_meta
        j = _first(missing)
        problems.found("object_missing_from_metadata",
                       f"{chunk.where_object(j)}: object {chunk.object_id[j]} has a light curve but "
                       f"is not in the metadata", int(missing.sum()))
        keep_obj &= chunk.has_meta

    keep = _check_rows(chunk, obj_of_obs, problems)

    obs = chunk.obs
    order = _time_order(obs["time"], obj_of_obs)
    source_row = np.arange(chunk.n_obs)
    if order is not None:
        obs = {k: v[order] for k, v in obs.items()}
        obj_of_obs, keep, source_row = obj_of_obs[order], keep[order], source_row[order]

    dup = _duplicate_rows(obs["time"], obs["band"], obs["flux"], obs["flux_err"], obj_of_obs) & keep
    if dup.any():
        i = _first(dup)
        problems.found("duplicate_observation",
                       f"{chunk.where_obs(int(source_row[i]))}: object "
                       f"{chunk.object_id[obj_of_obs[i]]}: duplicate observation at time "
                       f"{float(obs['time'][i])} in band index {int(obs['band'][i])}", int(dup.sum()))
        keep &= ~dup

    keep &= keep_obj[obj_of_obs]
    lengths = np.bincount(obj_of_obs[keep], minlength=chunk.n_objects).astype(np.int64)
    empty = keep_obj & (lengths == 0)
    if empty.any():
        j = _first(empty)
        problems.found("empty_lightcurve",
                       f"{chunk.where_object(j)}: object {chunk.object_id[j]} has no valid "
                       f"observations", int(empty.sum()))
        keep_obj &= ~empty

    if keep.all() and keep_obj.all() and order is None:
        return chunk
    kept_rows, kept_objects = source_row[keep], np.flatnonzero(keep_obj)
    return Chunk(
        object_id=chunk.object_id[keep_obj],
        offsets=offsets_from_lengths(lengths[keep_obj]),
        obs={k: v[keep] for k, v in obs.items()},
        meta={k: v[keep_obj] for k, v in chunk.meta.items()},
        where_obs=lambda i: chunk.where_obs(int(kept_rows[i])),
        where_object=lambda j: chunk.where_object(int(kept_objects[j])),
        files=chunk.files,
        file_of_object=None if chunk.file_of_object is None else chunk.file_of_object[keep_obj],
    )
