"""Checking a store: ``summarize`` (the counts a survey scientist looks at first) and ``verify``
(every invariant of docs/store.md, the data against the checksums recorded when it was written,
and the inputs' sha256 against the provenance record).

Both read observations in bounded blocks, so they run on stores larger than memory. ``verify``
reports what it finds as a list of failures, each naming the dataset, file, object or row; only a
store file that cannot be opened at all raises (``StoreError``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from snia import taxonomy
from snia.errors import StoreError
from snia.files import sha256_of
from snia.progress import progress as show_progress
from snia.store.manifest import manifest_problems, manifest_summary
from snia.store.reader import (
    HDF5_ERRORS,
    Store,
    corrupt,
    missing_sources,
    scan,
    source_problems,
    structure_problems,
    table_problems,
    virtual_sources,
)
from snia.store.schema import DATASETS, dataset_sha256, read_checksum, read_parts

log = logging.getLogger(__name__)

# observations per block of the observation checks (whole objects; ~120 MiB of the five columns):
# memory bounded by observations, not by objects, whose lengths differ 100-fold between surveys
VERIFY_BLOCK = 1 << 22


def summarize(path: str | Path) -> dict:
    """Counts a survey scientist checks first: objects, observations, per type/band/split, time span."""
    with Store(path) as store:
        objs = store.objects  # checked on reading: type codes are inside the taxonomy
        bands = store.bands
        band_counts = np.zeros(len(bands), dtype=np.int64)
        span = [np.inf, -np.inf]

        def count_bands(block):
            if block.size and (block.min() < 0 or block.max() >= len(bands)):
                bad = block.min() if block.min() < 0 else block.max()
                raise corrupt(store.path, f"band code {bad} in observations/band is outside the "
                                          f"bands table (0..{len(bands) - 1})")
            band_counts[:] += np.bincount(block, minlength=len(bands))

        def time_span(block):
            if block.size:
                span[0], span[1] = min(span[0], block.min()), max(span[1], block.max())

        with store.reading("observations"):
            scan(store.file["observations/band"], count_bands)
            scan(store.file["observations/time"], time_span)
        types = np.bincount(objs["type"], minlength=len(taxonomy.CLASSES))
        splits = store.split_names
        split_codes, split_counts = np.unique(objs["split"], return_counts=True)
        return {
            "store": str(store.path),
            "layout": store.layout,
            "objects": len(store),
            "observations": store.n_observations,
            "types": {taxonomy.CLASSES[i]: int(n) for i, n in enumerate(types) if n},
            "bands": {bands.bands[i].name: int(n) for i, n in enumerate(band_counts) if n},
            "splits": {(splits[c] if 0 <= c < len(splits) else "none" if c == -1 else f"code {c}"): int(n)
                       for c, n in zip(split_codes, split_counts)},
            "time_span_mjd": [float(span[0]), float(span[1])],
            "ranks": store.provenance.get("ranks"),
            "inputs": [p["path"] for p in store.provenance.get("inputs", [])],
            "manifest": (store.provenance.get("manifest")
                         or manifest_summary(store.provenance.get("inputs", []))),
        }


def redshift_quantiles(path: str | Path, n: int = 21) -> list[float]:
    """The host photo-z distribution of a store's extragalactic objects (photo-z finite and > 0),
    as ``n`` quantiles at equal probability steps (0 %, ..., 100 %): the target survey's redshifts
    for redshift moves (``augment.redshift_quantiles``). Labels are not read."""
    if n < 2:
        raise ValueError(f"at least 2 quantiles, not {n}")
    with Store(path) as store:
        z = np.asarray(store.objects["hostgal_photoz"], dtype=np.float64)
    z = z[np.isfinite(z) & (z > 0)]
    if len(z) < n:
        raise StoreError(f"{path}: {len(z)} objects with a host photo-z > 0, too few for "
                         f"{n} quantiles")
    return [round(float(q), 4) for q in np.quantile(z, np.linspace(0, 1, n))]


def verify(path: str | Path, check_inputs: bool = True, progress: bool = True) -> list[str]:
    """Every structural invariant of the store, its data against the recorded checksums and (with
    ``check_inputs``) its inputs against the provenance; returns a list of failures (empty = valid).
    A store file that cannot be opened at all raises StoreError. ``progress``: a bar on a
    terminal for the two long passes, checksums and observations (else log lines, snia.progress)."""
    with Store(path, check=False) as store, store.reading("its structure"):
        return _verify(store, check_inputs, progress)


def _verify(store: Store, check_inputs: bool, progress: bool = False) -> list[str]:
    failures = [f"missing shard file {p}" for p in missing_sources(store.file)]
    if failures:
        return failures
    structure = structure_problems(store.file, len(store), store.n_observations)
    sources = source_problems(store.file)
    failures += structure + sources
    if not structure:
        failures += _verify_checksums(store, progress)
    if structure or sources:
        return failures  # the data cannot be read as the store describes it
    try:
        table = table_problems(store.objects, store.n_observations) + _duplicate_ids(store)
        failures += table
        if not table:  # the observation checks find objects through the table
            observations, bands_seen = _verify_observations(store, progress)
            failures += observations
            if not observations:
                failures += _verify_bands_present(store, bands_seen)
    except StoreError as exc:  # data HDF5 cannot read (already named by the checksums)
        failures.append(str(exc))
    if check_inputs:
        failures += _verify_inputs(store.provenance)
    return failures + manifest_problems(store.path, store.provenance)


def _duplicate_ids(store: Store) -> list[str]:
    ids = np.sort(store.objects["object_id"])
    repeated = ids[1:][ids[1:] == ids[:-1]]
    return [f"object id {repeated[0]} appears more than once"] if repeated.size else []


def _verify_checksums(store: Store, progress: bool = False) -> list[str]:
    """Hash every dataset again and compare with the writer's record: for a virtual store each
    shard's datasets (their ``sha256``), else the store's datasets part by part (``sha256_parts``);
    plus ``/bands`` and ``/taxonomy``. A read error (e.g. a chunk failing HDF5's fletcher32 check)
    is a failure of that dataset too."""
    import h5py

    out, unrecorded = [], []
    checks = []  # (file, dataset, None: all rows against its sha256, or (a, b, recorded sha256))
    work = []  # rows each check hashes (its progress)
    sources = virtual_sources(store.file)
    for source in sources:
        checks.append((source.path, source.dataset, None))
        work.append(source.rows)
    virtual = {s.dataset for s in sources}
    for name in DATASETS:
        if name in virtual:
            continue
        parts = read_parts(store.file[name])
        if parts is None:
            unrecorded.append(name)
            continue
        for start, rows, digest in parts:
            checks.append((store.path, name, (start, start + rows, digest)))
            work.append(rows)
    for name in ("bands", "taxonomy"):
        checks.append((store.path, name, None))
        work.append(1)
    handles = {}
    bar = show_progress(sum(work), "verify: checksums", " rows", bar=progress)
    try:
        for (file_path, name, rows), rows_hashed in zip(checks, work):
            bar.update(rows_hashed)
            where = f"{name} in {file_path}"
            try:
                if file_path not in handles:
                    handles[file_path] = (store.file if file_path == store.path
                                          else h5py.File(file_path, "r"))
                ds = handles[file_path][name]
                if rows is None:
                    recorded = read_checksum(ds)
                    if recorded is None:
                        unrecorded.append(where)
                        continue
                    if dataset_sha256(ds) != recorded:
                        out.append(f"{where}: checksum mismatch, the data changed since it was "
                                   f"written (damaged file)")
                else:
                    a, b, recorded = rows
                    if dataset_sha256(ds, a, b) != recorded:
                        out.append(f"{where}, rows {a}..{b - 1}: checksum mismatch, the data changed "
                                   f"since it was written (damaged file)")
            except HDF5_ERRORS as exc:
                out.append(f"{where}: cannot be read, the file is damaged ({exc})")
    finally:
        bar.close()
        for file_path, handle in handles.items():
            if file_path != store.path:
                handle.close()
    if unrecorded:
        log.warning("%s: no checksum recorded for %d dataset(s) (e.g. %s): written by an older snia; "
                    "their bytes are not compared", store.path, len(unrecorded), unrecorded[0])
    return out


class _First:
    """Counts observations breaking one rule and keeps the first as an example."""

    def __init__(self, rule: str):
        self.rule, self.count, self.example = rule, 0, None

    def add(self, bad: np.ndarray, describe) -> None:
        hits = np.flatnonzero(bad)
        if hits.size:
            self.count += hits.size
            if self.example is None:
                self.example = describe(int(hits[0]))

    def message(self) -> str | None:
        return f"{self.count} observation(s) {self.rule}; the first: {self.example}" if self.count else None


def _verify_observations(store: Store, progress: bool = False) -> tuple[list[str], tuple[int, ...]]:
    """The observations' invariants, in one pass of bounded blocks: (failures, the band codes the
    observations hold, for the bands_present check)."""
    n_bands = len(store.bands)
    bar = show_progress(len(store), "verify: observations", bar=progress)
    objs = store.objects
    seen: set[int] = set()
    band = _First(f"with a band index outside the bands table (0..{n_bands - 1})")
    finite = _First("with non-finite time/flux/flux_err or flux_err <= 0")
    order = _First("not in time order within their object")
    for start, batch in store.blocks(VERIFY_BLOCK):
        bar.update(batch.n_objects)
        o, row0 = batch.obs, int(objs["offset"][start])
        seen.update(np.unique(o["band"]).tolist())

        def at(k, batch=batch, row0=row0):  # the object and the store row of batch row k
            j = int(np.searchsorted(batch.offsets, k, side="right") - 1)
            return f"object {batch.object_id[j]}, observation row {row0 + k}"

        band.add((o["band"] < 0) | (o["band"] >= n_bands),
                 lambda k, o=o, at=at: f"{at(k)} has band {o['band'][k]}")
        finite.add(~(np.isfinite(o["flux"]) & np.isfinite(o["flux_err"]) & (o["flux_err"] > 0)
                     & np.isfinite(o["time"])),
                   lambda k, o=o, at=at: f"{at(k)} has time {o['time'][k]}, flux {o['flux'][k]}, "
                                         f"flux_err {o['flux_err'][k]}")
        t = o["time"]
        inside = np.ones(max(len(t) - 1, 0), dtype=bool)
        inside[batch.offsets[1:-1] - 1] = False  # pairs that straddle two objects
        order.add((t[1:] < t[:-1]) & inside,
                  lambda k, t=t, at=at, row0=row0: f"{at(k + 1)} has MJD {t[k + 1]}, earlier than MJD "
                                                   f"{t[k]} of row {row0 + k}")
    bar.close()
    return [m for m in (band.message(), finite.message(), order.message()) if m], tuple(sorted(seen))


def _verify_bands_present(store: Store, scanned: tuple[int, ...]) -> list[str]:
    """The bands ingest recorded as observed are the bands the observations hold (``scanned``,
    found by the observation pass)."""
    recorded = store.recorded_bands_present()
    if recorded is None or recorded == scanned:
        return []
    return [f"the bands_present attribute records bands {list(recorded)}, the observations hold "
            f"bands {list(scanned)}"]


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
    m = info.get("manifest")
    if m and m["files"]:  # one line for any number of files: the manifest beside the store lists them
        lines.append(f"inputs        {m['files']:,} file(s), {m['bytes'] / 1e6:,.1f} MB (manifest sha256 "
                     f"{m['sha256'][:12]})")
    return "\n".join(lines)
