"""Every command that writes guards its inputs (issue 20): an output that is an input under any
name (symlink, hard link, ``..``), or that cannot be written, is refused in one line before any
work; interruptions and full disks leave nothing behind and say so in one line."""

from __future__ import annotations

import os

import pytest
from conftest import error_line, synthetic_plasticc

from snia.cli import EXIT_BAD_INPUT, main


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


def test_an_output_that_is_an_input_is_refused_by_every_command(trained, tmp_path, capsys, monkeypatch):
    store, model, lc, meta = trained["store"], trained["model"], trained["lc"], trained["meta"]
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


def test_unwritable_outputs_are_refused_before_any_work(trained, tmp_path, capsys, monkeypatch):
    import snia.classify
    import snia.raster

    def no_work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(snia.classify, "load_members", no_work)
    monkeypatch.setattr(snia.raster, "rasterize_store", no_work)
    store, model = trained["store"], trained["model"]
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


def test_a_training_set_of_one_class_is_refused_naming_the_classes(trained, tmp_path, capsys):
    config = tmp_path / "settings.yaml"
    run = tmp_path / "run"
    config.write_text("train:\n  epochs: 1\n  batch_size: 8\n  types: [II, Ibc]\n")
    refused(["train", trained["store"], "-o", run, "--config", config], [trained["store"]], capsys,
            trained["store"], "one class", "'II':", "Ia and not Ia")
    assert not run.exists()  # before any work
    config.write_text("train:\n  epochs: 1\n  task: multiclass\n  types: [Ia, Ibc]\n"
                      "  val_fraction: 0.99\n")
    refused(["train", trained["store"], "-o", run, "--config", config], [trained["store"]], capsys,
            "no training objects of types ['Ia', 'Ibc']", "nothing to train on")
    assert not run.exists()


def empty_store(path):
    """A store of no objects (valid: store verify calls it OK), which ingest never writes."""
    from snia.bands import BandRegistry
    from snia.store import SPLIT_NAMES, root_attributes, verify, write_virtual_store

    write_virtual_store(path, [], BandRegistry(), root_attributes({}, 0, 0, "virtual", list(SPLIT_NAMES)))
    assert not [f for f in verify(path, check_inputs=False) if "checksum" not in f]
    return path


def test_an_empty_store_is_one_line_for_every_command_that_reads_one(trained, tmp_path, capsys):
    store = empty_store(tmp_path / "empty.h5")
    model = trained["model"]
    for command in (["rasterize", store, "-o", tmp_path / "images.h5"],
                    ["train", store, "-o", tmp_path / "run"],
                    ["evaluate", store, "--checkpoint", model, "-o", tmp_path / "evaluation"],
                    ["classify", store, "--checkpoint", model, "-o", tmp_path / "p.csv"],
                    ["calibrate", store, "--checkpoint", model, "-o", tmp_path / "calibrated"],
                    ["baseline", "--train", trained["store"], "--test", store, "-o", tmp_path / "rf"],
                    ["gp", "fit", store, "-o", tmp_path / "gp.h5"]):
        refused(command, [store], capsys, store, "holds no objects")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.h5"]  # nothing written


@pytest.mark.parametrize("setting, message", [
    ("epochs: ten", "epochs must be a whole number, not 'ten'"),
    ("lr: fast", "lr must be a number, not 'fast'"),
    ("batch_size: 16.5", "batch_size must be a whole number, not 16.5"),
    ("model: {channels: '8,16'}", "model.channels must be a list of whole numbers, not '8,16'"),
    ("types: Ia", "types must be a list, not 'Ia'"),
    ("augment: {enabled: maybe}", "augment.enabled must be true or false, not 'maybe'"),
    ("augment: {redshift_tries: 2.5}", "augment.redshift_tries must be a whole number, not 2.5"),
    ("raster: {n_time: many}", "raster.n_time must be a whole number, not 'many'"),
    ("model: {arch: gru, window: [1, 2, 3]}", "model.window must be a list of 2 (a number, a number) or null"),
    ("distill: {weight: heavy}", "distill.weight must be a number, not 'heavy'"),
])
def test_settings_of_the_wrong_type_are_one_line_naming_key_value_and_type(tmp_path, capsys, setting, message):
    config = tmp_path / "settings.yaml"
    config.write_text(f"train:\n  {setting}\n")
    assert main(["train", str(tmp_path / "none.h5"), "-o", str(tmp_path / "run"), "--config", str(config)]
                ) == EXIT_BAD_INPUT
    assert message in error_line(capsys.readouterr().err)


def test_training_settings_outside_a_train_section_are_refused_not_ignored(tmp_path, capsys):
    """A settings file written without its `train:` section trained the defaults silently."""
    config = tmp_path / "flat.yaml"
    config.write_text("seed: 3\nepochs: 2\nraster: {n_time: 30}\n")
    assert main(["train", str(tmp_path / "none.h5"), "-o", str(tmp_path / "run"), "--config", str(config)]
                ) == EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "['epochs', 'raster', 'seed'] at the top level" in line and str(config) in line
    from snia.train.config import settings_from_file

    config.write_text("images: {datasets: []}\n")  # other sections only: nothing to train with
    assert settings_from_file(config) == {}


def test_type_checks_follow_the_dataclass_and_take_yaml_numbers_spelt_as_text():
    from dataclasses import dataclass

    from snia.errors import ConfigError
    from snia.train import TrainConfig
    from snia.typecheck import checked

    assert TrainConfig.from_dict({"lr": "2e-3"}).lr == 0.002  # YAML 1.1 reads 2e-3 as text

    @dataclass
    class Settings:
        size: int = 1
        scale: float | None = None
        shape: tuple[int, ...] = ()

    assert checked({"size": 3, "scale": None, "shape": [1, 2]}, Settings) == {"size": 3, "scale": None,
                                                                              "shape": [1, 2]}
    with pytest.raises(ConfigError, match=r"^s\.shape must be a list of whole numbers, not \[1, 'x'\]$"):
        checked({"shape": [1, "x"]}, Settings, "s.")
    with pytest.raises(ConfigError, match="size must be a whole number, not True"):
        checked({"size": True}, Settings)
