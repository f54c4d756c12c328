"""Checking a store: ``summarize`` (the counts a survey scientist looks at first) and ``verify``
(every invariant of docs/store.md, plus the inputs' sha256 against the provenance record).

Both read observations in bounded blocks, so they run on stores larger than memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snia import taxonomy
from snia.files import sha256_of
from snia.lightcurve import OBS_DTYPES
from snia.store.reader import Store, missing_sources, scan
from snia.store.schema import OBJECT_DTYPES


def summarize(path: str | Path) -> dict:
    """Counts a survey scientist checks first: objects, observations, per type/band/split, time span."""
    with Store(path) as store:
        objs = store.objects
        bands = store.bands
        band_counts = np.zeros(len(bands), dtype=np.int64)
        span = [np.inf, -np.inf]

        def count_bands(block):
            band_counts[:] += np.bincount(block, minlength=len(bands))[:len(bands)]

        def time_span(block):
            if block.size:
                span[0], span[1] = min(span[0], block.min()), max(span[1], block.max())

        scan(store.file["observations/band"], count_bands)
        scan(store.file["observations/time"], time_span)
        types = np.bincount(objs["type"], minlength=len(taxonomy.CLASSES))
        splits = store.split_names
        split_codes, split_counts = np.unique(objs["split"], return_counts=True)
        return {
            "store": str(store.path),
            "layout": bytes(store.file.attrs["layout"]).decode(),
            "objects": len(store),
            "observations": store.n_observations,
            "types": {taxonomy.CLASSES[i]: int(n) for i, n in enumerate(types) if n},
            "bands": {bands.bands[i].name: int(n) for i, n in enumerate(band_counts) if n},
            "splits": {(splits[c] if c >= 0 else "none"): int(n)
                       for c, n in zip(split_codes, split_counts)},
            "time_span_mjd": [float(span[0]), float(span[1])],
            "ranks": store.provenance.get("ranks"),
            "inputs": [p["path"] for p in store.provenance.get("inputs", [])],
        }


def verify(path: str | Path, check_inputs: bool = True) -> list[str]:
    """Every structural invariant of the store; returns a list of failures (empty = valid)."""
    import h5py

    failures: list[str] = []
    with h5py.File(path, "r") as f:
        failures += [f"missing shard file {p}" for p in missing_sources(f)]
        if failures:
            return failures
    with Store(path) as store:
        failures += _verify_table(store)
        failures += _verify_observations(store)
        if check_inputs:
            failures += _verify_inputs(store.provenance)
    return failures


def _verify_table(store: Store) -> list[str]:
    out = []
    objs = store.objects
    n, n_obs = len(store), store.n_observations
    sizes = {name: store.file["objects"][name].shape[0] for name in OBJECT_DTYPES}
    out += [f"objects/{k} has {v} rows, expected {n}" for k, v in sizes.items() if v != n]
    sizes = {name: store.file["observations"][name].shape[0] for name in OBS_DTYPES}
    out += [f"observations/{k} has {v} rows, expected {n_obs}" for k, v in sizes.items() if v != n_obs]
    if out:
        return out
    offset, length = objs["offset"], objs["length"]
    expected = np.concatenate(([0], np.cumsum(length)[:-1]))
    if np.any(offset != expected):
        i = int(np.flatnonzero(offset != expected)[0])
        out.append(f"offsets not contiguous: object {objs['object_id'][i]} (row {i}) has offset "
                   f"{offset[i]}, expected {expected[i]}")
    if np.any(length <= 0):
        out.append(f"{int(np.sum(length <= 0))} object(s) with no observations")
    if length.sum() != n_obs:
        out.append(f"lengths add up to {length.sum()}, but the store holds {n_obs} observations")
    ids = np.sort(objs["object_id"])
    if np.any(ids[1:] == ids[:-1]):
        out.append(f"object id {ids[1:][ids[1:] == ids[:-1]][0]} appears more than once")
    bad_type = (objs["type"] < 0) | (objs["type"] >= len(taxonomy.CLASSES))
    if bad_type.any():
        out.append(f"{int(bad_type.sum())} object(s) with a type outside the taxonomy table")
    return out


def _verify_observations(store: Store) -> list[str]:
    out = []
    n_bands = len(store.bands)
    for batch in store.iter_batches(1 << 16):
        o = batch.obs
        if np.any((o["band"] < 0) | (o["band"] >= n_bands)):
            out.append("band index outside the bands table")
        if not (np.all(np.isfinite(o["flux"])) and np.all(np.isfinite(o["flux_err"]))
                and np.all(o["flux_err"] > 0) and np.all(np.isfinite(o["time"]))):
            out.append("non-finite time/flux/flux_err or flux_err <= 0")
        t = o["time"]
        inside = np.ones(len(t) - 1 if len(t) else 0, dtype=bool)
        inside[batch.offsets[1:-1] - 1] = False  # pairs that straddle two objects
        if np.any((t[1:] < t[:-1]) & inside):
            out.append("observations not in time order within an object")
        if out:
            return [f"{m} (in objects {batch.object_id[0]}..{batch.object_id[-1]})" for m in out]
    return out


def _verify_inputs(provenance: dict) -> list[str]:
    out = []
    for entry in provenance.get("inputs", []):
        path = Path(entry["path"])
        if not path.exists():
            continue  # inputs may have been moved away; only present files can be compared
        if path.stat().st_size != entry["bytes"]:
            out.append(f"input {path} changed size since ingestion")
        elif sha256_of(path) != entry["sha256"]:
            out.append(f"input {path} changed (sha256 differs from the provenance record)")
    return out


def format_summary(info: dict) -> str:
    """The text of ``snia store info``: a summary from ``summarize``, one fact per line."""
    lines = [f"store         {info['store']}  ({info['layout']} layout, written by "
             f"{info['ranks']} rank(s))",
             f"objects       {info['objects']:,}",
             f"observations  {info['observations']:,}",
             f"time span     MJD {info['time_span_mjd'][0]:.3f} .. {info['time_span_mjd'][1]:.3f}"]
    for title, key in (("types", "types"), ("bands", "bands"), ("splits", "splits")):
        lines.append(f"{title:<13} " + ", ".join(f"{k}: {v:,}" for k, v in info[key].items()))
    return "\n".join(lines)
