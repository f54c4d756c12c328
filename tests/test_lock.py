"""Two ingestions to one output: the second refuses, naming the first, instead of silently
replacing its store; the lock is released on exit and a dead run's lock is recognised as stale
(issue 20 item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import synthetic_plasticc

from snia.cli import EXIT_BAD_INPUT, main
from snia.ingest.guard import HOST
from snia.store import verify


def start_ingest(lc, meta, out):
    """A real `snia ingest` process (one rank), slowed by tiny chunks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "SLURM", "HYDRA"))}
    cmd = [sys.executable, "-m", "snia", "ingest", "--format", "plasticc", str(lc), "--metadata", str(meta),
           "-o", str(out), "--no-progress", "--layout", "virtual", "--chunk-mb", "0.002"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def ingest(lc, meta, out) -> int:
    return main(["ingest", "--format", "plasticc", str(lc), "--metadata", str(meta), "-o", str(out),
                 "--no-progress", "--layout", "virtual"])


def test_a_second_ingestion_to_the_same_output_refuses(tmp_path, capsys):
    lc, meta, _ = synthetic_plasticc(tmp_path, 4000, 7)
    small, small_meta, _ = synthetic_plasticc(tmp_path, 5, 1, name="small.csv")
    out = tmp_path / "s.h5"
    first = start_ingest(lc, meta, out)
    lock = tmp_path / ".s.h5.lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    assert lock.read_text().split()[:2] == [HOST, str(first.pid)]  # host and pid of the holder
    assert ingest(small, small_meta, out) == EXIT_BAD_INPUT
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{out} is being written by another ingestion (process {first.pid} on this host" in line
    assert str(lock) in line
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert verify(out, check_inputs=True) == []  # the first run's store, whole
    assert not lock.exists()  # released on exit


def test_a_dead_runs_lock_is_stale_and_another_hosts_is_named(tmp_path, capsys):
    lc, meta, _ = synthetic_plasticc(tmp_path, 5, 1)
    out = tmp_path / "s.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".s.h5.lock"
    lock.write_text(f"{HOST} {dead.pid} {int(time.time() * 1000) - 5000}\n")  # a SIGKILLed run's
    assert ingest(lc, meta, out) == 0
    assert not lock.exists() and out.exists()
    lock.write_text(f"other-host 12345 {int(time.time() * 1000)}\n")
    assert main(["ingest", "--format", "plasticc", str(lc), "--metadata", str(meta), "-o", str(out),
                 "--overwrite", "--no-progress"]) == EXIT_BAD_INPUT
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "process 12345 on host other-host" in line and str(lock) in line
    assert lock.exists()  # not ours to remove
