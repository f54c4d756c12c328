"""Error types and the bad-input policy shared by every reader.

Policy ``fail`` (the default) stops at the first problem with a message naming the file, line and
object; policy ``skip`` drops the bad row or object, counts it per reason and keeps one example of
each reason, so the end-of-run report says exactly what was left out. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger(__name__)

POLICIES = ("fail", "skip")


class SniaError(Exception):
    """Base class for errors that snia reports to the user without a traceback."""


class InputError(SniaError, ValueError):
    """Bad input data; the message names the file, the line (or row) and the object."""


class ConfigError(SniaError, ValueError):
    """A bad setting or command-line usage (unknown key, value out of range, settings that do not
    go together); the message names the setting and, where there is one, the file."""


class StoreError(SniaError, ValueError):
    """A store that cannot be trusted: not readable as HDF5 (truncated, overwritten, a shard file
    damaged or swapped) or breaking an invariant of docs/store.md; the message names the file."""


class CheckpointError(SniaError):
    """A checkpoint that cannot be used: unreadable (truncated, empty) or not a snia checkpoint
    (a torch file of another structure); the message names the file."""


def first_line(exc: BaseException) -> str:
    """The gist of an exception in one line: its type and first sentence (torch's messages run
    over many lines)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    gist = lines[0].split(". ")[0].rstrip(".")[:120] if lines else ""
    return f"{type(exc).__name__}: {gist}" if gist else type(exc).__name__


class Problems:
    """Collects bad-input findings under one policy (``fail`` raises, ``skip`` counts)."""

    def __init__(self, policy: str = "fail"):
        if policy not in POLICIES:
            raise ValueError(f"on-error policy must be one of {POLICIES}, not {policy!r}")
        self.policy = policy
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def found(self, reason: str, message: str, count: int = 1) -> None:
        """Record ``count`` occurrences of ``reason``; ``message`` describes the first one."""
        if count <= 0:
            return
        if self.policy == "fail":
            raise InputError(message)
        self.counts[reason] += count
        self.examples.setdefault(reason, message)

    def merge(self, counts: dict[str, int], examples: dict[str, str]) -> None:
        self.counts.update(counts)
        for reason, message in examples.items():
            self.examples.setdefault(reason, message)

    def summary(self) -> str:
        if not self.counts:
            return "no input problems found"
        # under 'fail' only what is no error is counted (SNANA's no-measurement rows, ...)
        lines = ["input problems skipped (--on-error skip):" if self.policy == "skip"
                 else "input left out (not data, so no error under --on-error fail):"]
        for reason, count in sorted(self.counts.items()):
            lines.append(f"  {reason}: {count}  (e.g. {self.examples[reason]})")
        return "\n".join(lines)
