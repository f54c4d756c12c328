"""SNANA text reader: one ``.DAT`` file per object (the SPCC / SNANA "TERSE" format).

A file is a header of ``KEY: value`` lines (SURVEY, SNID, SNTYPE, RA, DECL, MWEBV, redshifts,
SIM_* truth), then ``NOBS: n``, ``VARLIST: MJD FLT ...`` and ``n`` ``OBS:`` rows, then ``END:``.
Files are never cut (``atomic``): each piece is one whole file, and the objects of up to
``FILES_PER_CHUNK`` files go into one chunk to keep per-chunk overhead low. A file that cannot be
read as a whole (empty, no VARLIST, NOBS not matching its rows, no END, a bad header value) is one
object's problem: ``fail`` stops naming its file and line, ``skip`` leaves the file out and counts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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

NUMERIC_OBS = ("time", "flux", "flux_err", "flag")


class _FileProblem(InputError):
    """A problem that makes one whole file (one object) unreadable; ``reason`` names it for the
    skip counts."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Object:
    """One parsed file: the light curve in canonical columns plus its header values."""

    path: Path
    snid: int
    obs: dict[str, np.ndarray]  # time, band, flux, flux_err, flag
    letters: np.ndarray  # FLT as written
    lines: np.ndarray  # 1-based line number of each observation
    meta: dict[str, float]
    type: int
    source_type: int


class _Header(dict):
    """KEY -> (value text, line number); the first occurrence of a key wins."""

    def text(self, *keys: str) -> tuple[str, int] | None:
        return next((self[k] for k in keys if k in self), None)

    def number(self, path: Path, *keys: str, kind=float):
        """First token of the first present key as a number; None when absent."""
        found = self.text(*keys)
        if found is None or not found[0].split():
            return None
        token, line = found[0].split()[0], found[1]
        try:
            return kind(token)
        except ValueError:
            raise _FileProblem("bad_header_value",
                               f"{path}:line {line}: {token!r} is not "
                               f"{'an integer' if kind is int else 'a number'}") from None

    def end_line(self, varlist) -> int:
        """Where the header ends (the NOBS or VARLIST line): what a missing key's message names."""
        found = self.text("NOBS")
        return found[1] if found else varlist[1] if varlist else 1


@dataclass
class _Scan:
    """A file split into its header, VARLIST (names, line), OBS rows (tokens + line numbers)."""

    header: _Header
    varlist: tuple[list[str], int] | None
    rows: list[list[str]]
    lines: list[int]
    end: bool  # an END: line was found
    n_lines: int  # lines read


def _scan(path: Path) -> _Scan:
    header, varlist, rows, lines, end, blank = _Header(), None, [], [], False, True
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc})") from None
    n = 0
    with f:
        for n, line in enumerate(f, 1):
            blank = blank and not line.strip()
            if line.lstrip().startswith("#"):
                continue
            key, sep, rest = line.partition(":")
            if not sep:
                continue  # blank or free-text line
            key = key.strip().upper()
            if key == "OBS":
                if varlist is None:
                    raise _FileProblem("missing_varlist",
                                       f"{path}:line {n}: OBS row before any VARLIST line (cannot "
                                       f"tell which column is which)")
                rows.append(rest.split())
                lines.append(n)
            elif key == "VARLIST":
                varlist = (rest.split(), n)
            elif key == "END":
                end = True
                break
            else:
                header.setdefault(key, (rest.strip(), n))
    if blank:
        raise _FileProblem("empty_file", f"{path}:line 1: empty file (no header, no observations)")
    return _Scan(header, varlist, rows, lines, end, n)


def _check_complete(path: Path, scan: _Scan) -> None:
    """NOBS must match the OBS rows and the file must reach END: otherwise it was cut short."""
    header, varlist, n_rows = scan.header, scan.varlist, len(scan.rows)
    if varlist is None:
        raise _FileProblem("missing_varlist", f"{path}:line {header.end_line(varlist)}: no VARLIST "
                                              f"line (the OBS columns are not named)")
    nobs = header.number(path, "NOBS", kind=int)
    if nobs is not None and nobs != n_rows:
        raise _FileProblem("nobs_mismatch", f"{path}:line {header.text('NOBS')[1]}: NOBS says {nobs} "
                                            f"but {n_rows} OBS rows were found: truncated or garbled "
                                            f"file")
    if not scan.end:
        raise _FileProblem("truncated_file", f"{path}:line {scan.n_lines}: no END: line after "
                                             f"{n_rows} OBS rows: truncated file")
    nvar = header.number(path, "NVAR", kind=int)
    if nvar is not None and nvar != len(varlist[0]):
        raise _FileProblem("nvar_mismatch", f"{path}:line {varlist[1]}: VARLIST names "
                                            f"{len(varlist[0])} columns but NVAR says {nvar}")


