"""The PLAsTiCC metadata file(s): read with pyarrow, every bad value named by file, line, object
and column (or, under ``--on-error skip``, the object dropped or the optional value set to NaN and
counted), and joined to the light curves by object id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snia.errors import InputError
from snia.lightcurve import OBS_ALIASES, empty_meta, match_columns
from snia.readers.csv_file import gzip_errors, open_bytes, read_header
from snia.taxonomy import plasticc_types

META_ALIASES = {
    "object_id": OBS_ALIASES["object_id"],
    "ra": ("ra",),
    "dec": ("decl", "dec"),
    "ddf": ("ddf_bool", "ddf"),
    "specz": ("hostgal_specz", "specz"),
    "hostgal_photoz": ("hostgal_photoz",),
    "hostgal_photoz_err": ("hostgal_photoz_err",),
    "mwebv": ("mwebv",),
}


# The test set hides the class in `target` (0) and gives it in `true_target`: prefer the truth.
TARGET_COLUMNS = ("true_target", "target")


META_COLUMNS = list(META_ALIASES)[1:] + ["target"]


# A bad value in a required column drops the object (skip); in the others it is stored as "not known".
REQUIRED_META = ("object_id", "target")


def pyarrow_csv():
    import pyarrow as pa
    import pyarrow.csv as csv

    return pa, csv


def parses(text: str, kind) -> bool:
    """Whether Python reads ``text`` as a number of this kind (stricter than Python: no '_' or
    surrounding blanks, which Arrow refuses too)."""
    if not text or "_" in text or text != text.strip():
        return False
    try:
        kind(text)
        return True
    except ValueError:
        return False


def to_numbers(column, target):
    """A text (or binary) Arrow column -> (Arrow array of ``target`` with nulls where a value is
    empty or not a number, empty mask, not-a-number mask).

    Values are Arrow's own conversion, as in the fast typed read (blanks and tabs around a number
    trimmed, as there). Bad ones: Python's, then those only Arrow refuses, by halving (few: cheap).
    """
    pa, _ = pyarrow_csv()
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_binary(column.type):
        try:
            column = column.cast(pa.string())
        except pa.ArrowInvalid:  # not UTF-8: the bytes, shown with replacement characters
            column = pa.array([None if v is None else v.decode("utf-8", "replace")
                               for v in column.to_pylist()], pa.string())
    column = column.fill_null("")
    empty = pc.equal(column, "").to_numpy(zero_copy_only=False)
    as_null = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), pc.utf8_trim(column, characters=" \t"))
    try:
        return as_null.cast(target), empty, np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        pass
    kind = int if pa.types.is_integer(target) else float
    texts = as_null.to_pylist()
    bad = np.array([not e and not parses(t, kind) for t, e in zip(texts, empty)], dtype=bool)
    _bisect_bad(as_null, target, np.flatnonzero(~bad & ~empty), bad)
    cleaned = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), as_null)
    return cleaned.cast(target), empty, bad


def _bisect_bad(column, target, rows: np.ndarray, bad: np.ndarray) -> None:
    """Mark in ``bad`` the ``rows`` of ``column`` that Arrow cannot convert."""
    pa, _ = pyarrow_csv()
    try:
        column.take(pa.array(rows, pa.int64())).cast(target)
        return
    except pa.ArrowInvalid:
        if len(rows) == 1:
            bad[rows[0]] = True
            return
    half = len(rows) // 2
    _bisect_bad(column, target, rows[:half], bad)
    _bisect_bad(column, target, rows[half:], bad)


def object_text(oid) -> str:
    return "" if oid is None else f"object {oid}: "


class Metadata:
    """All metadata rows (small: one row per object), sorted by object id for joins.

    A bad required value drops the row (``dropped``: the ids of such objects, so that their light
    curves are left out without being reported a second time); a bad optional one becomes NaN.
    """

    def __init__(self, files: list[Path], problems):
        self.files = files
        self._blanks: dict[int, np.ndarray] = {}
        ids, cols, origin, dropped, empty = [], {k: [] for k in META_COLUMNS}, [], [], []
        for fi, path in enumerate(files):
            file_ids, file_cols, rows, file_dropped, n_lines = self._read(fi, path, problems)
            ids.append(file_ids)
            for name in META_COLUMNS:
                cols[name].append(file_cols[name])
            origin.append(np.stack([np.full(len(rows), fi), rows], axis=1))
            dropped.append(file_dropped)
            if n_lines == 0:
                empty.append(path)
        if len(empty) == len(files):
            raise InputError(f"no objects to store: metadata file(s) {', '.join(map(str, empty))} "
                             f"have a header but no rows (every light curve needs its metadata row)")
        for path in empty:
            problems.found("empty_file", f"{path}:line 2: no data rows after the header line "
                                         f"(metadata file)")
        ids = np.concatenate(ids).astype(np.int64)
        if ids.size == 0:  # only under 'skip': every row had a problem
            counts = ", ".join(f"{reason} {n}" for reason, n in sorted(problems.counts.items()))
            raise InputError(f"no objects to store: no row of metadata file(s) "
                             f"{', '.join(map(str, files))} is usable ({counts})")
        origin = np.concatenate(origin).astype(np.int64)
        order = np.argsort(ids, kind="stable")
        self.ids, self.origin = ids[order], origin[order]
        self.columns = {k: np.concatenate(v).astype(np.float64)[order] for k, v in cols.items()}
        self.dropped = np.unique(np.concatenate(dropped).astype(np.int64))
        self._drop_duplicates(problems)

    def _read(self, fi: int, path: Path, problems):
        """(ids, columns, data-row index of each row, dropped ids, data rows in the file)."""
        pa, _ = pyarrow_csv()
        with gzip_errors(path), open_bytes(path) as f:
            _, header = read_header(path, f)
        found, _ = match_columns(header, META_ALIASES, ("object_id",), f"{path}:line 1")
        wanted = dict(found)
        target = next((header.index(c) for c in TARGET_COLUMNS if c in header), None)
        if target is not None:
            wanted["target"] = target
        types = {name: pa.int64() if name == "object_id" else pa.float64() for name in wanted}
        table, invalid = self._csv(path, header, wanted, types, threads=True)
        if table is None or invalid or any(c.null_count for c in table.columns):
            return self._diagnose(fi, path, header, wanted, types, problems)
        n = table.num_rows
        cols = {name: (table.column(header[wanted[name]]).to_numpy() if name in wanted
                       else np.full(n, np.nan)) for name in META_COLUMNS}
        ids = table.column(header[wanted["object_id"]]).to_numpy()
        return ids, cols, np.arange(n), np.empty(0, np.int64), n

    def _csv(self, path: Path, header, wanted, types, threads: bool):
        """The wanted columns (None if some value does not convert) and the rows of the wrong
        length. Blank lines are not rows."""
        pa, csv = pyarrow_csv()
        invalid = []

        def bad_row(row):
            invalid.append(row)
            return "skip"

        try:
            with gzip_errors(path), open_bytes(path) as f:
                table = csv.read_csv(f, read_options=csv.ReadOptions(
                    column_names=header, skip_rows=1, use_threads=threads),
                    parse_options=csv.ParseOptions(invalid_row_handler=bad_row),
                    convert_options=csv.ConvertOptions(
                        column_types={header[i]: types[name] for name, i in wanted.items()},
                        include_columns=[header[i] for i in wanted.values()],
                        null_values=[""], strings_can_be_null=False))
        except pa.ArrowInvalid as exc:
            if not threads:  # the text read has nothing left to convert: something else is wrong
                raise InputError(f"{path}: cannot read metadata: {exc}") from None
            return None, invalid
        return table, invalid

    def _diagnose(self, fi, path, header, wanted, types, problems):
        """Slow path for a file with some bad row or value: each problem reported with its line
        and object, earliest line first (the one a 'fail' run names)."""
        pa, _ = pyarrow_csv()
        table, invalid = self._csv(path, header, wanted, {n: pa.binary() for n in wanted}, False)
        skipped = [row.number - 2 for row in invalid]  # data-row index (the header is row 1)
        n = table.num_rows
        rows = np.delete(np.arange(n + len(skipped)), skipped)
        findings = []  # (data row, column position, reason, message, count)

        def note(reason, mask, column_pos, message_of):
            if mask.any():
                r = int(np.flatnonzero(mask)[0])
                findings.append((int(rows[r]), column_pos, reason,
                                 f"{self.where_row(fi, int(rows[r]))}: {message_of(r)}",
                                 int(mask.sum())))

        dropped = []
        if invalid:
            id_at = wanted["object_id"]
            invalid_ids = [int_field(row.text, id_at) for row in invalid]
            first = invalid[0]
            findings.append((first.number - 2, -1, "metadata_wrong_field_count",
                             f"{self.where_row(fi, first.number - 2)}: {object_text(invalid_ids[0])}"
                             f"expected {first.expected_columns} fields, found {first.actual_columns}",
                             len(invalid)))
            dropped += [oid for oid in invalid_ids if oid is not None]

        texts = {name: table.column(header[i]) for name, i in wanted.items()}
        id_values, id_empty, id_bad = to_numbers(texts["object_id"], types["object_id"])
        bad_id = id_empty | id_bad
        id_text = texts["object_id"]
        note("metadata_bad_object_id", bad_id, wanted["object_id"],
             lambda r: "empty object_id" if id_empty[r] else
             f"object_id {cell_text(id_text, r)!r} is not an integer")
        ids = id_values.fill_null(0).to_numpy(zero_copy_only=False)
        keep = ~bad_id
        missing_any, non_numeric_any = np.zeros(n, bool), np.zeros(n, bool)
        first_missing = first_non_numeric = None
        cols = {}
        for name in sorted(set(wanted) - {"object_id"}, key=wanted.get):
            pos, column_name = wanted[name], header[wanted[name]]
            values, empty, bad = to_numbers(texts[name], types[name])
            empty, bad = empty & ~bad_id, bad & ~bad_id

            def message(r, column_name=column_name, empty=empty, text=texts[name]):
                said = (f"empty value in column {column_name!r}" if empty[r] else
                        f"column {column_name!r}: {cell_text(text, r)!r} is not a number")
                return f"object {ids[r]}: {said}"

            if name in REQUIRED_META:
                note("metadata_bad_target", empty | bad, pos, message)
                keep &= ~(empty | bad)
                dropped += ids[empty | bad].tolist()
            else:
                if empty.any() and (first_missing is None or first_true(empty) < first_missing[0]):
                    first_missing = (first_true(empty), pos, message)
                if bad.any() and (first_non_numeric is None or first_true(bad) < first_non_numeric[0]):
                    first_non_numeric = (first_true(bad), pos, message)
                missing_any |= empty
                non_numeric_any |= bad
            cols[name] = values.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls: NaN
        for reason, mask, first in (("metadata_missing_value", missing_any, first_missing),
                                    ("metadata_non_numeric", non_numeric_any, first_non_numeric)):
            if first is not None:
                r, pos, message = first
                findings.append((int(rows[r]), pos, reason,
                                 f"{self.where_row(fi, int(rows[r]))}: {message(r)}",
                                 int(mask.sum())))
        for _, _, reason, text, count in sorted(findings, key=lambda f: f[:2]):
            problems.found(reason, text, count)
        m = int(keep.sum())
        out = {name: cols[name][keep] if name in cols else np.full(m, np.nan) for name in META_COLUMNS}
        return ids[keep], out, rows[keep], np.array(dropped, np.int64), len(rows)

    def where_row(self, fi: int, row: int) -> str:
        """File and line of data row ``row`` (0-based, blank lines not counted) of file ``fi``."""
        line = row + 2
        for blank in self._blank_lines(fi):
            if blank > line:
                break
            line += 1
        return f"{self.files[fi]}:line {line}"

    def _blank_lines(self, fi: int) -> np.ndarray:
        """Line numbers of the empty lines of file ``fi``, which the CSV parser skips (found once,
        and only when a message needs a line)."""
        if fi not in self._blanks:
            self._blanks[fi] = empty_lines(self.files[fi])
        return self._blanks[fi]

    def where(self, k: int) -> str:
        fi, row = self.origin[k]
        return self.where_row(int(fi), int(row))

    def _drop_duplicates(self, problems) -> None:
        dup = np.flatnonzero(self.ids[1:] == self.ids[:-1]) + 1
        if dup.size:
            k = int(dup[0])
            problems.found("duplicate_metadata",
                           f"{self.where(k)}: object {self.ids[k]} is listed again in the metadata "
                           f"(first at {self.where(k - 1)})", int(dup.size))
            keep = np.ones(len(self.ids), dtype=bool)
            keep[dup] = False  # stable sort: the first listing is kept
            self.ids, self.origin = self.ids[keep], self.origin[keep]
            self.columns = {k: v[keep] for k, v in self.columns.items()}

    def join(self, object_id: np.ndarray):
        """(found mask, per-object store metadata) for light-curve object ids."""
        meta = empty_meta(len(object_id))
        if len(self.ids) == 0:
            return np.zeros(len(object_id), dtype=bool), meta
        k = np.minimum(np.searchsorted(self.ids, object_id), len(self.ids) - 1)
        found = self.ids[k] == object_id
        c = {name: values[k] for name, values in self.columns.items()}
        for name in ("ra", "dec", "hostgal_photoz", "hostgal_photoz_err", "mwebv"):
            meta[name][found] = c[name][found]
        specz = np.where(c["specz"] < 0, np.nan, c["specz"])  # PLAsTiCC writes -9 for "no spec-z"
        meta["specz"][found] = specz[found]
        ddf = c["ddf"]
        meta["ddf"][found & np.isfinite(ddf)] = ddf[found & np.isfinite(ddf)]
        target = c["target"]
        has_target = found & np.isfinite(target)
        meta["source_type"][has_target] = target[has_target]
        meta["type"][has_target] = plasticc_types(target[has_target].astype(np.int64))
        return found, meta


def first_true(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def cell_text(column, r: int) -> str:
    value = column[r].as_py()
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def int_field(text: str, position: int) -> int | None:
    """Field ``position`` of a CSV line as an integer, if it is one (to name a row's object)."""
    fields = text.split(",")
    if position < len(fields) and parses(fields[position].strip(), int):
        return int(fields[position].strip())
    return None


def empty_lines(path: Path, block: int = 1 << 24) -> np.ndarray:
    """1-based numbers of the empty lines ('' or a lone CR) of a file, streamed in blocks."""
    found, line, carry = [], 1, b""  # carry: the start of the unfinished line (at most 2 bytes)
    carry_len = 0
    with gzip_errors(path), open_bytes(path) as f:
        while True:
            data = f.read(block)
            if not data:
                break
            nl = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
            if nl.size == 0:
                carry, carry_len = (carry + data)[:2], carry_len + len(data)
                continue
            first = carry_len + int(nl[0])
            if first == 0 or (first == 1 and (carry + data[:1])[:1] == b"\r"):
                found.append(line)
            starts = nl[:-1] + 1
            lengths = nl[1:] - starts
            cr = np.frombuffer(data, np.uint8)[starts] == 13 if starts.size else np.zeros(0, bool)
            blank = (lengths == 0) | ((lengths == 1) & cr)
            found.extend((line + 1 + np.flatnonzero(blank)).tolist())
            line += nl.size
            tail = data[int(nl[-1]) + 1:]
            carry, carry_len = tail[:2], len(tail)
    return np.array(found, dtype=np.int64)
