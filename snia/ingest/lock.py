"""One ingestion at a time per output: a lock file ``.STORE.lock`` beside the store, holding the
host, process id and start time of the run that writes it (created exclusively, so two runs
cannot both take it; removed when the run ends, however it ends short of SIGKILL).

A second run for the same output refuses, naming the holder, instead of silently replacing the
first one's store. A lock left by a killed run is recognised as stale when its process is no
longer running on this host (and removed); one of another host cannot be checked from here, so
the message says how to remove it by hand.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from snia.errors import SniaError
from snia.ingest.guard import HOST, alive

log = logging.getLogger(__name__)


def lock_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.lock")


class OutputLock:
    """``with OutputLock(output, take)``: on the rank that takes it (``take``), ``check()`` takes
    the lock or raises SniaError naming the run that holds it. Errors wait for ``check()`` so
    that every rank learns of them together (the ingestion's ``_sync``)."""

    def __init__(self, output: Path, take: bool = True):
        self.path, self.output, self.take = lock_path(Path(output)), Path(output), take
        self.mine = f"{HOST} {os.getpid()} {int(time.time() * 1000)}\n"
        self.held = False

    def __enter__(self):
        return self

    def check(self) -> None:
        if not self.take or self.held:
            return
        for _ in range(3):  # a stale lock removed, then taken; another run may be quicker
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None:
                    raise SniaError(f"{self.output} is being written by another ingestion ({holder}; lock "
                                    f"{self.path}): wait for it to end, or remove that file if it is "
                                    f"not running") from None
                continue
            except OSError as exc:
                raise SniaError(f"cannot create the lock {self.path} of {self.output}: {exc}") from None
            with os.fdopen(fd, "w") as f:
                f.write(self.mine)
            self.held = True
            return
        raise SniaError(f"{self.output}: cannot take the lock {self.path}: other ingestions keep taking it")

    def _holder(self) -> str | None:
        """Who holds the lock (a description), or None once a stale one was removed."""
        try:
            text = self.path.read_text()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None  # released meanwhile
        parts = text.split()
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            if age < 60:  # being written this very moment
                return "a run that is starting"
            log.info("removing %s: not a lock of this snia, and %.0f s old", self.path, age)
            self._remove_stale(text)
            return None
        host, pid, started = parts[0], int(parts[1]), int(parts[2]) / 1000
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        if host != HOST:
            return f"process {pid} on host {host}, since {since}, which this host cannot check"
        if alive(pid, started) and pid != os.getpid():
            return f"process {pid} on this host, since {since}"
        log.info("removing %s, left by process %d, which is no longer running", self.path, pid)
        self._remove_stale(text)
        return None

    def _remove_stale(self, text: str) -> None:
        try:
            if self.path.read_text() == text:  # not a new one taken meanwhile
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __exit__(self, *exc):
        if self.held:
            try:
                if self.path.read_text() == self.mine:
                    self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False
