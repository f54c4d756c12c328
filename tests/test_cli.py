"""The command line: a missing optional dependency is reported with how to install it."""

from __future__ import annotations

from snia import cli


def test_missing_optional_package_is_explained(monkeypatch, capsys):
    def needs_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setitem(cli.COMMANDS, "train", needs_torch)
    assert cli.main(["train", "store.h5", "-o", "run"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err  # the command line logs to stderr
    assert "snia train needs the Python package 'torch'" in err
    assert "pip install -e '.[train]'" in err


def test_help_lists_every_stage(capsys):
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    text = capsys.readouterr().out
    for command in ("data", "ingest", "store", "rasterize", "train", "evaluate", "baseline",
                    "classify", "report", "scaling", "profile"):
        assert command in text


def test_profile_install_copies_the_profile_once(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    monkeypatch.setenv("HOME", str(tmp_path))
    source = Path(__file__).resolve().parents[1] / "cluster" / "slurm"
    assert cli.main(["profile", "install", str(source)]) == 0
    installed = tmp_path / ".config" / "snakemake" / "slurm" / "config.yaml"
    assert installed.read_text() == (source / "config.yaml").read_text()
    assert "snakemake --profile slurm" in capsys.readouterr().out
    installed.write_text("edited")
    assert cli.main(["profile", "install", str(source)]) == cli.EXIT_FAILED  # no silent overwrite
    assert installed.read_text() == "edited"
    assert cli.main(["profile", "install", str(source), "--force"]) == 0
    assert installed.read_text() == (source / "config.yaml").read_text()
    assert cli.main(["profile", "install", str(tmp_path / "nowhere")]) == cli.EXIT_FAILED
