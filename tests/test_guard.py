"""Every command that writes guards its inputs (issue 20): an output that is an input under any
name (symlink, hard link, ``..``), or that cannot be written, is refused in one line before any
work; interruptions and full disks leave nothing behind and say so in one line."""

from __future__ import annotations

import os

import pytest
from conftest import synthetic_plasticc

from snia.cli import EXIT_BAD_INPUT, main

TINY_MODEL = {"epochs": 1, "batch_size": 8, "val_fraction": 0.3,
              "model": {"channels": [4, 8], "groups": 2, "hidden": 8}}


def error_line(err: str) -> str:
    """The one line ``snia.cli.main`` logged: last, whole, no traceback."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and " ERROR " in lines[-1], err
    return lines[-1]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A store, its raw CSV files, and a tiny model trained on it."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    folder = tmp_path_factory.mktemp("guard")
    lc, meta, _ = synthetic_plasticc(folder, 40, 35)
    store = folder / "store.h5"
    run_ingest("plasticc", [lc], store, [meta], progress=False)
    run_training(store, folder / "run", TrainConfig.from_dict(TINY_MODEL))
    return {"folder": folder, "lc": lc, "meta": meta, "store": store, "model": folder / "run" / "best.pt"}


def snapshot(paths) -> dict:
    return {p: (p.read_bytes() if p.is_file() else sorted(x.name for x in p.iterdir())) for p in paths}


def refused(command, inputs, capsys, *names) -> str:
    """Run ``command``: exit 2, one line naming ``names``, every input unchanged."""
    before = snapshot(inputs)
    capsys.readouterr()
    assert main([str(c) for c in command]) == EXIT_BAD_INPUT, command
    line = error_line(capsys.readouterr().err)
    for name in names:
        assert str(name) in line, (name, line)
    assert snapshot(inputs) == before
    return line


def test_an_output_that_is_an_input_is_refused_by_every_command(made, tmp_path, capsys, monkeypatch):
    store, model, lc, meta = made["store"], made["model"], made["lc"], made["meta"]
    link = tmp_path / "link.h5"
    link.symlink_to(store)
    hard = tmp_path / "hard.h5"
    os.link(store, hard)
    dotdot = tmp_path / "sub"
    dotdot.mkdir()
    for out in (store, link, hard, dotdot / ".." / "hard.h5"):
        line = refused(["rasterize", store, "-o", out], [store], capsys, out, store)
        assert "is the input" in line
        refused(["classify", store, "--checkpoint", model, "-o", out], [store, model], capsys, out)
    # raw CSV inputs, their metadata, the checkpoint, the config
    refused(["classify", lc, "--format", "plasticc", "--metadata", meta, "--checkpoint", model, "-o", lc],
            [lc, meta, model], capsys, lc)
    refused(["classify", lc, "--format", "plasticc", "--metadata", meta, "--checkpoint", model, "-o", meta],
            [lc, meta, model], capsys, meta)
    refused(["classify", store, "--checkpoint", model, "-o", model], [store, model], capsys, model)
    folder = lc.parent  # a folder of raw files: the files it stands for are inputs too
    refused(["classify", folder, "--format", "plasticc", "--metadata", meta, "--checkpoint", model,
             "-o", folder / lc.name], [lc, meta], capsys, lc.name)
    config = tmp_path / "settings.yaml"
    config.write_text("raster: {}\n")
    refused(["rasterize", store, "--config", config, "-o", config], [config], capsys, config)
    refused(["store", "redshifts", store, "-o", link], [store], capsys, link)
    refused(["gp", "fit", store, "-o", hard], [store], capsys, hard)
    refused(["scaling", "run", store, "--mode", "strong", "-o", hard], [store], capsys, hard)
    # folders: the files written inside them
    run = model.parent
    refused(["train", store, "-o", run, "--teachers", model], [model, run], capsys, model)
    refused(["train", store, "-o", store], [store], capsys, store)
    refused(["calibrate", store, "--checkpoint", model, "-o", run.parent], [model], capsys, model)
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text("{}")
    refused(["report", "--cnn", evaluation, "-o", evaluation], [evaluation], capsys, evaluation)
    refused(["evaluate", store, "--checkpoint", model, "-o", store], [store], capsys, store)
    refused(["baseline", "--train", store, "--test", store, "-o", hard], [store], capsys, hard)
    refused(["data", "subset", "plasticc", folder, folder / ".", "--max-objects", "3"], [folder], capsys,
            folder)
    monkeypatch.setenv("HOME", str(tmp_path))
    profile = tmp_path / ".config" / "snakemake" / "slurm"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text("jobs: 1\n")
    refused(["profile", "install", profile, "--force"], [profile], capsys, profile)


def test_unwritable_outputs_are_refused_before_any_work(made, tmp_path, capsys, monkeypatch):
    import snia.inference
    import snia.raster

    def no_work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(snia.inference, "load_members", no_work)
    monkeypatch.setattr(snia.raster, "rasterize_store", no_work)
    store, model = made["store"], made["model"]
    folder = tmp_path / "existing"
    folder.mkdir()
    line = refused(["classify", store, "--checkpoint", model, "-o", folder], [store], capsys, folder)
    assert "is a folder" in line
    refused(["rasterize", store, "-o", folder], [store], capsys, folder)
    refused(["rasterize", store, "-o", tmp_path / "missing" / "x.h5"], [store], capsys, tmp_path / "missing")
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = refused(["evaluate", store, "--checkpoint", model, "-o", afile], [store], capsys, afile)
    assert "not a folder" in line
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        refused(["rasterize", store, "-o", locked / "x.h5"], [store], capsys, locked)


def test_a_symlink_loop_in_an_input_folder_is_named(tmp_path, capsys):
    lc, meta, _ = synthetic_plasticc(tmp_path, 5, 1)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(tmp_path / "loop.csv")
    line = refused(["ingest", "--format", "plasticc", tmp_path, "--metadata", meta, "-o",
                    tmp_path.parent / f"{tmp_path.name}.h5"], [lc, meta], capsys, loop)
    assert "symlink loop" in line


def test_a_training_set_of_one_class_is_refused_naming_the_classes(made, tmp_path, capsys):
    config = tmp_path / "settings.yaml"
    run = tmp_path / "run"
    config.write_text("train:\n  epochs: 1\n  batch_size: 8\n  types: [II, Ibc]\n")
    refused(["train", made["store"], "-o", run, "--config", config], [made["store"]], capsys,
            made["store"], "one class", "'II':", "Ia and not Ia")
    assert not run.exists()  # before any work
    config.write_text("train:\n  epochs: 1\n  task: multiclass\n  types: [Ia, Ibc]\n"
                      "  val_fraction: 0.99\n")
    refused(["train", made["store"], "-o", run, "--config", config], [made["store"]], capsys,
            "no training objects of types ['Ia', 'Ibc']", "nothing to train on")
    assert not run.exists()


def empty_store(path):
    """A store of no objects (valid: store verify calls it OK), which ingest never writes."""
    from snia.bands import BandRegistry
    from snia.store import SPLIT_NAMES, root_attributes, verify, write_virtual_store

    write_virtual_store(path, [], BandRegistry(), root_attributes({}, 0, 0, "virtual", list(SPLIT_NAMES)))
    assert not [f for f in verify(path, check_inputs=False) if "checksum" not in f]
    return path


def test_an_empty_store_is_one_line_for_every_command_that_reads_one(made, tmp_path, capsys):
    store = empty_store(tmp_path / "empty.h5")
    model = made["model"]
    for command in (["rasterize", store, "-o", tmp_path / "images.h5"],
                    ["train", store, "-o", tmp_path / "run"],
                    ["evaluate", store, "--checkpoint", model, "-o", tmp_path / "evaluation"],
                    ["classify", store, "--checkpoint", model, "-o", tmp_path / "p.csv"],
                    ["calibrate", store, "--checkpoint", model, "-o", tmp_path / "calibrated"],
                    ["baseline", "--train", made["store"], "--test", store, "-o", tmp_path / "rf"],
                    ["gp", "fit", store, "-o", tmp_path / "gp.h5"]):
        refused(command, [store], capsys, store, "holds no objects")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.h5"]  # nothing written
