"""SNANA FITS reader: HEAD/PHOT file pairs (plain or gzipped), read with astropy.

A HEAD table has one row per object; its PTROBS_MIN/PTROBS_MAX give the object's 1-based, inclusive
row range in the PHOT table, where objects are separated by rows with MJD = -777. Work is shared in
HEAD rows, so every object is whole in exactly one piece. Plain files are memory-mapped and only the
PHOT rows of the objects being read are touched; gzipped files are decompressed by astropy. PHOT rows
SNANA marks as "no measurement" (``snana.missing_measurements``) are left out and counted.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from snia.errors import InputError
from snia.lightcurve import Chunk, empty_meta, match_columns, offsets_from_lengths
from snia.readers.snana import (
    BYTES_PER_OBS,
    HEADER_META,
    PHOT_ALIASES,
    PHOT_REQUIRED,
    count_missing,
    missing_measurements,
    sentinels_to_nan,
    snana_class,
)
from snia.readers.work import Piece
from snia.taxonomy import INDEX, MISSING_CODE

log = logging.getLogger(__name__)

HEAD_REQUIRED = ("SNID", "PTROBS_MIN", "PTROBS_MAX")
TYPE_COLUMNS = ("SIM_TYPE_NAME", "SIM_TYPE_INDEX", "SIM_NON1A", "SNTYPE")
SEPARATOR_MJD = -777.0  # SNANA's end-of-object marker row in PHOT
# What astropy, gzip and numpy raise on a cut or garbled file (astropy has no error class of its own).
_READ_ERRORS = (OSError, EOFError, IndexError, KeyError, TypeError, ValueError, zlib.error)


@contextmanager
def _fits_errors(path: Path):
    """Turn astropy/gzip failures on a damaged file into an InputError that names the file.

    Astropy signals truncation with a warning and then fails with assorted exceptions; the warning
    text is the useful part, so it is kept for the message.
    """
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield
        except InputError:
            raise
        except _READ_ERRORS as exc:
            hint = "; ".join(str(w.message) for w in caught[:2])
            raise InputError(f"{path}: cannot read this FITS file ({type(exc).__name__}: {exc})"
                             + (f" [{hint}]" if hint else "") + "; is it truncated or corrupt?"
                             ) from None
    for w in caught:
        log.warning("%s: %s", path, w.message)


def _open(path: Path):
    from astropy.io import fits

    # memmap only works on plain files; astropy decompresses .gz itself.
    return fits.open(path, memmap=not path.name.lower().endswith(".gz"), lazy_load_hdus=True)


def _table(hdul, path: Path):
    """The binary table in HDU 1, checked to be complete (cut plain files are caught here)."""
    try:
        hdu = hdul[1]
    except IndexError:
        raise InputError(f"{path}: no table extension (HDU 1): not a SNANA HEAD/PHOT file, or "
                         f"truncated") from None
    if not hasattr(hdu, "columns"):
        raise InputError(f"{path}: HDU 1 is not a table")
    if not path.name.lower().endswith(".gz"):
        need = (hdu.fileinfo()["datLoc"] + hdu.header["NAXIS1"] * hdu.header["NAXIS2"]
                + hdu.header.get("PCOUNT", 0))
        have = path.stat().st_size
        if have < need:
            raise InputError(f"{path}: file is truncated ({have} bytes; its table needs {need})")
    return hdu


def _phot_path(head: Path) -> Path:
    """PHOT partner of a HEAD file: the last 'HEAD' in the file name becomes 'PHOT'."""
    name = head.name
    k = name.rfind("HEAD")
    if k < 0:
        raise InputError(f"{head}: not a SNANA HEAD file name (expected 'HEAD' in the name, with "
                         f"the PHOT file named alike)")
    phot = head.with_name(name[:k] + "PHOT" + name[k + 4:])
    if not phot.exists():
        raise InputError(f"{head}: its PHOT file {phot} does not exist")
    return phot


def _columns_by_upper(hdu) -> dict[str, str]:
    return {name.strip().upper(): name for name in hdu.columns.names}


def _strings(values) -> np.ndarray:
    """FITS character column -> stripped str array (astropy may give bytes or str)."""
    values = np.asarray(values)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii", "replace")
    return np.char.strip(values.astype(str))


class _FitsPair:
    """One HEAD/PHOT pair: row counts, survey and column names, found from the headers alone."""

    def __init__(self, head: Path, survey: str | None, bands):
        self.head = head
        self.phot = _phot_path(head)
        with _fits_errors(head), _open(head) as hdul:
            table = _table(hdul, head)
            self.n_head = int(table.header["NAXIS2"])
            self.head_cols = _columns_by_upper(table)
            survey = survey or hdul[0].header.get("SURVEY") or table.header.get("SURVEY")
        missing = [c for c in HEAD_REQUIRED if c not in self.head_cols]
        if missing:
            raise InputError(f"{head}: HEAD table lacks column(s) {missing}")
        if not survey:
            raise InputError(f"{head}: no SURVEY keyword in the HEAD file; pass --survey (e.g. "
                             f"--survey DES) to say which survey's filters FLT names")
        self.survey = str(survey).strip()
        try:
            bands.letter_lookup(self.survey)
        except ValueError as exc:
            raise InputError(f"{head}: {exc}") from None
        with _fits_errors(self.phot), _open(self.phot) as hdul:
            table = _table(hdul, self.phot)
            self.n_phot = int(table.header["NAXIS2"])
            names = list(table.columns.names)
        self.phot_cols = {k: names[i] for k, i in
                          match_columns(names, PHOT_ALIASES, PHOT_REQUIRED, str(self.phot))[0].items()}
        self.first, self.lengths = self._locate_objects()

    def _locate_objects(self) -> tuple[np.ndarray, np.ndarray]:
        """0-based first PHOT row and number of rows of every HEAD row's light curve.

        PTROBS_MIN/MAX are the normal answer. Some files in circulation are HEAD subsets whose
        pointers were never renumbered (the DES sample from SuperNNova is one); there the MJD = -777
        separator rows still delimit the objects in HEAD order. We use them only when they agree
        with NOBS for every object, and say so in a warning; otherwise the file is garbled: stop.
        """
        with _fits_errors(self.head), _open(self.head) as hdul:
            data = _table(hdul, self.head).data
            lo, hi = (np.array(data.field(self.head_cols[c]), dtype=np.int64)
                      for c in ("PTROBS_MIN", "PTROBS_MAX"))
            nobs = (np.array(data.field(self.head_cols["NOBS"]), dtype=np.int64)
                    if "NOBS" in self.head_cols else None)
            snid = np.array(data.field(self.head_cols["SNID"]))
        problem = self._pointer_problem(lo, hi, nobs, snid)
        if problem is None:
            return lo - 1, hi - lo + 1
        runs = self._separator_runs(nobs)
        if runs is None:
            raise InputError(problem)
        log.warning("%s; the %d objects are read by the MJD=-777 separator rows of %s instead, "
                    "which agree with NOBS for every object", problem, self.n_head, self.phot)
        return runs

    def _pointer_problem(self, lo, hi, nobs, snid) -> str | None:
        """Why the PTROBS pointers cannot be right (None when they can)."""
        lengths = hi - lo + 1
        empty = lengths == 0  # SNANA writes MAX = MIN - 1 for an object without observations
        bad = (lengths < 0) | (~empty & ((lo < 1) | (hi > self.n_phot)))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            return (f"{self.where_object(j, snid[j])}: PTROBS_MIN={lo[j]}, PTROBS_MAX={hi[j]} is "
                    f"not a row range of {self.phot} ({self.n_phot} rows): garbled HEAD file")
        if nobs is not None and np.any(nobs != lengths):
            j = int(np.flatnonzero(nobs != lengths)[0])
            return (f"{self.where_object(j, snid[j])}: NOBS={nobs[j]} but "
                    f"PTROBS_MAX-PTROBS_MIN+1={lengths[j]}: garbled HEAD file")
        overlap = np.flatnonzero(~empty[1:] & (lo[1:] <= np.maximum.accumulate(hi)[:-1]))
        if overlap.size:
            j = int(overlap[0]) + 1
            return (f"{self.where_object(j, snid[j])}: PTROBS range {lo[j]}..{hi[j]} overlaps or "
                    f"precedes an earlier object's: garbled HEAD file")
        return None

    def _separator_runs(self, nobs) -> tuple[np.ndarray, np.ndarray] | None:
        if nobs is None:
            return None
        with _fits_errors(self.phot), _open(self.phot) as hdul:
            mjd = np.array(_table(hdul, self.phot).data.field(self.phot_cols["time"]), dtype=float)
        sep = np.flatnonzero(mjd == SEPARATOR_MJD)
        starts, stops = np.r_[0, sep + 1], np.r_[sep, len(mjd)]
        if len(mjd) and mjd[-1] == SEPARATOR_MJD:
            starts, stops = starts[:-1], stops[:-1]  # a trailing separator closes the last object
        if len(starts) != self.n_head or not np.array_equal(stops - starts, nobs):
            return None
        return starts.astype(np.int64), (stops - starts).astype(np.int64)

    def where_object(self, head_row: int, snid) -> str:
        return f"{self.head}:row {head_row + 1} (SNID {snid})"

    def read(self, start: int, stop: int, max_obs: int, bands, problems):
        """Chunks of whole objects for HEAD rows [start, stop); SNANA's no-measurement rows are
        left out (and counted in ``problems``)."""
        head = self._head_rows(start, stop)
        first, lengths = self.first[start:stop], self.lengths[start:stop]
        meta = _head_meta(head, stop - start)
        with _fits_errors(self.phot):
            hdul = _open(self.phot)
        try:
            for a, b in _batches(lengths, max_obs):
                with _fits_errors(self.phot):
                    obs, rows = self._phot_rows(hdul, first[a:b], lengths[a:b])
                yield self._chunk(head, meta, lengths, a, b, start, obs, rows, bands, problems)
        finally:
            hdul.close()

    def _head_rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        wanted = set(HEAD_REQUIRED) | {"NOBS"} | set(TYPE_COLUMNS)
        wanted |= {c for spellings in HEADER_META.values() for c in spellings}
        with _fits_errors(self.head), _open(self.head) as hdul:
            rows = _table(hdul, self.head).data[start:stop]
            head = {c: np.array(rows.field(self.head_cols[c])) for c in wanted if c in self.head_cols}
        head["SNID"] = self._snids(head["SNID"], start)
        for c in ("PTROBS_MIN", "PTROBS_MAX", "NOBS"):
            if c in head:
                head[c] = head[c].astype(np.int64)
        return head

    def _snids(self, values: np.ndarray, start: int) -> np.ndarray:
        """SNID as int64; some SNANA versions write it as text, which must still be an integer."""
        if values.dtype.kind in "iu":
            return values.astype(np.int64)
        text = _strings(values)
        out = np.empty(len(text), dtype=np.int64)
        for j, value in enumerate(text.tolist()):
            try:
                out[j] = int(value)
            except ValueError:
                raise InputError(f"{self.head}:row {start + j + 1}: SNID {value!r} is not an "
                                 f"integer (snia stores integer object ids)") from None
        return out

    def _phot_rows(self, hdul, first: np.ndarray, lengths: np.ndarray):
        """Canonical columns for objects starting at 0-based PHOT rows ``first``, and each
        observation's 0-based PHOT row."""
        rows = _ranges(first, lengths)
        if rows.size == 0:
            lo = hi = 0
        else:
            lo, hi = int(rows.min()), int(rows.max()) + 1
        # Slicing first keeps memmap reads (and astropy's column conversions) to these rows.
        block = _table(hdul, self.phot).data[lo:hi]
        obs = {name: np.array(block.field(column))[rows - lo] for name, column in self.phot_cols.items()}
        return obs, rows

    def _chunk(self, head, meta, lengths, a, b, start, obs, rows, bands, problems) -> Chunk:
        time = obs["time"].astype(np.float64)
        lengths = lengths[a:b]
        snid = head["SNID"][a:b]
        self._check_separators(time, rows, lengths, snid, start + a)
        missing = missing_measurements(obs["flux"], obs["flux_err"])
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            j = int(np.searchsorted(np.cumsum(lengths), i, side="right"))
            count_missing(problems, missing, obs["flux_err"], f"{self.phot}:row {int(rows[i]) + 1}",
                          snid[j])
            object_of = np.repeat(np.arange(len(lengths)), lengths)
            lengths = np.bincount(object_of[~missing], minlength=len(lengths)).astype(np.int64)
            obs = {k: v[~missing] for k, v in obs.items()}
            time, rows = time[~missing], rows[~missing]
        letters = _strings(obs["band"])
        flag = obs["flag"].astype(np.int32) if "flag" in obs else np.zeros(len(time), np.int32)
        phot, where_object = self.phot, self.where_object
        return Chunk(
            object_id=snid.copy(),
            offsets=offsets_from_lengths(lengths),
            obs={"time": time, "band": bands.indices_for_letters(self.survey, letters),
                 "flux": obs["flux"].astype(np.float32), "flux_err": obs["flux_err"].astype(np.float32),
                 "flag": flag},
            meta={k: v[a:b].copy() for k, v in meta.items()},
            where_obs=lambda i: f"{phot}:row {int(rows[i]) + 1}",
            where_object=lambda j: where_object(start + a + j, snid[j]),
            band_label=letters,
            files=(str(self.head),),
        )

    def _check_separators(self, time, rows, lengths, snid, head_row0: int) -> None:
        """A -777 row inside an object's range means PTROBS and PHOT disagree: stop."""
        sep = time == SEPARATOR_MJD
        if sep.any():
            i = int(np.flatnonzero(sep)[0])
            j = int(np.searchsorted(np.cumsum(lengths), i, side="right"))
            raise InputError(f"{self.phot}:row {int(rows[i]) + 1}: end-of-object row (MJD -777) "
                             f"inside the range of {self.where_object(head_row0 + j, snid[j])}: "
                             f"HEAD and PHOT files do not match")


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) over (starts, lengths), without a Python loop."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total) - np.repeat(offsets - starts, lengths)


