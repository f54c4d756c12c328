"""Progress of a long stage, one way for every command: a tqdm bar on a terminal, and elsewhere
(a workflow's log file, a batch job's output) one log line each ``step`` percent, so that a log
shows a stage moving without a bar's carriage returns filling it.

``progress(total, desc, unit, bar=...)``: ``total`` in the stage's own units (objects, bytes of
input), or None when it is not known (then a line per ``every`` seconds, with the count). ``bar``
False (``--no-progress``) leaves out the bar, not the log lines: those are the workflow's record.
``update`` may be called from several threads.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger("snia.progress")


class LogProgress:
    """Counts units and logs a line each time another ``step`` percent of ``total`` is done."""

    def __init__(self, total: int | None, desc: str, unit: str, step: float = 5.0,
                 every: float = 60.0, logger: logging.Logger = log):
        self.total, self.desc, self.unit = total, desc, unit
        self.step, self.every, self.log = step, every, logger
        self.n, self.next_percent, self.started = 0, step, time.monotonic()
        self.last_line = self.started
        self.lock = threading.Lock()

    def update(self, n: int = 1) -> None:
        with self.lock:
            self.n += n
            now = time.monotonic()
            if self.total:
                percent = 100.0 * min(self.n, self.total) / self.total
                if percent + 1e-9 < self.next_percent:
                    return
                self.next_percent = (percent // self.step + 1) * self.step
                self.log.info("%s: %3d %% (%s of %s %s, %.0f s)", self.desc, int(percent),
                              f"{min(self.n, self.total):,}", f"{self.total:,}", self.unit.strip(),
                              now - self.started)
            elif now - self.last_line >= self.every:
                self.last_line = now
                self.log.info("%s: %s %s (%.0f s)", self.desc, f"{self.n:,}", self.unit.strip(),
                              now - self.started)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress(total: int | None, desc: str, unit: str = " objects", bar: bool = True,
             enabled: bool = True, step: float = 5.0):
    """A tqdm bar when ``bar`` and stderr is a terminal; else log lines (LogProgress). Nothing at
    all when not ``enabled`` (e.g. MPI ranks other than 0)."""
    from tqdm import tqdm

    if not enabled:
        return tqdm(disable=True)
    if bar and sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, mininterval=1.0, file=sys.stderr,
                    unit_scale=unit.strip() == "B")
    return LogProgress(total, desc, unit, step=step)


def finish(bar) -> None:
    """Bring a bar whose total was an estimate (e.g. bytes, of which the last block's count may
    fall short) to its total, once the work is done."""
    total = getattr(bar, "total", None)
    if total and bar.n < total:
        bar.update(total - bar.n)
