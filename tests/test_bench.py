"""The device check in its CPU smoke mode: one command, one table (as CI runs it; on a GPU the
same command measures the kernels and training on the device)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, synthetic_plasticc

from snia.ingest import run_ingest


def test_device_check_smoke_prints_one_table(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    lc, meta, _ = synthetic_plasticc(tmp_path, 300, 7)
    run_ingest("plasticc", [lc], tmp_path / "train.h5", [meta], progress=False)
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "bench" / "device_check.sh"), "--smoke", "--store",
                           str(tmp_path / "train.h5"), "--objects", "600", "--steps", "2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout[done.stdout.index("| section | item | value |"):]
    assert "| rasterize | heatmap 16x60, cpu |" in table and "LC/s (600 objects)" in table
    assert "| GPU tests | tests/test_augment.py |" in table and "passed" in table
    assert "pipeline efficiency" in table and "samples/s" in table
    archs = [line for line in table.splitlines() if line.startswith("| archs |")]
    assert [line.split()[4] for line in archs[:2]] == ["cnn", "gru"], archs  # one row each