def _batches(lengths: np.ndarray, max_obs: int):
    """(a, b) object ranges of roughly max_obs observations (each at least one object)."""
    before = np.cumsum(lengths) - lengths
    group = before // max(1, max_obs)
    cuts = np.flatnonzero(np.diff(group)) + 1
    bounds = np.concatenate(([0], cuts, [len(lengths)]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _head_meta(head: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Store metadata from HEAD columns; SNANA's sentinels become NaN (``sentinels_to_nan``)."""
    meta = empty_meta(n)
    for name, spellings in HEADER_META.items():
        column = next((head[c] for c in spellings if c in head), None)
        if column is None:
            continue
        meta[name][:] = sentinels_to_nan(name, column)
    meta["type"][:] = _types(head, n)
    code = head.get("SIM_TYPE_INDEX", head.get("SNTYPE"))
    meta["source_type"][:] = code if code is not None else MISSING_CODE
    return meta


def _types(head: dict[str, np.ndarray], n: int) -> np.ndarray:
    names = _strings(head["SIM_TYPE_NAME"]) if "SIM_TYPE_NAME" in head else None

    def field(c, j):
        return head[c][j] if c in head else None

    return np.array([INDEX[snana_class(names[j] if names is not None else None,
                                       field("SIM_TYPE_INDEX", j), field("SIM_NON1A", j),
                                       field("SNTYPE", j))] for j in range(n)], dtype=np.int8)


class SnanaFitsReader:
    """Reads SNANA FITS HEAD files (inputs) together with their PHOT partners."""

    atomic = False  # HEAD row ranges may cut a file; objects stay whole
    progress_unit = " objects"  # a work unit (HEAD row) is an object: chunks count objects

    def __init__(self, inputs, metadata, bands, problems, survey=None, chunk_bytes=16 << 20):
        if metadata:
            raise InputError("the snana-fits format takes its metadata from the HEAD files; do not "
                             "pass --metadata")
        self.files = [Path(p) for p in inputs]
        self.bands = bands
        self.problems = problems  # row-level problems are reported by clean_chunk
        self.max_obs = max(1, int(chunk_bytes) // BYTES_PER_OBS)
        self.pairs = [_FitsPair(p, survey, bands) for p in self.files]
        log.debug("snana-fits: %d HEAD file(s), %d objects", len(self.pairs), sum(self.weights()))

    def input_files(self) -> list[Path]:
        return [path for pair in self.pairs for path in (pair.head, pair.phot)]

    def weights(self) -> list[int]:
        return [pair.n_head for pair in self.pairs]

    def metadata_ids(self):
        return None  # metadata lives in the HEAD rows, one per light curve

    def where_metadata(self, object_id: int) -> str:
        raise NotImplementedError("snana-fits has no separate metadata files")

    def read(self, pieces: list[Piece]):
        for piece in pieces:
            if piece.stop > piece.start:
                yield from self.pairs[piece.item].read(piece.start, piece.stop, self.max_obs,
                                                       self.bands, self.problems)