def _parse_numbers(tokens: list[str], kind) -> tuple[np.ndarray, np.ndarray]:
    """Values and a mask of the tokens that are not numbers (fast path: all fine)."""
    try:
        return np.array(tokens, dtype=np.float64).astype(kind), np.zeros(len(tokens), dtype=bool)
    except ValueError:
        pass
    values, bad = np.zeros(len(tokens), dtype=np.float64), np.zeros(len(tokens), dtype=bool)
    for i, token in enumerate(tokens):
        try:
            values[i] = float(token)
        except ValueError:
            bad[i] = True
    return values.astype(kind), bad


class SnanaTextReader:
    """Reads SNANA text light-curve files (one object per file)."""

    atomic = True  # a file is one object: never cut
    progress_unit = " objects"  # a work unit (file) is an object: chunks count objects
    FILES_PER_CHUNK = 500

    def __init__(self, inputs, metadata, bands, problems, survey=None, chunk_bytes=16 << 20):
        if metadata:
            raise InputError("the snana-text format takes its metadata from the .DAT file headers; "
                             "do not pass --metadata")
        self.files = [Path(p) for p in inputs]
        self.bands = bands
        self.problems = problems
        self.survey = survey
        self.max_obs = max(1, int(chunk_bytes) // BYTES_PER_OBS)
        if survey:
            self._lookup_check(survey, "--survey")
        try:
            self.sizes = [p.stat().st_size for p in self.files]
        except OSError as exc:
            raise InputError(f"cannot read input file: {exc}") from None

    def _lookup_check(self, survey: str, where) -> None:
        try:
            self.bands.letter_lookup(survey)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None

    def input_files(self) -> list[Path]:
        return list(self.files)

    def weights(self) -> list[int]:
        return list(self.sizes)

    def metadata_ids(self):
        return None  # metadata lives in each file's header

    def where_metadata(self, object_id: int) -> str:
        raise NotImplementedError("snana-text has no separate metadata files")

    def read(self, pieces: list[Piece]):
        batch, n_obs = [], 0
        for piece in pieces:
            try:
                obj = self._parse(self.files[piece.item])
            except _FileProblem as problem:
                self.problems.found(problem.reason, str(problem))  # 'fail' raises here
                continue
            batch.append(obj)
            n_obs += len(obj.lines)
            if len(batch) >= self.FILES_PER_CHUNK or n_obs >= self.max_obs:
                yield _chunk(batch)
                batch, n_obs = [], 0
        if batch:
            yield _chunk(batch)

    def _parse(self, path: Path) -> _Object:
        scan = _scan(path)
        _check_complete(path, scan)
        header, varlist = scan.header, scan.varlist
        snid = header.number(path, "SNID", kind=int)
        if snid is None:
            raise _FileProblem("missing_snid", f"{path}:line {header.end_line(varlist)}: no SNID "
                                               f"line (the object id) in the header")
        found = header.text("SURVEY")
        survey = self.survey or (found[0].split()[0] if found and found[0].split() else None)
        if not survey:  # not one file's problem: every file needs it, and --survey gives it
            raise InputError(f"{path}:line {header.end_line(varlist)}: no SURVEY line; pass "
                             f"--survey (e.g. --survey DES) to say which survey's filters FLT names")
        self._lookup_check(survey, path)
        obs, letters, lines = self._observations(path, snid, varlist, scan.rows,
                                                 np.asarray(scan.lines, np.int64))
        obs["band"] = self.bands.indices_for_letters(survey, letters)
        cls, source = _types(path, header)
        return _Object(path, snid, obs, letters, lines, _meta(path, header), cls, source)

    def _observations(self, path: Path, snid: int, varlist, rows, lines):
        """Canonical columns from OBS rows; malformed rows are reported and dropped, and so are
        (counted, not as an error) rows SNANA marks as "no measurement"."""
        names, varlist_line = varlist
        try:
            cols, _ = match_columns(names, PHOT_ALIASES, PHOT_REQUIRED, f"{path}:line {varlist_line}")
        except InputError as exc:
            raise _FileProblem("missing_column", str(exc)) from None
        wrong = np.array([len(r) != len(names) for r in rows], dtype=bool)
        good = [r for r, w in zip(rows, wrong) if not w]
        good_lines = lines[~wrong]
        out, non_numeric, first_bad = {}, np.zeros(len(good), dtype=bool), None
        for name in NUMERIC_OBS:
            if name not in cols:
                continue
            tokens = [r[cols[name]] for r in good]
            out[name], bad = _parse_numbers(tokens, np.int32 if name == "flag" else np.float64)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                if first_bad is None or i < first_bad[0]:
                    first_bad = (i, f"column {names[cols[name]]!r}: {tokens[i]!r} is not a number")
            non_numeric |= bad
        found = []  # (line, reason, text, count); reported earliest line first, as 'fail' names it
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            found.append((int(lines[i]), "wrong_field_count",
                          f"expected {len(names)} fields (VARLIST), found {len(rows[i])}",
                          int(wrong.sum())))
        if first_bad is not None:
            found.append((int(good_lines[first_bad[0]]), "non_numeric", first_bad[1],
                          int(non_numeric.sum())))
        for line, reason, text, count in sorted(found):
            self.problems.found(reason, f"{path}:line {line}: object {snid}: {text}", count)
        keep = ~non_numeric
        missing = missing_measurements(out["flux"], out["flux_err"]) & keep
        if missing.any():
            count_missing(self.problems, missing, out["flux_err"],
                          f"{path}:line {int(good_lines[_first(missing)])}", snid)
            keep &= ~missing
        letters = np.array([r[cols["band"]] for r in good], dtype=str)[keep]
        obs = {k: v[keep] for k, v in out.items()}
        if "flag" not in obs:
            obs["flag"] = np.zeros(int(keep.sum()), dtype=np.int32)
        obs["flux"] = obs["flux"].astype(np.float32)
        obs["flux_err"] = obs["flux_err"].astype(np.float32)
        return obs, letters, good_lines[keep]


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _meta(path: Path, header: _Header) -> dict[str, float]:
    """Header metadata (``HEADER_META``: the first number after ':'); SNANA's "not known"
    sentinels become NaN (``sentinels_to_nan``). The photo-z error is a line of its own or, more
    often, written after '+-' on the photo-z line."""
    meta = {}
    for name, keys in HEADER_META.items():
        value = header.number(path, *keys)
        if value is None and name == "hostgal_photoz_err":
            value = _after_plus_minus(header.text(*HEADER_META["hostgal_photoz"]))
        if value is not None:
            meta[name] = sentinels_to_nan(name, value)
    return meta


def _after_plus_minus(found) -> float | None:
    """The error in 'value +- error' (None if not written that way)."""
    if found is None:
        return None
    tokens = found[0].split()
    if "+-" in tokens and tokens.index("+-") + 1 < len(tokens):
        try:
            return float(tokens[tokens.index("+-") + 1])
        except ValueError:
            return None
    return None


def _types(path: Path, header: _Header) -> tuple[int, int]:
    """(class index, source code): SIM_COMMENT > SIM_TYPE_INDEX > SIM_NON1a > SNTYPE."""
    comment = header.text("SIM_COMMENT", "SIM_TYPE_NAME")
    type_index = header.number(path, "SIM_TYPE_INDEX", kind=int)
    non1a = header.number(path, "SIM_NON1A", kind=int)
    sntype = header.number(path, "SNTYPE", kind=int)
    cls = snana_class(comment[0] if comment else None, type_index, non1a, sntype)
    source = next((c for c in (non1a, type_index, sntype) if c is not None), MISSING_CODE)
    return INDEX[cls], source


def _chunk(batch: list[_Object]) -> Chunk:
    lengths = np.array([len(o.lines) for o in batch], dtype=np.int64)
    meta = empty_meta(len(batch))
    for j, o in enumerate(batch):
        for name, value in o.meta.items():
            meta[name][j] = value
        meta["type"][j], meta["source_type"][j] = o.type, o.source_type
    obs = {k: np.concatenate([o.obs[k] for o in batch]) for k in ("time", "band", "flux",
                                                                  "flux_err", "flag")}
    lines = np.concatenate([o.lines for o in batch])
    ends = np.cumsum(lengths)
    paths = [o.path for o in batch]

    def where_obs(i):
        return f"{paths[int(np.searchsorted(ends, i, side='right'))]}:line {int(lines[i])}"

    log.debug("snana-text chunk: %d objects, %d observations", len(batch), int(ends[-1]))
    return Chunk(object_id=np.array([o.snid for o in batch], dtype=np.int64),
                 offsets=offsets_from_lengths(lengths), obs=obs, meta=meta, where_obs=where_obs,
                 where_object=lambda j: f"{paths[j]}",
                 band_label=np.concatenate([o.letters for o in batch]),
                 files=tuple(str(p) for p in paths), file_of_object=np.arange(len(batch)))
