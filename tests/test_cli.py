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
                    "classify"):
        assert command in text
