"""How a command stops on SIGTERM (what SLURM sends at a time limit or preemption) or SIGINT
(Ctrl-C): like an exception, so every ``finally`` and ``with`` on the way out removes what it was
writing (``snia.files.atomic_path``'s temporary file, a temporary store in TMPDIR), and the command
line prints one line instead of a ``KeyboardInterrupt`` traceback.

``Stopped`` derives from KeyboardInterrupt, not Exception, for the reason Ctrl-C's does: library
code's ``except Exception`` (tqdm's, for one) must not swallow it. Outputs already complete (a
checkpoint of an earlier epoch) are kept: they were published atomically.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """A signal stopped the command; raised in the main thread by the handler."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def signal_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (Ctrl-C's own: SIGINT)."""
    return int(getattr(exc, "signum", None) or signal.SIGINT)


def _full_disk(exc) -> bool:
    """A destructor's write failing on a full disk (h5py's): the write that is checked reports it."""
    return isinstance(exc, (OSError, RuntimeError)) and (
        getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(
            text in str(exc) for text in ("No space left on device", "Disk quota exceeded", "File too large")))


class _State:
    received: int | None = None  # the first signal that stopped this command
    deferred: int | None = None  # one that arrived where stopping had to wait (defer)
    active = False  # inside stop_on_signals


def _raise(signum, frame):
    if _State.received is None:
        _State.received = signum
    raise Stopped(signum)


def check() -> None:
    """Raise Stopped if a signal arrived whose exception was lost (raised from a handler that ran
    inside a weakref callback or a destructor, as h5py frees objects, Python only prints it) or
    was deferred. Called where work is published or read (``atomic_path``, each store batch)."""
    if _State.received is not None or _State.deferred is not None:
        raise Stopped(_State.received or _State.deferred)


def check_lost() -> None:
    """Raise Stopped if a signal's exception was lost (not for a deferred one: the step that
    deferred it finished, e.g. a store renamed into place is complete)."""
    if _State.received is not None:
        raise Stopped(_State.received)


def defer(signum: int) -> None:
    """A signal that arrived where stopping had to wait (an ingestion renaming its store into
    place) stops the command at its next step (``check``), e.g. classify's after its ingestion."""
    if _State.active and _State.deferred is None:
        _State.deferred = signum


def received() -> int | None:
    """The signal that stopped this command, or None."""
    return _State.received


@contextmanager
def stop_on_signals():
    """SIGTERM and SIGINT raise Stopped in the main thread while inside (elsewhere, where Python
    cannot install handlers, nothing changes); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.received = _State.deferred = None
    _State.active = True
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED}
    unraisable = sys.unraisablehook

    # a lost interruption (ours, or the ingestion's KeyboardInterrupt) is raised again by the
    # checks (check(), Signals.check): no "Exception ignored" traceback
    def quiet(what):
        if not isinstance(what.exc_value, KeyboardInterrupt) and not _full_disk(what.exc_value):
            unraisable(what)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = unraisable
        _State.received = _State.deferred = None
        _State.active = False
