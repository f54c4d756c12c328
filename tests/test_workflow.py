"""The Snakemake workflow: lint-clean apart from deployment advice, and a real run on tiny data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, read_store, synthetic_plasticc

SNAKEMAKE = shutil.which("snakemake", path=os.path.dirname(sys.executable)) or shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed (pip install -e '.[test]')")


def run_snakemake(*args, workdir=None, timeout=300):
    """Snakemake on the repository's Snakefile; ``workdir`` holds its own config/config.yaml."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    where = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir or REPO)]
    return subprocess.run([SNAKEMAKE, *where, *args], cwd=workdir or REPO, capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_lint_reports_nothing():
    proc = run_snakemake("--lint", "text")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in text, text


def test_default_target_is_the_whole_pipeline():
    # --forceall: every job of the default target, whatever results this checkout already holds
    proc = run_snakemake("--dry-run", "--forceall", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    for rule in ("ingest", "store_info", "train", "evaluate", "evaluate_ensemble", "baseline",
                 "report"):
        assert f"\n{rule} " in text or f"{rule} " in text.split("\n")[0], (rule, text)


def test_bad_config_is_refused_naming_the_key(tmp_path):
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["ingest"]["ranks"] = 0
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake("--dry-run", workdir=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ranks" in text and "minimum" in text, text


@pytest.mark.parametrize("distil", [0.7, 0])
def test_distillation_adds_a_student_trained_after_the_members(tmp_path, distil):
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["train"].update(members=3, distil=distil)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    commands = [line.split("Shell command: ", 1)[1] for line in text.splitlines()
                if "Shell command: " in line]
    trains = [c for c in commands if "snia train " in c]
    evaluations = [c for c in commands if "snia evaluate" in c]
    members = ["results/model/m0/best.pt", "results/model/m1/best.pt", "results/model/m2/best.pt"]
    if distil:
        assert len(trains) == 4 and "-o results/model/student " in trains[-1]  # last: after m0-m2
        assert any("--checkpoint results/model/student/best.pt -o results/evaluate/plasticc_test "
                   in c for c in evaluations), evaluations
        assert any("--checkpoint " + " ".join(members) + " -o results/evaluate/plasticc_test/ensemble"
                   in c for c in evaluations), evaluations
    else:
        assert len(trains) == 3 and not any("student" in c for c in commands)
        assert len(evaluations) == 1 and " ".join(members) in evaluations[0]


@pytest.mark.mpi
def test_ingest_rule_builds_a_verified_store(tmp_path, mpirun):
    lc, meta, expected = synthetic_plasticc(tmp_path, 30, 3)
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config.update({"data_dir": str(tmp_path), "results_dir": str(tmp_path / "results"),
                   "subset": 0, "ingest": {"ranks": 2, "on_error": "fail", "chunk_mb": 0.001},
                   "raster": {"datasets": ["tiny"], "kinds": ["bands", "heatmap"],
                              "backend": "cpu", "batch_size": 8},
                   "datasets": {"tiny": {"format": "plasticc", "inputs": [lc.name],
                                         "metadata": [meta.name], "split": "train"}}})
    config["train"]["dataset"] = config["report"]["dataset"] = "tiny"
    config["evaluate"]["datasets"] = ["tiny"]
    config["baseline"].update(train="tiny", test="tiny")
    # A config of its own (a --configfile would be merged into the default datasets).
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    results = tmp_path / "results"
    targets = [f"{results}/stores/tiny.info.txt", f"{results}/images/tiny.bands.h5",
               f"{results}/images/tiny.heatmap.h5"]
    proc = run_snakemake("--profile", str(REPO / "cluster" / "local"), *targets, workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = read_store(tmp_path / "results" / "stores" / "tiny.h5")
    assert list(store["objects/object_id"]) == list(expected)
    np.testing.assert_array_equal(store["observations/time"],
                                  np.concatenate([e["time"] for e in expected.values()]))
    info = (tmp_path / "results" / "stores" / "tiny.info.txt").read_text()
    assert "tiny.h5: OK" in info and "objects       30" in info
    assert "2 rank(s)" in (tmp_path / "results" / "logs" / "ingest_tiny.log").read_text()
    import h5py

    for kind, shape in (("bands", (30, 3, 6, 180)), ("heatmap", (30, 2, 32, 180))):
        with h5py.File(tmp_path / "results" / "images" / f"tiny.{kind}.h5", "r") as f:
            assert f["images"].shape == shape and list(f["object_id"][...]) == list(expected)
