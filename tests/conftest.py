"""Shared fixtures: tiny hand-made survey files, the real benchmark data, and an MPI launcher."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Without an NVIDIA GPU, Numba CUDA kernels run in Numba's CUDA simulator. This must be decided
# before numba is first imported, hence here.
if not Path("/dev/nvidiactl").exists():
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DATA_DIR = Path(os.environ.get("SNIA_DATA_DIR", REPO / "data" / "plasticc"))

@pytest.fixture(autouse=True)
def _root_logging_restored():
    """``snia.cli.main`` points the root logger at the sys.stderr of its moment (pytest's capture
    of that test): remove its handler after each test, so a later test's log records are not
    written to a capture already closed ("--- Logging error ---" in that test's stderr)."""
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:  # pytest's own capture handlers are pytest's to remove
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


LC_HEADER = "object_id,mjd,passband,flux,flux_err,detected_bool"
META_HEADER = "object_id,ra,decl,ddf_bool,hostgal_specz,hostgal_photoz,hostgal_photoz_err,mwebv,target"


def write_plasticc(folder: Path, lc_rows: list[str], meta_rows: list[str], name="lc.csv",
                   lc_header=LC_HEADER, meta_header=META_HEADER) -> tuple[Path, Path]:
    """Write a PLAsTiCC-style light-curve CSV (line 1 = header, row k = line k+1) and metadata."""
    lc = folder / name
    lc.write_text("\n".join([lc_header] + lc_rows) + "\n")
    meta = folder / ("meta_" + name)
    meta.write_text("\n".join([meta_header] + meta_rows) + "\n")
    return lc, meta


def synthetic_plasticc(folder: Path, n_objects: int, seed: int, name="lc.csv", first_id=1):
    """A random but valid PLAsTiCC-style data set; returns (lc, meta, expected per-object arrays)."""
    rng = np.random.default_rng(seed)
    rows, meta, expected = [], [], {}
    for k in range(n_objects):
        oid = first_id + k
        n = int(rng.integers(1, 40))
        t = np.sort(rng.uniform(59580, 60000, n)).round(4)
        band = rng.integers(0, 6, n)
        flux = rng.normal(0, 100, n).round(4)
        err = rng.uniform(0.5, 20, n).round(4)
        det = rng.integers(0, 2, n)
        rows += [f"{oid},{t[i]},{band[i]},{flux[i]},{err[i]},{det[i]}" for i in range(n)]
        target = int(rng.choice([90, 42, 62, 67, 52, 95, 88]))
        meta.append(f"{oid},{rng.uniform(0, 360):.4f},{rng.uniform(-60, 0):.4f},{k % 2},-9,"
                    f"{rng.uniform(0, 1):.4f},0.05,0.02,{target}")
        expected[oid] = dict(time=t, band=band, flux=flux, flux_err=err, flag=det, target=target)
    lc, meta_path = write_plasticc(folder, rows, meta, name=name)
    return lc, meta_path, expected


@pytest.fixture
def plasticc_data() -> Path:
    """The real PLAsTiCC files; fetched once into data/plasticc (or $SNIA_DATA_DIR)."""
    from snia.data import fetch_plasticc, have_plasticc
    from snia.errors import SniaError

    if not have_plasticc(DATA_DIR):
        try:
            fetch_plasticc(DATA_DIR)
        except SniaError as exc:
            if os.environ.get("SNIA_REQUIRE_DATA") == "1":
                raise
            pytest.skip(f"PLAsTiCC data unavailable (offline?): {exc}")
    return DATA_DIR


def _mpiexec() -> list[str] | None:
    here = Path(sys.executable).parent / "mpiexec"
    exe = str(here) if here.exists() else shutil.which("mpiexec")
    if exe is None:
        return None
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    # Open MPI refuses more ranks than cores unless told; tests start up to 3 ranks on 2 cores.
    return [exe, "--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else [exe]


@pytest.fixture
def mpirun():
    """Run ``python -m snia ARGS`` on N real MPI ranks; returns the CompletedProcess."""
    launcher = _mpiexec()
    if launcher is None:
        pytest.skip("mpiexec not found (pip install mpich, or apt-get install openmpi-bin)")
    try:
        import mpi4py.MPI  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"mpi4py cannot start MPI here: {exc}")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")

    def run(n: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [*launcher, "-n", str(n), sys.executable, "-m", "snia", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)

    return run


def read_store(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a store, read with plain h5py (independent of snia's reader)."""
    import h5py

    with h5py.File(path, "r") as f:
        return {f"{g}/{k}": f[g][k][...] for g in ("observations", "objects") for k in f[g]}


# ----------------------------------------------------------------------------- shared test data


def make_batch(lengths, seed, bands=(0, 1, 2, 3, 4, 5), span=60.0):
    """Random ragged light curves, time-ordered within each object: a bump plus noise, positive
    errors (rasterization and kernel tests)."""
    from snia.lightcurve import Batch

    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    n = int(offsets[-1])
    time = np.concatenate([np.sort(rng.uniform(60000, 60000 + span, k)) for k in lengths]) \
        if n else np.empty(0)
    peak = np.repeat(rng.uniform(60010, 60000 + max(span - 10, 10), len(lengths)), lengths)
    flux = 100 * np.exp(-0.5 * ((time - peak) / 8) ** 2) + rng.normal(0, 3, n)
    obs = {"time": time, "band": rng.choice(np.asarray(bands), n).astype(np.int8),
           "flux": flux.astype(np.float32), "flux_err": rng.uniform(1, 5, n).astype(np.float32),
           "flag": np.zeros(n, np.int32)}
    meta = {"specz": rng.uniform(0.05, 1, len(lengths)).astype(np.float32),
            "hostgal_photoz": np.full(len(lengths), np.nan, np.float32)}
    return Batch(np.arange(len(lengths)), offsets, obs, meta)


@pytest.fixture
def small_store(tmp_path):
    """A store of 25 synthetic PLAsTiCC objects (split: train), LSST ugrizy."""
    from snia.ingest import run_ingest

    lc, meta, _ = synthetic_plasticc(tmp_path, 25, 8)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False, split="train")
    return tmp_path / "s.h5"


def error_line(err: str) -> str:
    """The one line ``snia.cli.main`` logged for a snia error: last, whole, no traceback."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and " ERROR " in lines[-1], err
    return lines[-1]


def des_text_files(folder, n: int) -> list:
    """n DES light curves in griz (SNANA text), four epochs a band."""
    rng = np.random.default_rng(7)
    paths = []
    for k in range(n):
        rows = [f"OBS: {56170 + 4 * j + i:.3f}  {band} NULL  {rng.normal(50, 20):.3f}  {rng.uniform(2, 9):.3f}"
                for j in range(4) for i, band in enumerate("griz")]
        lines = ["SURVEY: DES", f"SNID: {100 + k}", f"SNTYPE: {1 if k % 2 else 20}", "RA: 48.0 deg",
                 "DECL: -1.5 deg", "MWEBV: 0.07", "REDSHIFT_SPEC: -9.0 +- 9.0",
                 "HOST_GALAXY_PHOTO-Z: 0.4 +- 0.04", "", f"NOBS: {len(rows)}", "NVAR: 5",
                 "VARLIST:  MJD  FLT FIELD   FLUXCAL   FLUXCALERR", *rows, "END:"]
        paths.append(folder / f"DES_{k}.DAT")
        paths[-1].write_text("\n".join(lines) + "\n")
    return paths


# tiny models: trained in seconds on 2 cores
TINY_MODEL = {"epochs": 1, "batch_size": 8, "val_fraction": 0.3, "min_epoch_samples": 0,
              "model": {"channels": [4, 8], "groups": 2, "hidden": 8}}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A store of 40 synthetic PLAsTiCC objects, its raw files, a tiny model trained on it
    (TINY_MODEL) and a config file of those settings."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    import json

    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    folder = tmp_path_factory.mktemp("trained")
    lc, meta, _ = synthetic_plasticc(folder, 40, 35)
    store = folder / "store.h5"
    run_ingest("plasticc", [lc], store, [meta], progress=False)
    run_training(store, folder / "run", TrainConfig.from_dict(TINY_MODEL))
    config = folder / "settings.yaml"
    config.write_text(f"train: {json.dumps(TINY_MODEL)}\n")
    return {"lc": lc, "meta": meta, "store": store, "model": folder / "run" / "best.pt", "config": config}


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Stores (LSST ugrizy, LSST griz only, DES griz) and tiny models trained on LSST data."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    folder = tmp_path_factory.mktemp("models")
    lc, meta, _ = synthetic_plasticc(folder, 40, 35)
    out = {"lsst": folder / "lsst.h5", "griz": folder / "griz.h5", "des": folder / "des.h5"}
    run_ingest("plasticc", [lc], out["lsst"], [meta], progress=False)
    lines = lc.read_text().splitlines()
    griz = folder / "griz.csv"  # PLAsTiCC passbands 1-4: LSST g, r, i, z
    griz.write_text("\n".join([lines[0]] + [r for r in lines[1:] if r.split(",")[2] in "1234"]) + "\n")
    run_ingest("plasticc", [griz], out["griz"], [meta], on_error="skip", progress=False)
    run_ingest("snana-text", des_text_files(folder, 6), out["des"], progress=False)
    for name, store, extra in (("bands", "lsst", {"kind": "bands"}),
                               ("multiclass", "lsst", {"kind": "bands", "task": "multiclass"}),
                               ("heatmap_griz", "griz", {"kind": "heatmap"})):
        run_training(out[store], folder / name, TrainConfig.from_dict({**TINY_MODEL, **extra}))
        out[name] = folder / name / "best.pt"
    return out
