"""The command line: a missing optional dependency is reported with how to install it."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import error_line

from snia import cli
from snia.cli.parser import build_parser


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


def test_profile_check_refuses_in_one_line(tmp_path, capsys):
    """What Snakemake says is wrong (not its banner), in one line, exit 2; what follows
    --snakemake is Snakemake's."""
    assert cli.main(["profile", "check", str(tmp_path / "nowhere")]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "no profile.yaml (or config.yaml) found" in err and len(err.splitlines()) == 1
    source = Path(__file__).resolve().parents[1] / "cluster" / "slurm"
    args = build_parser().parse_args(["profile", "check", str(source), "--test-only", "--snakemake",
                                      "--directory", "x", "all"])
    assert args.test_only and args.snakemake_args == ["--directory", "x", "all"]
    if shutil.which("sbatch") is None:
        assert cli.main(["profile", "check", str(source), "--test-only"]) == cli.EXIT_BAD_INPUT
        assert "--test-only needs SLURM's sbatch" in capsys.readouterr().err


def test_bad_settings_are_one_line_and_exit_2(tmp_path, capsys):
    """A configuration or usage error names the setting, in one line, exit code 2, no traceback."""
    config = tmp_path / "settings.yaml"
    config.write_text("train:\n  epoch: 3\n")  # a typo of 'epochs'
    assert cli.main(["train", str(tmp_path / "none.h5"), "-o", str(tmp_path / "run"),
                     "--config", str(config)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "unknown training setting(s) ['epoch']" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    config.write_text("train:\n  augment: {redshift_probability: 2}\n")
    assert cli.main(["train", str(tmp_path / "none.h5"), "-o", str(tmp_path / "run"),
                     "--config", str(config)]) == cli.EXIT_BAD_INPUT
    assert "augment.redshift_probability must be in [0, 1], not 2" in capsys.readouterr().err
    raw = tmp_path / "lc.csv"
    raw.write_text("object_id,mjd,passband,flux,flux_err\n")
    assert cli.main(["classify", str(raw), "--checkpoint", str(tmp_path / "m.pt"),
                     "-o", str(tmp_path / "p.csv")]) == cli.EXIT_BAD_INPUT
    assert "raw input needs --format" in capsys.readouterr().err


def test_classify_on_a_missing_path_is_one_line_exit_2(tmp_path, capsys):
    for extra in ([], ["--format", "plasticc"], ["--format", "snana-text"]):
        missing = tmp_path / "nowhere.h5"
        assert cli.main(["classify", str(missing), *extra, "--checkpoint", str(tmp_path / "m.pt"),
                         "-o", str(tmp_path / "p.csv")]) == cli.EXIT_BAD_INPUT, extra
        line = error_line(capsys.readouterr().err)
        assert str(missing) in line and "does not exist" in line, extra
    assert cli.main(["classify", str(tmp_path), "--format", "snana-text", "--checkpoint",
                     str(tmp_path / "m.pt"), "-o", str(tmp_path / "p.csv")]) == cli.EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)  # a folder without files of the format
    assert str(tmp_path) in line and "no *.DAT files" in line


def test_unknown_training_setting_and_raw_input_without_format_are_one_line(tmp_path, capsys):
    config = tmp_path / "settings.yaml"
    config.write_text("train:\n  model: {width: 3}\n")
    assert cli.main(["train", str(tmp_path / "none.h5"), "-o", str(tmp_path / "run"),
                     "--config", str(config)]) == cli.EXIT_BAD_INPUT
    assert "unknown setting(s) under 'model' ['width']" in error_line(capsys.readouterr().err)
    raw = tmp_path / "lc.csv"
    raw.write_text("object_id,mjd,passband,flux,flux_err\n")
    assert cli.main(["classify", str(raw), "--checkpoint", str(tmp_path / "m.pt"),
                     "-o", str(tmp_path / "p.csv")]) == cli.EXIT_BAD_INPUT
    assert "raw input needs --format" in error_line(capsys.readouterr().err)


def test_the_command_line_needs_no_torch_until_a_command_does(tmp_path):
    """Without PyTorch (e.g. a venv for ingestion only), `snia --help`, ingestion and the scaling
    summary still work; only the commands that train or classify need it."""
    import subprocess
    import sys

    blocked = ("import sys; sys.modules['torch'] = None; from snia import cli; "
               "import contextlib, io; buf = io.StringIO()\n"
               "with contextlib.redirect_stdout(buf):\n"
               "    try:\n        cli.main(['--help'])\n    except SystemExit as e:\n        assert e.code == 0\n"
               "assert 'ingest' in buf.getvalue()\n"
               "import snia.ingest, snia.scaling, snia.store, snia.raster, snia.readers")
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_config_file_of_the_wrong_shape_is_one_line_naming_it(tmp_path, capsys):
    """Every stage reads its section through snia.config_file.read_section: not YAML, not a
    mapping of sections, or a section of the wrong shape is one line naming the file, exit 2."""
    store = tmp_path / "s.h5"
    store.write_bytes(b"")
    cases = [("ingest", "bands: {name: x}\n", "'bands:' must be a list"),
             ("rasterize", "raster: [1, 2]\n", "'raster:' must be a mapping of settings"),
             ("train", "- train\n", "not a YAML mapping of sections"),
             ("train", "train: {epochs: [\n", "not valid YAML")]
    for command, text, said in cases:
        config = tmp_path / f"{command}.yaml"
        config.write_text(text)
        args = {"ingest": ["ingest", "--format", "plasticc", str(store), "-o", str(tmp_path / "o.h5")],
                "rasterize": ["rasterize", str(store), "-o", str(tmp_path / "i.h5")],
                "train": ["train", str(store), "-o", str(tmp_path / "run")]}[command]
        capsys.readouterr()
        assert cli.main([*args, "--config", str(config)]) == cli.EXIT_BAD_INPUT, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(config) in err and said in err, err
