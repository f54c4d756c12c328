"""Shared fixtures: tiny hand-made survey files, the real benchmark data, and an MPI launcher."""

from __future__ import annotations

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
