"""SLURM's compact node lists (``node[01-03,07],gpu5``) as host names: where the ranks of a
multi-node job meet (the first host of the step) is read from them when MASTER_ADDR is not set."""

from __future__ import annotations

import itertools
import re


class LaunchError(RuntimeError):
    """The ranks cannot meet: no rendezvous port known, a node list that does not parse, or a
    port that cannot be opened (the message says what to set)."""


def hostnames(nodelist: str) -> list[str]:
    """The hosts of a SLURM node list (``node[01-03,07],gpu5``), in SLURM's order: from
    ``scontrol show hostnames`` where SLURM answers, else ``expand_nodelist`` (no scontrol, or
    one that cannot: no configuration on this host, no controller in reach). The list is parsed
    by ``expand_nodelist`` first in every case: a configured scontrol echoes a malformed list
    (``gpu[07-``) back as one host name with exit 0, so a malformed list is a LaunchError naming
    it whichever reads it."""
    import shutil
    import subprocess

    parsed = expand_nodelist(nodelist)
    scontrol = shutil.which("scontrol")
    if scontrol is not None:
        try:
            done = subprocess.run([scontrol, "show", "hostnames", nodelist], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        hosts = done.stdout.split() if done is not None else []
        if done is not None and done.returncode == 0 and hosts:
            return hosts
    return parsed


def expand_nodelist(nodelist: str) -> list[str]:
    """The hosts of a SLURM node list, as ``scontrol show hostnames`` lists them: comma-separated
    names, each with bracketed ranges (``n[1-3,7]``, zero padding kept: ``n[08-10]``), several
    brackets making every combination (``r[1-2]n[1-2]`` -> r1n1 r1n2 r2n1 r2n2)."""
    def bad(why: str) -> LaunchError:
        return LaunchError(f"malformed SLURM node list {nodelist!r}: {why}; set MASTER_ADDR to "
                           "rank 0's host")

    hosts = []
    for name in _top_level_items(nodelist, bad):
        parts = re.split(r"\[([^\[\]]*)\]", name)  # text, range, text, range, ..., text
        if any(c in text for text in parts[::2] for c in "[]"):
            raise bad(f"unbalanced brackets in {name!r}")
        choices = [[text] if k % 2 == 0 else _expand_ranges(text, bad)
                   for k, text in enumerate(parts)]
        hosts += ["".join(combo) for combo in itertools.product(*choices)]
    return hosts


def _top_level_items(nodelist: str, bad) -> list[str]:
    """The names of a node list: split at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(nodelist + ","):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if depth not in (0, 1):
            raise bad("unbalanced brackets")
        if c == "," and depth == 0:
            items.append(nodelist[start:i].strip())
            start = i + 1
    if depth or not all(items):
        raise bad("an empty name or an unclosed bracket")
    return items


def _expand_ranges(text: str, bad) -> list[str]:
    """``01-03,7`` -> 01 02 03 7: each range padded to its first number's width."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if m is None:
            raise bad(f"{part!r} is not a number or a range of numbers")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if hi < lo:
            raise bad(f"the range {part!r} runs backwards")
        out += [str(k).zfill(len(m[1])) for k in range(lo, hi + 1)]
    return out
