"""Progress of a long stage, readable where it is watched: a tqdm bar on a terminal, and in a log
file (a workflow rule's ``log:``, a SLURM job's output) one log line per ``every`` percent, with
the elapsed time and an estimate of what is left (at most one per ``MIN_SECONDS``, so a stage
done in seconds says nothing; one that logged says when it is done). A bar's carriage returns
would fill a log file with one unreadable line; a stage that says nothing for 15 minutes looks hung.

``Progress`` counts work units (light curves, say) from any thread (``update`` takes a lock), so
a per-batch hook called in worker threads can drive it. A total that is not known (``None``)
gives a line with the count every ``UNKNOWN_TOTAL_SECONDS``. ``progress`` is the form the
commands with ``--no-progress`` use: that flag leaves out the bar, not the log lines (the
workflow passes it, and its logs are the record).
"""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger("snia.progress")

EVERY_PERCENT = 5.0  # one log line per this share of the work, where there is no terminal
MIN_SECONDS = 10.0  # and at most one per this many seconds
UNKNOWN_TOTAL_SECONDS = 60.0  # a line with the count this often when the total is not known


def on_terminal() -> bool:
    """Whether stderr is a terminal (a bar redraws there; a file gets log lines)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"`` or ``"1.2 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """``total`` units of work named ``desc``; ``enabled``: False says nothing; ``bar``: a tqdm
    bar (default: when stderr is a terminal) instead of log lines every ``every`` percent, at
    most one per ``min_seconds`` (default ``MIN_SECONDS``)."""

    def __init__(self, total: int | None, desc: str, unit: str = "LC", enabled: bool = True,
                 bar: bool | None = None, every: float = EVERY_PERCENT,
                 min_seconds: float | None = None):
        self.known = total is not None
        self.total, self.desc, self.unit, self.every = max(int(total or 0), 0), desc, unit, every
        self.enabled = enabled
        self.min_seconds = MIN_SECONDS if min_seconds is None else min_seconds
        self.done, self.step, self.start = 0, "", time.perf_counter()
        self.next_line, self.last_line, self.lines = every, self.start, 0
        self.lock = threading.Lock()
        self.bar = None
        if enabled and (on_terminal() if bar is None else bar):
            from tqdm import tqdm

            self.bar = tqdm(total=self.total if self.known else None, desc=desc, unit=f" {unit}",
                            file=sys.stderr, mininterval=1.0, dynamic_ncols=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_total(self, total: int) -> None:
        """The work to do, better known now (the next log line at the next step of it)."""
        with self.lock:
            self.known, self.total = True, max(int(total), 0)
            if self.total:
                self.next_line = (self.done * 100.0 / self.total // self.every + 1) * self.every
            if self.bar is not None:
                self.bar.total = self.total
                self.bar.refresh()

    def set_step(self, step: str) -> None:
        """What is being done now (shown beside the bar, and in each log line)."""
        with self.lock:
            self.step = step
            if self.bar is not None:
                self.bar.set_description(f"{self.desc}: {step}" if step else self.desc)

    def update(self, n: int) -> None:
        with self.lock:
            self.done += int(n)
            if self.bar is not None:
                self.bar.update(int(n))
            elif self.enabled and not self.known:
                now = time.perf_counter()
                if now - self.last_line >= UNKNOWN_TOTAL_SECONDS:
                    self.last_line, self.lines = now, self.lines + 1
                    log.info("%s: %s %s, %s elapsed", self.desc, f"{self.done:,}", self.unit,
                             duration(now - self.start))
            elif self.enabled and self.total:
                share = 100.0 * self.done / self.total
                now = time.perf_counter()
                due = now - self.last_line >= self.min_seconds or (share >= 100 and self.lines)
                if share >= self.next_line and due:
                    self._line(share, now)
                    while self.next_line <= share:
                        self.next_line += self.every

    def _line(self, share: float, now: float) -> None:
        self.last_line, self.lines = now, self.lines + 1
        elapsed = now - self.start
        left = elapsed * (100.0 - share) / share if 0 < share < 100 else 0.0
        step = f" ({self.step})" if self.step else ""
        log.info("%s: %.0f %% (%s of %s %s)%s, %s elapsed, about %s left", self.desc,
                 min(share, 100.0), f"{self.done:,}", f"{self.total:,}", self.unit, step,
                 duration(elapsed), duration(left))

    def finish(self) -> None:
        """The work is done: count up to the total where it was an estimate (the byte counts of
        an input's blocks leave out its header line, say)."""
        if self.known and self.done < self.total:
            self.update(self.total - self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress(total: int | None, desc: str, unit: str = "objects", bar: bool = True,
             enabled: bool = True) -> Progress:
    """A command's progress: a bar on a terminal unless ``bar`` is False (``--no-progress``),
    log lines otherwise; nothing at all where not ``enabled`` (MPI ranks other than 0)."""
    return Progress(total, desc, unit.strip(), enabled=enabled, bar=None if bar else False)


def counted(progress: Progress, transform=None):
    """A per-batch hook for ``predict_store`` (its ``transform``) that counts the light curves
    done on ``progress`` (it runs in the worker threads; ``update`` takes a lock), then applies
    ``transform`` if given."""
    def hook(batch):
        progress.update(len(batch))
        return batch if transform is None else transform(batch)
    return hook
