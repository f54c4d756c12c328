"""PLAsTiCC CSV reader: light-curve file(s) plus metadata file(s), streamed with pyarrow.

Light-curve rows of one object must be contiguous (as in every PLAsTiCC release). Each rank reads its
byte range in blocks of ``chunk_bytes``; a block ends at a line end and the last, possibly unfinished
object of a block is carried over to the next, so memory stays bounded by the block size. Finding
object boundaries in byte ranges is ``snia.readers.csv_file``; here: the metadata join and parsing.
Files may be gzip-compressed (each such file is read whole by one rank). Parsing is typed and fast;
only a block or metadata file with a problem is read again as text, to name each bad value's line
and object.

The metadata file(s) and their join are ``snia.readers.plasticc_metadata``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from snia.errors import InputError, Problems
from snia.lightcurve import Chunk, offsets_from_lengths
from snia.readers.csv_file import CsvFile
from snia.readers.plasticc_metadata import Metadata, cell_text, first_true, object_text, pyarrow_csv, to_numbers
from snia.readers.work import Piece

log = logging.getLogger(__name__)


PARSE_BLOCK = 1 << 22


class PlasticcReader:
    """Reads PLAsTiCC light-curve CSV file(s) joined with metadata CSV file(s)."""

    # sha256 runs ~7x faster than parsing + validating + writing a CSV byte (measured on PLAsTiCC):
    # the rank that checksums a file parses that much less of it.
    hash_speedup = 7
    progress_unit = "B"  # work units (weights) are bytes; each chunk says how many it read

    def __init__(self, inputs, metadata, bands, problems, survey=None, chunk_bytes=16 << 20):
        if not metadata:
            raise InputError("the plasticc format needs --metadata FILE(s) (e.g. "
                             "plasticc_train_metadata.csv) alongside the light-curve CSV file(s)")
        self.files = [Path(p) for p in inputs]
        self.metadata_files = [Path(p) for p in metadata]
        self.bands = bands
        self.survey = survey or "LSST"
        self.problems = problems
        self.chunk_bytes = int(chunk_bytes)
        # Every rank builds the reader, so what it finds here is counted by one rank only: the
        # one whose share starts the input (see ``read``). A 'fail' run stops here, on every rank.
        self._setup_problems = Problems(problems.policy)
        self.csv = [CsvFile(p, self._setup_problems) for p in self.files]
        empty = [c.path for c in self.csv if c.empty]
        if len(empty) == len(self.csv):
            raise InputError(f"no objects to store: {', '.join(map(str, empty))} "
                             f"{'has' if len(empty) == 1 else 'have'} a header line but no data rows")
        for path in empty:
            self._setup_problems.found("empty_file", f"{path}:line 2: no data rows after the "
                                                     f"header line")
        self.meta = Metadata(self.metadata_files, self._setup_problems)

    @property
    def atomic(self) -> list[bool]:
        """Plain files are cut into byte ranges (snapped to objects); a gzip file is read whole."""
        return [c.compressed for c in self.csv]

    def input_files(self) -> list[Path]:
        return self.files + self.metadata_files

    def weights(self) -> list[int]:
        return [c.size for c in self.csv]

    def metadata_ids(self) -> np.ndarray:
        return self.meta.ids

    def where_metadata(self, object_id: int) -> str:
        return self.meta.where(int(np.searchsorted(self.meta.ids, object_id)))

    def read(self, pieces: list[Piece]):
        if any(p.item == 0 and p.start == 0 for p in pieces):  # exactly one rank has this piece
            self.problems.merge(self._setup_problems.counts, self._setup_problems.examples)
        for piece in pieces:
            csv_file = self.csv[piece.item]
            if csv_file.empty:
                continue
            if csv_file.compressed:
                start, stop = csv_file.data_start, None
            else:
                with open(csv_file.path, "rb") as f:
                    start = csv_file.object_start(f, piece.start)
                    stop = csv_file.object_start(f, piece.stop)
            yield from self._read_range(csv_file, start, stop)

    def _read_range(self, csv_file, start, stop):
        """Chunks of whole objects from bytes [start, stop) (``CsvFile.blocks``)."""
        row0 = 0
        for data, end in csv_file.blocks(start, stop, self.chunk_bytes):
            # Quote handling costs ~5% of the parse; numeric survey files rarely quote anything.
            quoted = data.find(b'"', 0, end) >= 0
            cols, row_map, n_rows = self._parse_block(memoryview(data)[:end], quoted, csv_file,
                                                      start, row0)
            cols, row_map = self._without_dropped(cols, row_map)
            if len(cols["object_id"]):
                chunk = self._chunk(cols, csv_file, start, row0, row_map)
                chunk.units = end  # bytes of the input read: the progress of ingest
                yield chunk
            row0 += n_rows

    def _without_dropped(self, cols, row_map):
        """Leave out the rows of objects whose metadata row was dropped (already counted there)."""
        if not self.meta.dropped.size:
            return cols, row_map
        keep = ~np.isin(cols["object_id"], self.meta.dropped)
        if keep.all():
            return cols, row_map
        rows = row_map if row_map is not None else np.arange(len(keep))
        return {k: v[keep] for k, v in cols.items()}, rows[keep]

    def _chunk(self, cols, csv_file, start, row0, row_map) -> Chunk:
        ids = cols.pop("object_id")
        label = cols.pop("band_label")
        run_starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        lengths = np.diff(np.append(run_starts, len(ids))).astype(np.int64)
        object_id = ids[run_starts]
        found, meta = self.meta.join(object_id)
        path = csv_file.path

        def where_obs(i):
            row = row0 + (int(row_map[i]) if row_map is not None else int(i))
            return f"{path}:line {csv_file.line_of(start, row)}"

        def where_object(j):
            return where_obs(int(run_starts[j]))

        return Chunk(object_id=object_id, offsets=offsets_from_lengths(lengths), obs=cols, meta=meta,
                     where_obs=where_obs, where_object=where_object, band_label=label,
                     has_meta=found, files=(str(path),))

    def _parse_block(self, block, quoted: bool, csv_file, start: int, row0: int):
        """Parse one block of whole lines into canonical numpy columns.

        Returns (columns, row map, physical rows in the block); the row map gives each kept row's
        physical row within the block, and is None when no row was dropped (the usual case).
        """
        pa, csv = pyarrow_csv()
        names, cols = csv_file.names, csv_file.cols
        wanted = {name: cols[name] for name in ("object_id", "time", "band", "flux", "flux_err", "flag")
                  if name in cols}
        types = {"object_id": pa.int64(), "time": pa.float64(),
                 "band": pa.int64() if csv_file.numeric_bands else pa.string(),
                 "flux": pa.float32(), "flux_err": pa.float32(), "flag": pa.int32()}
        skipped: list[int] = []
        invalid: list = []

        def bad_row(row):
            # Exceptions raised here are swallowed by pyarrow: note the row, report after the read.
            invalid.append(row)
            skipped.append(row.number - 1)
            return "skip"

        def read(column_types):
            return csv.read_csv(
                pa.py_buffer(block),
                # One thread: ranks, not threads, share the cores. 4 MiB parse blocks stay in cache.
                read_options=csv.ReadOptions(column_names=names, use_threads=False,
                                             block_size=PARSE_BLOCK),
                parse_options=csv.ParseOptions(invalid_row_handler=bad_row, ignore_empty_lines=False,
                                               quote_char='"' if quoted else False),
                convert_options=csv.ConvertOptions(
                    column_types={names[i]: t for n, i in wanted.items()
                                  for t in [column_types[n]]},
                    include_columns=[names[i] for i in wanted.values()],
                    null_values=[""], strings_can_be_null=False))

        def line(r):
            return csv_file.line_of(start, row0 + r)

        try:
            table = read(types)
            bad = np.zeros(table.num_rows, dtype=bool)
        except pa.ArrowInvalid:
            # Rare path: some value is not a number. Re-read as text to find and report each one.
            skipped.clear()
            invalid.clear()
            table, bad = self._find_non_numeric(read, wanted, types, csv_file, line, skipped)

        if invalid:
            row = invalid[0]
            oid = csv_file.object_id_of(row.text)
            self.problems.found("wrong_field_count",
                                f"{csv_file.path}:line {line(row.number - 1)}: {object_text(oid)}"
                                f"expected {row.expected_columns} fields, found {row.actual_columns} "
                                f"({row.text[:80]!r})", len(invalid))
        n_physical = table.num_rows + len(skipped)
        physical = np.delete(np.arange(n_physical), skipped) if skipped else None
        id_column = table.column(names[wanted["object_id"]])
        out = {}
        for name, i in wanted.items():
            column = table.column(names[i])
            if column.null_count:
                nulls = column.is_null().to_numpy(zero_copy_only=False) & ~bad
                if nulls.any():
                    r = int(np.flatnonzero(nulls)[0])
                    row = int(physical[r]) if physical is not None else r
                    oid = id_column[r].as_py()  # None when the id is what is empty
                    self.problems.found("missing_value",
                                        f"{csv_file.path}:line {line(row)}: {object_text(oid)}"
                                        f"empty value in column {names[i]!r}", int(nulls.sum()))
                    bad |= nulls
                column = column.fill_null(0)
            out[name] = column.to_numpy(zero_copy_only=False)
        if bad.any():
            keep = ~bad
            out = {k: v[keep] for k, v in out.items()}
            physical = (physical if physical is not None else np.arange(n_physical))[keep]
        n = len(out["object_id"])
        if "flag" not in out:
            out["flag"] = np.zeros(n, dtype=np.int32)
        out["band_label"] = out["band"]
        out["band"] = self._band_index(out["band"], csv_file)
        out["time"] = out["time"].astype(np.float64, copy=False)
        return out, physical, n_physical

    def _band_index(self, labels: np.ndarray, csv_file) -> np.ndarray:
        if csv_file.numeric_bands:
            lookup = self.bands.plasticc_passbands()
            ok = (labels >= 0) & (labels < len(lookup))
            return np.where(ok, lookup[np.clip(labels, 0, len(lookup) - 1)], -1).astype(np.int8)
        return self.bands.indices_for_letters(self.survey, labels.astype(str))

    def _find_non_numeric(self, read, wanted, types, csv_file, line, skipped):
        """The block as text, converted column by column; each column's first value that is not a
        number is reported with its line and object. Returns (table, mask of bad rows)."""
        pa, _ = pyarrow_csv()

        table = read({name: pa.binary() for name in wanted})
        bad = np.zeros(table.num_rows, dtype=bool)
        physical = np.delete(np.arange(table.num_rows + len(skipped)), skipped)
        converted, ids = {}, None
        for name, i in wanted.items():  # object_id first: the other columns' messages name it
            text = table.column(csv_file.names[i])
            if name == "band" and not csv_file.numeric_bands:
                converted[name] = pa.array([v.decode("utf-8", "replace") for v in text.to_pylist()],
                                           pa.string())
                continue
            converted[name], _, column_bad = to_numbers(text, types[name])
            if name == "object_id":
                ids = converted[name]
            if column_bad.any():
                r = first_true(column_bad)
                oid = None if name == "object_id" or not ids[r].is_valid else ids[r].as_py()
                kind = "an integer" if pa.types.is_integer(types[name]) else "a number"
                self.problems.found("non_numeric", f"{csv_file.path}:line {line(int(physical[r]))}: "
                                    f"{object_text(oid)}column {csv_file.names[i]!r}: "
                                    f"{cell_text(text, r)!r} is not {kind}", int(column_bad.sum()))
                bad |= column_bad
        return pa.table({csv_file.names[i]: converted[n] for n, i in wanted.items()}), bad
