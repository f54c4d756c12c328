"""What keeps an ingestion from losing data or leaving debris: an output path that is, or lies
inside, an input is refused before any work; the temporary folder is named by host, process and
start time, so the next run can tell a dead run's leftovers (removed) from a live one's (kept); and
SIGTERM (what SLURM sends at a time limit or preemption) stops the run like Ctrl-C, cleaning up.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from snia import stopping
from snia.errors import ConfigError, SniaError
from snia.outputs import real_path, same_file

log = logging.getLogger(__name__)


class IngestInterrupted(KeyboardInterrupt):
    """A signal (SIGTERM) stopped the ingestion; its temporary files were removed. Raised from the
    signal handler like Ctrl-C's KeyboardInterrupt, and for the same reason not an Exception:
    library code's ``except Exception`` (tqdm's, for one) must not swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"ingestion stopped by {signal.Signals(signum).name}: its temporary files "
                         f"were removed and no store was written")


def shard_dir_of(store: Path) -> Path:
    """Folder holding a virtual store's per-rank shard files (moves together with the store)."""
    return store.with_name(store.name + ".shards")


class Signals:
    """SIGTERM raises IngestInterrupted in the main thread, as Ctrl-C raises KeyboardInterrupt, so
    the same cleanup runs. An exception raised from a signal handler can be lost (it may land in a
    weakref callback or a destructor, where Python only prints it), so the signal is also noted
    and checked at every chunk and every rank synchronisation (``check``). While the finished
    store is renamed into place (``hold``) signals wait: stopping between the renames would leave
    shards without their store."""

    HANDLED = (signal.SIGTERM, signal.SIGINT)
    active: Signals | None = None  # of the ingestion running in this process's main thread

    def __init__(self):
        self.previous: dict = {}
        self.holding = False
        self.received: int | None = None  # the signal that stops this run
        self.pending: int | None = None  # one that arrived while holding

    def __enter__(self):
        import pyarrow  # its own handlers, swapped in around each CSV read, could drop a signal

        pyarrow.enable_signal_handlers(False)  # landing as they are swapped back: ours alone
        if threading.current_thread() is threading.main_thread():  # where Python runs handlers
            for signum in self.HANDLED:
                self.previous[signum] = signal.signal(signum, self._handle)
            Signals.active = self
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if Signals.active is self:
            Signals.active = None

    def _handle(self, signum, frame):
        if self.holding:
            self.pending = signum
        elif self.received is None:  # later ones: let the cleanup finish
            self.received = signum
            raise self.interruption()

    def interruption(self) -> BaseException:
        return KeyboardInterrupt() if self.received == signal.SIGINT else IngestInterrupted(self.received)

    @classmethod
    def check(cls) -> None:
        """Raise the interruption if a signal arrived whose exception was lost."""
        if cls.active is not None and cls.active.received is not None:
            raise cls.active.interruption()

    @contextmanager
    def hold(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.pending is not None:
                log.warning("%s arrived while the store was renamed into place; the store is "
                            "complete", signal.Signals(self.pending).name)
                stopping.defer(self.pending)  # a command that goes on (classify) stops next


HOST = re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "host"


def temp_name(output: Path) -> str:
    """Name of a run's temporary folder beside ``output``: host, process id and start time say
    whose it is, so a later run can tell a dead run's leftovers from a live run's work."""
    return f".{output.name}.tmp-{HOST}-{os.getpid()}-{int(time.time() * 1000)}"


def prepare_output(output: Path, work: Path, overwrite: bool, inputs, requested: Path) -> None:
    if not output.parent.is_dir():
        raise SniaError(f"output folder {output.parent} does not exist")
    if output.is_dir():
        raise ConfigError(f"output {output} is a folder; give the store's file name (e.g. "
                          f"{output / 'store.h5'})")
    check_paths(output, work, inputs, requested)
    remove_stale_temporaries(output)
    shards = shard_dir_of(output)
    if output.exists() and not overwrite:
        raise SniaError(f"{output} already exists; pass --overwrite to replace it")
    if shards.exists() and not overwrite:
        raise SniaError(f"{shards} exists without its store file {output.name} (left by a store "
                        f"that was deleted or moved without its shards): remove that folder, or "
                        f"pass --overwrite to replace it")
    (work / "shards").mkdir(parents=True)


def check_paths(output: Path, work: Path, inputs, requested: Path | None = None) -> None:
    """Refuse an output (the store, its shard folder, the temporary folder) that is an input or
    inside an input folder, and an input inside the shard folder: publishing replaces them.
    Compared by resolved path and by file identity (links, hard links); ``requested``: the store's
    path as the user gave it, for the message."""
    shown = f"{requested} (= {output})" if requested and Path(requested).absolute() != output else output
    outputs = (("store", output, shown), ("shard folder", shard_dir_of(output), shard_dir_of(output)),
               ("temporary folder", work, work))
    for given in inputs:
        given = Path(given)
        real = real_path(given, "input")
        for what, out, name in outputs:
            out_real = real_path(out, f"output {what}")
            if out_real == real or same_file(out, given):
                raise ConfigError(f"the output {what} {name} is the input {given}: writing the store "
                                  f"would replace it; choose another output path")
            if real.is_dir() and out_real.is_relative_to(real):
                raise ConfigError(f"the output {what} {name} is inside the input folder {given}; "
                                  f"choose an output outside it")
            if what == "shard folder" and real.is_relative_to(out_real):
                raise ConfigError(f"the input {given} is inside {out}, the shard folder of the "
                                  f"output store, which writing the store replaces; choose another "
                                  f"output path")


def remove_stale_temporaries(output: Path) -> None:
    """Remove temporary folders of earlier runs for ``output`` that no live process owns (a run
    killed by SIGKILL). Only this host's can be judged: another host's is left, with a warning."""
    prefix = f".{output.name}.tmp-"
    for path in output.parent.glob(glob.escape(prefix) + "*"):
        parts = path.name[len(prefix):].rsplit("-", 2)
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            log.warning("left %s: a temporary folder of an older snia; remove it if no ingestion "
                        "is writing %s", path, output)
            continue
        host, pid, started = parts[0], int(parts[1]), int(parts[2]) / 1000
        if host != HOST:
            log.warning("left %s: a temporary folder of a run on host %s, which this host cannot "
                        "check; remove it if no ingestion is writing %s there", path, host, output)
        elif alive(pid, started):
            log.warning("left %s: process %d of this host, which wrote it, is still running", path,
                        pid)
        else:
            log.info("removing %s, left by process %d, which is no longer running", path, pid)
            shutil.rmtree(path, ignore_errors=True)


def alive(pid: int, since: float) -> bool:
    """Whether process ``pid`` of this host may be the run that started at time ``since``."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return not started_after(pid, since)


def started_after(pid: int, since: float) -> bool:
    """Whether ``pid`` started after ``since`` (then the id was reused: not the run we look for).
    Linux /proc; False where it cannot be told."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        start = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return start > since + 2  # btime has 1 s resolution
