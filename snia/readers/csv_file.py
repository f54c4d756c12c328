"""A light-curve CSV file read in byte ranges that hold whole objects; what every CSV input shares.

Ranks get byte ranges of the file (``snia.readers.work``); since one object's rows are contiguous,
a range is snapped to the first line of a new object, found from the object-id field alone, which
gives the same answer on every rank. Blocks of a range are cut before their last (maybe unfinished)
object the same way, so the parser only ever sees whole objects. A gzip-compressed file cannot be
entered in the middle: it is one range, read by one rank from start to end (``compressed``).
Also here: the header checks of light-curve and metadata files alike (a UTF-8 byte-order mark is
dropped, CR-only line endings are named) and trailing blank lines, which are not data.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from contextlib import contextmanager
from pathlib import Path

from snia.errors import InputError
from snia.lightcurve import OBS_ALIASES, REQUIRED_OBS, match_columns

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"  # what spreadsheet programs put before the first column name


def is_gzip(path: Path) -> bool:
    """Whether the file is gzip-compressed (by its first bytes, whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_bytes(path: Path, compressed: bool | None = None):
    """The file's bytes, decompressed if it is gzip; wrap reads in ``gzip_errors``."""
    compressed = is_gzip(path) if compressed is None else compressed
    return gzip.open(path, "rb") if compressed else open(path, "rb")


@contextmanager
def gzip_errors(path: Path):
    """Report a cut or damaged gzip file as such, naming it (not as a decompressor traceback)."""
    try:
        yield
    except EOFError:
        raise InputError(f"{path}: truncated gzip file: the compressed data stops before the gzip "
                         f"end marker (cut short while copying or downloading?)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"{path}: corrupt gzip file ({exc})") from None


def read_header(path: Path, f) -> tuple[bytes, list[str]]:
    """The first line of an open CSV file (raw, with its newline) and its column names."""
    raw = f.readline()
    if b"\r" in raw.rstrip(b"\r\n"):
        raise InputError(f"{path}:line 1: the file uses CR-only line endings (old Mac style), "
                         f"which snia does not read; convert them to LF, e.g. "
                         f"tr '\\r' '\\n' < {path.name} > fixed.csv")
    if not raw.endswith(b"\n"):
        raise InputError(f"{path}:line 1: no complete header line (empty or truncated file)")
    return raw, header_names(raw, path)


def header_names(line: bytes, path: Path | str = "input") -> list[str]:
    """Column names of a CSV header line (quoted names allowed, as pyarrow and pandas write them;
    a leading UTF-8 byte-order mark is not part of the first name)."""
    if line.startswith(BOM):
        line = line[len(BOM):]
    try:
        return next(csv.reader([line.decode("utf-8", "replace").strip()]), [])
    except csv.Error as exc:
        raise InputError(f"{path}:line 1: not a CSV header line ({exc}); is this a text file?") from None


def data_end(path: Path, floor: int) -> int:
    """End of a plain file's data: trailing blank lines (what editors and spreadsheets often add)
    are not rows. The result is never below ``floor`` (the end of the header line)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        end, step = size, 1 << 16
        while end > floor:
            a = max(floor, end - step)
            f.seek(a)
            kept = _without_blank_tail(f.read(size - a))
            if kept:
                return a + kept
            end = a
    return floor


class CsvFile:
    """One light-curve CSV file: its header, the column mapping and object-boundary search.

    ``size`` is the file's work units: the bytes up to the end of its data for a plain file, the
    compressed size for a gzip file (read whole by one rank). ``empty``: a header and no rows.
    """

    def __init__(self, path: Path, problems):
        self.path = path
        self.compressed = is_gzip(path)
        with gzip_errors(path), open_bytes(path, self.compressed) as f:
            raw, self.names = read_header(path, f)
            first = f.readline()
            if self.compressed:
                self.empty = not first.strip() and not f.read(1 << 20).strip()
        self.data_start = len(raw)
        if self.compressed:
            self.size = path.stat().st_size
        else:
            self.size = data_end(path, self.data_start)
            self.empty = self.size == self.data_start
        self.cols, extra = match_columns(self.names, OBS_ALIASES, REQUIRED_OBS, f"{path}:line 1")
        if extra:
            problems.found("extra_column", f"{path}:line 1: unexpected column(s) {extra} (expected "
                           f"object_id, mjd, passband, flux, flux_err[, detected_bool])")
        fields = first.split(b",")
        band_field = fields[self.cols["band"]].strip() if len(fields) > self.cols["band"] else b"0"
        # PLAsTiCC numbers its passbands; other CSVs may spell filter letters.
        self.numeric_bands = band_field.lstrip(b"-").isdigit() or not band_field
        self._base_lines: dict[int, int] = {}

    def line_of(self, start: int, row: int) -> int:
        """1-based line number of physical row ``row`` of the range starting at byte ``start``."""
        if start not in self._base_lines:
            with gzip_errors(self.path), open_bytes(self.path, self.compressed) as f:
                self._base_lines[start] = _count_newlines(f, start) + 1
        return self._base_lines[start] + row

    def object_id_of(self, line: bytes | str) -> int | None:
        """The object id of one data line, if its id field is an integer (for messages)."""
        if isinstance(line, str):
            line = line.encode("utf-8", "replace")
        try:
            return int(self._id_field(line))
        except ValueError:
            return None

    def _id_field(self, line: bytes) -> bytes:
        fields = line.split(b",")
        field = fields[self.cols["object_id"]] if len(fields) > self.cols["object_id"] else b""
        return field.strip()

    def blocks(self, start: int, stop: int | None, block_bytes: int):
        """(data, end) pairs: ``data[:end]`` are whole objects, and together they cover bytes
        [start, stop), which begin and end at objects; ``stop`` None reads a compressed file to its
        end, less its trailing blank lines.

        Each block is cut before the last object it (maybe partly) holds, and read again larger
        when one object fills it, so the parser only ever sees whole objects. Reads are sequential
        (what a gzip stream needs); plain reads, not a memory map, so a block is freed once parsed.
        """
        with gzip_errors(self.path), open_bytes(self.path, self.compressed) as source:
            source.seek(start)
            pos, buf, at_eof = start, b"", False
            while stop is None or pos < stop:
                size = block_bytes if stop is None else min(block_bytes, stop - pos)
                while True:
                    if len(buf) < size and not at_eof:
                        more = source.read(size - len(buf))
                        at_eof = len(more) < size - len(buf)
                        buf += more
                    data = memoryview(buf)[:size]
                    if stop is None:
                        final = at_eof and len(buf) <= size
                    elif len(data) < size:
                        raise InputError(f"{self.path}: file ended at byte {pos + len(data)}, before "
                                         f"the {stop} bytes it had when ingestion started")
                    else:
                        final = pos + size >= stop
                    end = len(data) if final else self.last_object_start(data)
                    if final or end > 0:
                        break
                    size = 2 * size if stop is None else min(2 * size, stop - pos)  # one object fills it
                if final and stop is None:
                    end = _without_blank_tail(data)
                    if end:
                        yield buf, end
                    return
                yield buf, end
                buf, pos = buf[end:], pos + end

    def last_object_start(self, block) -> int:
        """Offset in ``block`` (which starts at an object) where its last object begins.

        The last object may continue past the block, so the caller cuts the block there. Returns 0
        when the block holds a single object's rows only.
        """
        view = memoryview(block)
        width = 1 << 16
        while True:
            tail_start = max(0, len(view) - width)
            tail = bytes(view[tail_start:])
            end = tail.rfind(b"\n")  # the text after the last newline is an unfinished line
            if end < 0:
                if tail_start == 0:
                    return 0
                width *= 2
                continue
            lines = tail[:end].split(b"\n")
            first_whole = 1 if tail_start else 0  # the window may cut its first line
            last = self._id_field(lines[-1])
            k = len(lines) - 1
            while k > first_whole and self._id_field(lines[k - 1]) == last:
                k -= 1
            if k > first_whole or tail_start == 0:
                return tail_start + sum(len(line) + 1 for line in lines[:k])
            width *= 2  # the last object's run reaches the window's edge: look further back

    def object_start(self, f, pos: int) -> int:
        """First byte >= pos where a new object begins (the same answer on every rank)."""
        if pos <= self.data_start:
            return self.data_start
        if pos >= self.size:
            return self.size
        start = _line_start(f, pos - 1, self.data_start)
        f.seek(start)
        line = f.readline()
        previous = self._id_field(line)
        cursor = start + len(line)
        while cursor < self.size:
            line = f.readline()
            if not line or self._id_field(line) != previous:
                return cursor
            cursor += len(line)
        return self.size


def _without_blank_tail(data) -> int:
    """Length of ``data`` without its trailing blank lines (the newline of its last line kept)."""
    end, step = len(data), 1 << 16
    while end > 0:
        a = max(0, end - step)
        kept = bytes(data[a:end]).rstrip()
        if kept:
            last = a + len(kept)  # just after the last non-blank byte
            newline = bytes(data[last:]).find(b"\n")
            return len(data) if newline < 0 else last + newline + 1
        end = a
    return 0


def _count_newlines(f, stop: int, block: int = 1 << 24) -> int:
    f.seek(0)
    count, pos = 0, 0
    while pos < stop:
        data = f.read(min(block, stop - pos))
        if not data:
            break
        count += data.count(b"\n")
        pos += len(data)
    return count


def _line_start(f, pos: int, floor: int) -> int:
    """Start of the line holding byte ``pos`` (never before ``floor``)."""
    step = 4096
    end = pos
    while end > floor:
        a = max(floor, end - step)
        f.seek(a)
        k = f.read(end - a).rfind(b"\n")
        if k >= 0:
            return a + k + 1
        end = a
    return floor
