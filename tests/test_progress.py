"""Progress of long stages (snia.progress): a bar on a terminal, log lines every few percent in a
log file, counted from many threads at once."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from snia.progress import Progress, duration


def shares(records) -> list[int]:
    return [int(re.search(r": (\d+) %", r.getMessage()).group(1)) for r in records]


def test_log_lines_every_five_percent_counted_from_threads(caplog):
    caplog.set_level(logging.INFO, logger="snia.progress")
    progress = Progress(10_000, "evaluate", bar=False, min_seconds=0)
    progress.set_step("predictions")

    def work():
        for _ in range(250):
            progress.update(10)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    progress.close()
    assert progress.done == 10_000
    # one line at each 5 % step crossed, in order, the last at 100 % (no step logged twice)
    assert shares(caplog.records) == list(range(5, 101, 5))
    last = caplog.records[-1].getMessage()
    assert last.startswith("evaluate: 100 % (10,000 of 10,000 LC) (predictions), ")
    assert "elapsed, about 0 s left" in last


def test_big_updates_log_once_and_a_quick_stage_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="snia.progress")
    with Progress(100, "x", unit="resamples", bar=False, min_seconds=0) as p:
        p.update(37)  # crosses 5 ... 35 %: one line, not seven
        p.update(63)
    assert shares(caplog.records) == [37, 100]
    caplog.clear()
    with Progress(100, "x", bar=False) as p:  # done within MIN_SECONDS: no line at all
        for _ in range(100):
            p.update(1)
    assert caplog.records == []
    with Progress(100, "x", bar=False, enabled=False, min_seconds=0) as p:
        p.update(100)
    assert caplog.records == []


def test_a_terminal_gets_a_bar_not_log_lines(caplog, capsys):
    caplog.set_level(logging.INFO, logger="snia.progress")
    with Progress(50, "ingest", unit="objects", bar=True, min_seconds=0) as p:
        p.set_step("reading")
        p.update(50)
    assert caplog.records == []
    err = capsys.readouterr().err
    assert "ingest: reading" in err and "50/50" in err


def test_a_total_better_known_later_keeps_the_steps(caplog):
    caplog.set_level(logging.INFO, logger="snia.progress")
    with Progress(400, "report: bootstrap", unit="resamples", bar=False, min_seconds=0) as p:
        p.update(100)  # 25 %
        p.set_total(200)  # now 50 %: the next line at 55 %
        p.update(10)
        p.update(90)
    assert shares(caplog.records) == [25, 55, 100]


@pytest.mark.parametrize("seconds, text", [(42, "42 s"), (210, "3.5 min"), (7200, "2.0 h")])
def test_durations_read_naturally(seconds, text):
    assert duration(seconds) == text


def test_an_unknown_total_logs_counts_and_a_command_keeps_its_lines_without_a_bar(caplog,
                                                                                 monkeypatch):
    """No total (ingest of a format whose size is not known up front): a line with the count
    every UNKNOWN_TOTAL_SECONDS; once set_total gives one, percent lines. A command's
    --no-progress (bar=False) leaves out the bar, not the lines; finish() counts an estimated
    total up to 100 %."""
    import snia.progress
    from snia.progress import progress

    caplog.set_level(logging.INFO, logger="snia.progress")
    monkeypatch.setattr(snia.progress, "UNKNOWN_TOTAL_SECONDS", 0.0)
    monkeypatch.setattr(snia.progress, "MIN_SECONDS", 0.0)
    p = progress(None, "ingest", " objects", bar=False)
    assert p.bar is None
    p.update(1500)
    p.update(500)
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(",")[0] + "," + m.split(",")[1] for m in messages] == [
        "ingest: 1,500 objects", "ingest: 2,000 objects"]
    caplog.clear()
    p.set_total(4000)  # 50 % done: the next line at 55 %
    p.update(1000)
    p.finish()  # the estimate fell 1,000 short
    p.close()
    assert shares(caplog.records) == [75, 100]
    caplog.clear()
    quiet = progress(10, "ingest", bar=False, enabled=False)  # MPI ranks other than 0
    quiet.update(10)
    assert caplog.records == []
