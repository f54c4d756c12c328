"""Readers of raw survey files; each turns its share of the input into ``Chunk``s of whole objects.

Work is shared among MPI ranks by ``split_work``: the inputs are laid end to end as one stream of
work units (bytes for CSV, HEAD rows for SNANA FITS, files for SNANA text) and cut into equal
contiguous ranges, one per rank. Each reader snaps the cuts to object boundaries the same way on
every rank, so the ranks' objects, concatenated in rank order, are exactly the single-rank output.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("plasticc", "snana-fits", "snana-text")


@dataclass(frozen=True)
class Piece:
    """Units [start, stop) of one input item (a file, or a HEAD/PHOT pair)."""

    item: int
    start: int
    stop: int


def split_work(weights: list[int], nranks: int, rank: int, atomic: bool = False) -> list[Piece]:
    """This rank's contiguous share of items with the given unit counts.

    With ``atomic`` an item is never cut: it goes to the rank whose range holds its first unit.
    """
    total = sum(weights)
    lo, hi = total * rank // nranks, total * (rank + 1) // nranks
    pieces, start = [], 0
    for item, weight in enumerate(weights):
        stop = start + weight
        if atomic:
            if lo <= start < hi:
                pieces.append(Piece(item, 0, weight))
        else:
            a, b = max(lo, start), min(hi, stop)
            if a < b:
                pieces.append(Piece(item, a - start, b - start))
        start = stop
    return pieces


def reader_for(fmt: str):
    """Reader class for a format name."""
    if fmt == "plasticc":
        from snia.readers.plasticc import PlasticcReader

        return PlasticcReader
    if fmt == "snana-fits":
        from snia.readers.snana_fits import SnanaFitsReader

        return SnanaFitsReader
    if fmt == "snana-text":
        from snia.readers.snana_text import SnanaTextReader

        return SnanaTextReader
    raise ValueError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}")
