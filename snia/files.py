"""Two file habits every stage shares: a file's sha256, and writing a file atomically.

An output that exists is complete: it is written under a temporary name in the same folder (so the
final rename never crosses file systems) and renamed over the target only when writing succeeded;
on any failure the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

from snia import stopping


def sha256_of(path) -> str:
    """Hex sha256 of a file's bytes (streamed: bounded memory for any size)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The temporary name carries the process id, so ranks or jobs writing the same target never
    share a temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        stopping.check()  # never publish after SIGTERM/SIGINT, even if its exception was lost
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text: str) -> None:
    """Write a text file atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
