"""How the command line logs, and how a command that did not finish ends: in one line.

Logging goes to ``sys.stderr`` as it is when each record is written, not as it was when logging
was set up (``main`` may run many times in one process, e.g. in tests, each with its own stderr).
A signal (``snia.stopping``) ends a command with the shell's 128 + signal; a full disk, quota or
file-size limit (``snia.outputs.disk_full``) with exit 1 and, on the command line, at once: HDF5
crashes at exit closing a file whose write failed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from snia.outputs import disk_full, full_disk_message
from snia.stopping import signal_of

log = logging.getLogger("snia")


class StderrHandler(logging.StreamHandler):
    """A StreamHandler on the current ``sys.stderr``."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it: the current one is used instead
        pass


def setup_logging(verbose: bool, rank: int = 0, size: int = 1) -> None:
    prefix = f"[rank {rank}/{size}] " if size > 1 else ""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", handlers=[StderrHandler()], force=True)
    # torch logs its FakeTensor cache statistics at INFO when the process exits: not ours to say
    logging.getLogger("torch").setLevel(logging.DEBUG if verbose else logging.WARNING)


def stopped(command: str, exc: BaseException) -> int:
    signum = signal_of(exc)
    log.error("snia %s stopped by %s: the files it was writing were removed (outputs completed "
              "before are kept)", command, signal.Signals(signum).name)
    return 128 + signum


def disk_is_full(args, exc: BaseException, exit_now: bool, code: int) -> int:
    """One line if ``exc`` says a disk is full (re-raised otherwise)."""
    full = disk_full(exc)
    if full is None:
        raise exc
    log.error("snia %s: %s", args.command, full_disk_message(full, getattr(args, "output", None)))
    if exit_now:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
