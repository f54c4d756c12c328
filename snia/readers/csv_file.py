"""A light-curve CSV file read in byte ranges that hold whole objects.

Ranks get byte ranges of the file (``snia.readers.work``); since one object's rows are contiguous,
a range is snapped to the first line of a new object, found from the object-id field alone, which
gives the same answer on every rank. Blocks of a range are cut before their last (maybe unfinished)
object the same way, so the parser only ever sees whole objects.
"""

from __future__ import annotations

import csv
from pathlib import Path

from snia.errors import InputError
from snia.lightcurve import OBS_ALIASES, REQUIRED_OBS, match_columns


class CsvFile:
    """One light-curve CSV file: its header, the column mapping and object-boundary search."""

    def __init__(self, path: Path, problems):
        self.path = path
        self.size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.readline()
            first = f.readline()
        if not raw.endswith(b"\n"):
            raise InputError(f"{path}:line 1: no complete header line (empty or truncated file)")
        self.data_start = len(raw)
        self.names = header_names(raw)
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
            with open(self.path, "rb") as f:
                self._base_lines[start] = _count_newlines(f, start) + 1
        return self._base_lines[start] + row

    def _id_field(self, line: bytes) -> bytes:
        fields = line.split(b",")
        field = fields[self.cols["object_id"]] if len(fields) > self.cols["object_id"] else b""
        return field.strip()

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


def header_names(line: bytes) -> list[str]:
    """Column names of a CSV header line (quoted names allowed, as pyarrow and pandas write them)."""
    return next(csv.reader([line.decode("utf-8", "replace").strip()]), [])


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
