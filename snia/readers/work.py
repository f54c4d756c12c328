"""How ranks share the input: the inputs laid end to end as one stream of work units, cut evenly.

Units are bytes for CSV, HEAD rows for SNANA FITS, files for SNANA text. ``split_work`` gives each
rank one contiguous range of that stream as ``Piece``s; each reader then snaps the cuts to object
boundaries the same way on every rank, so the ranks' objects, concatenated in rank order, are
exactly the single-rank output. Kept apart from the package ``__init__`` so readers can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """Units [start, stop) of one input item (a file, or a HEAD/PHOT pair)."""

    item: int
    start: int
    stop: int


def split_work(weights: list[int], nranks: int, rank: int, atomic: bool | Sequence[bool] = False,
               reserved: list[int] | None = None) -> list[Piece]:
    """This rank's contiguous share of items with the given unit counts.

    An ``atomic`` item is never cut: it goes to the rank whose range holds its first unit (an empty
    one at the very end, to the last rank). ``atomic`` is one flag for all items or one per item
    (e.g. compressed files among plain ones). ``reserved[r]`` is other work rank r already has, in
    the same units; ranks get shares that even out the totals (work + reserved).
    """
    flags = [atomic] * len(weights) if isinstance(atomic, bool) else [bool(a) for a in atomic]
    if len(flags) != len(weights):
        raise ValueError(f"atomic has {len(flags)} flags for {len(weights)} items")
    total = sum(weights)
    bounds = _rank_bounds(total, nranks, reserved or [0] * nranks)
    lo, hi = bounds[rank], bounds[rank + 1]
    last = rank == nranks - 1
    pieces, start = [], 0
    for item, weight in enumerate(weights):
        stop = start + weight
        if flags[item]:
            if lo <= start < hi or (last and start == total):
                pieces.append(Piece(item, 0, weight))
        else:
            a, b = max(lo, start), min(hi, stop)
            if a < b:
                pieces.append(Piece(item, a - start, b - start))
        start = stop
    return pieces


def _rank_bounds(total: int, nranks: int, reserved: list[int]) -> list[int]:
    """Cumulative unit boundaries: rank r takes [b[r], b[r+1]); equal work + reserved per rank."""
    target = (total + sum(reserved)) / nranks
    shares = [max(0.0, target - r) for r in reserved]
    scale = total / sum(shares) if sum(shares) else 0.0  # reserves larger than a share: rescale
    bounds, acc = [0], 0.0
    for share in shares:
        acc += share * scale
        bounds.append(min(total, round(acc)))
    bounds[-1] = total
    return bounds
