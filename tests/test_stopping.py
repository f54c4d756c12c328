"""SIGTERM (SLURM's time limit) and SIGINT (Ctrl-C) stop every command leaving nothing behind (no
hidden temporary file beside the output, no temporary store in TMPDIR) with one line, no
traceback, exit 128 + signal (issue 20 item 3); a full disk (or quota, or file-size limit) is
one line saying so and where, nothing written, the previous checkpoint intact (item 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import synthetic_plasticc

# `snia ARGS` with every store read slowed down, so that a signal finds the command at work
SLOW = ("import sys, time\n"
        "import snia.store.reader as reader\n"
        "batch = reader.Store.batch\n"
        "def slow(self, *args, **kwargs):\n"
        "    time.sleep(float(sys.argv[1]))\n"
        "    return batch(self, *args, **kwargs)\n"
        "reader.Store.batch = slow\n"
        "from snia.cli import main\n"
        "sys.exit(main(sys.argv[2:]))\n")


def start(args, tmp_path, pause=60.0):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "SLURM", "HYDRA"))}
    env["TMPDIR"] = str(tmp_path / "tmpdir")
    (tmp_path / "tmpdir").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", SLOW, str(pause), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the command ended first: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the command never got there")


def stopped(proc, signum, command) -> None:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert f"ERROR snia: snia {command} stopped by {signal.Signals(signum).name}" in last, err


def everything(folder) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_rasterize_stopped_leaves_no_temporary_file(trained, tmp_path, signum):
    out = tmp_path / "images.h5"
    proc = start(["rasterize", trained["store"], "-o", out, "--batch-size", "1", "--no-progress"], tmp_path,
                 pause=0.2)
    wait_for(lambda: list(tmp_path.glob(".images.h5.tmp-*")), proc)
    stopped(proc, signum, "rasterize")
    assert everything(tmp_path) == ["tmpdir"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_classify_of_raw_files_stopped_leaves_no_temporary_store(trained, tmp_path, signum):
    out = tmp_path / "p.csv"
    proc = start(["classify", trained["lc"], "--format", "plasticc", "--metadata", trained["meta"],
                  "--checkpoint", trained["model"], "-o", out], tmp_path, pause=5)
    wait_for(lambda: list((tmp_path / "tmpdir").rglob("input.h5")), proc)  # the temporary store
    stopped(proc, signum, "classify")
    assert everything(tmp_path) == ["tmpdir"]


def test_evaluate_stopped_says_so_in_one_line(trained, tmp_path):
    proc = start(["evaluate", trained["store"], "--checkpoint", trained["model"], "-o", tmp_path / "e"], tmp_path)
    time.sleep(3)  # at work (the first store read sleeps)
    stopped(proc, signal.SIGTERM, "evaluate")
    assert not list(tmp_path.rglob(".*.tmp-*"))


def test_ingest_stopped_by_ctrl_c_is_one_line(tmp_path):
    lc, meta, _ = synthetic_plasticc(tmp_path, 4000, 7)
    before = everything(tmp_path)
    out = tmp_path / "s.h5"
    proc = start(["ingest", "--format", "plasticc", lc, "--metadata", meta, "-o", out, "--no-progress",
                  "--layout", "virtual", "--chunk-mb", "0.002"], tmp_path)
    wait_for(lambda: list(tmp_path.glob(".s.h5.tmp-*/shards/shard-00000.h5")), proc)
    stopped(proc, signal.SIGINT, "ingest")
    assert everything(tmp_path) == sorted([*before, "tmpdir"])


# ----------------------------------------------------------------------------- full disk

# `snia ARGS` under a file-size limit (RLIMIT_FSIZE; SIGXFSZ ignored, so writes fail with EFBIG),
# set once MPI has started (its shared memory is written at start)
LIMITED = ("import resource, signal, sys\n"
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "try:\n    from mpi4py import MPI  # noqa\nexcept Exception:\n    pass\n"
           "limit = int(sys.argv[1])\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
           "sys.argv = ['snia', *sys.argv[2:]]\n"
           "from snia.cli import main\n"
           "sys.exit(main())\n")


def limited(limit: int, args) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "SLURM", "HYDRA"))}
    done = subprocess.run([sys.executable, "-c", LIMITED, str(limit), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stderr  # not a crash (-11), not 0
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "ERROR snia:" in last and "the file-size limit is reached" in last and "nothing was written" in last
    return last


def test_a_full_disk_is_one_line_and_leaves_nothing(trained, tmp_path):
    out = tmp_path / "images.h5"
    line = limited(100_000, ["rasterize", trained["store"], "-o", out, "--no-progress"])
    assert f"writing {out}" in line
    assert everything(tmp_path) == []
    lc, meta, _ = synthetic_plasticc(tmp_path, 2000, 3)
    before = everything(tmp_path)
    line = limited(300_000, ["ingest", "--format", "plasticc", lc, "--metadata", meta, "-o", tmp_path / "s.h5",
                             "--no-progress", "--layout", "virtual"])
    assert f"writing {tmp_path / 's.h5'}" in line
    assert everything(tmp_path) == before  # no store, no temporary folder


def test_a_full_disk_under_two_mpi_ranks_is_one_line_and_leaves_nothing(tmp_path):
    """Ingest on 2 real MPI ranks, each under the file-size limit: the job ends with exit 1 and
    one line from rank 0 (not one per rank, no traceback, no abort), and neither the store nor
    the temporary folder of the shards is left."""
    from conftest import _mpiexec

    launcher = _mpiexec()
    if launcher is None:
        pytest.skip("mpiexec not found (pip install mpich, or apt-get install openmpi-bin)")
    lc, meta, _ = synthetic_plasticc(tmp_path, 2000, 3)
    before = everything(tmp_path)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    out = tmp_path / "s.h5"
    done = subprocess.run([*launcher, "-n", "2", sys.executable, "-c", LIMITED, "300000", "ingest",
                           "--format", "plasticc", str(lc), "--metadata", str(meta), "-o", str(out),
                           "--no-progress", "--layout", "virtual"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "MPI_ABORT" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "[rank 0/2]" in errors[0], done.stderr
    assert f"the file-size limit is reached writing {out}" in errors[0]
    assert "nothing was written" in errors[0]
    assert everything(tmp_path) == before


def test_a_full_disk_keeps_the_previous_checkpoint(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained["model"].parent, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    limited(30_000, ["train", trained["store"], "-o", run, "--epochs", "2", "--batch-size", "8", "--no-progress",
                     "--config", trained["config"]])
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # intact, no temporaries


def test_no_space_left_is_one_line_naming_the_output(trained, tmp_path, capsys, monkeypatch):
    import errno
    from pathlib import Path

    from snia.cli import EXIT_FAILED, main

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "q.yaml"
    assert main(["store", "redshifts", str(trained["store"]), "-o", str(out)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"the disk is full writing {out}: nothing was written" in err.strip().splitlines()[-1]
    assert everything(tmp_path) == []


def test_a_signal_held_while_a_store_is_renamed_stops_the_next_step():
    """classify's ingestion defers a signal that arrives while it renames its store into place
    (the store is complete); classify then stops at its next step instead of finishing."""
    from snia import stopping
    from snia.ingest.guard import Signals

    with stopping.stop_on_signals():
        with Signals() as held:
            with held.hold():
                held._handle(signal.SIGTERM, None)  # arrives during the rename: waits
        with pytest.raises(stopping.Stopped):
            stopping.check()  # the next store read or publish
        stopping.check_lost()  # a standalone ingestion, whose store is complete, ends well
    stopping.check()  # outside a command: nothing pending
