"""Every command's inputs and outputs, checked before the command does any work (``check``).

One table says, per command, what it reads (stores, CSV files, checkpoints, configs, folders) and
what it writes: output files, output folders, and the files it writes inside them. The checks are
``snia.outputs``: no output is an input under another name (symlink, hard link, ``..``), and every
output can be written (an output file is not a folder, its folder exists and is writable). A
command missing from the table writes nothing (``store info``/``verify``). A store of no objects
is refused by the commands that read one (``check_not_empty``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from snia.errors import ConfigError
from snia.outputs import check_not_inputs, check_output_file, check_output_folder


@dataclass
class Paths:
    inputs: list = field(default_factory=list)
    files: list = field(default_factory=list)  # output files (their folder must exist)
    folders: list = field(default_factory=list)  # output folders (created if missing)
    written: list = field(default_factory=list)  # files written inside the output folders
    new_folder_files: list = field(default_factory=list)  # output files whose folder is created


def _raw_files(inputs, fmt) -> list:
    """The files that folders of raw inputs stand for (none if they cannot be listed: the command
    names a missing input in its own words)."""
    from snia.readers import expand_inputs

    try:
        return expand_inputs(inputs, fmt)
    except (OSError, ValueError):
        return []


def _ingest(a) -> Paths:
    # its shard and temporary folders, and files a reader adds: snia.ingest.guard
    return Paths(inputs=[*a.inputs, *_raw_files(a.inputs, a.format), *a.metadata, a.config],
                 files=[a.output])


def _data(a) -> Paths:
    if a.data_command == "subset":
        return Paths(inputs=[a.source], folders=[a.dest])
    return Paths(inputs=[a.wheel, a.source_dir], folders=[a.dest])


def _store(a) -> Paths | None:
    if a.store_command == "redshifts" and a.output is not None:
        return Paths(inputs=[a.store], files=[a.output])
    return None


def _rasterize(a) -> Paths:
    return Paths(inputs=[a.store, a.config], files=[a.output])


def _gp(a) -> Paths:
    from snia.gp.file import default_path

    return Paths(inputs=[a.store], files=[a.output or default_path(a.store)])


def _train(a) -> Paths:
    from snia.train.run_folder import BEST, CHECKPOINT, HISTORY

    return Paths(inputs=[a.store, a.config, *(a.teachers or [])], folders=[a.output],
                 written=[a.output / name for name in (CHECKPOINT, BEST, HISTORY)])


EVALUATE_FILES = ("predictions.csv", "metrics.json", "report.md", "roc.png", "purity_completeness.png",
                  "p_ia_by_type.png", "confusion.png", "tsne.png", "gallery.png", "early.png")


def _evaluate(a) -> Paths:
    return Paths(inputs=[a.store, *a.checkpoint], folders=[a.output],
                 written=[a.output / name for name in EVALUATE_FILES])


BASELINE_FILES = ("metrics.json", "predictions.csv", "feature_importance.txt", "feature_importance.png",
                  "random_forest.joblib", "roc.png", "purity_completeness.png")


def _baseline(a) -> Paths:
    return Paths(inputs=[a.train, a.test, *([a.survey] if a.survey else [])], folders=[a.output],
                 written=[a.output / name for name in BASELINE_FILES])


def _classify(a) -> Paths:
    raw = _raw_files(a.inputs, a.format) if a.format is not None else []
    return Paths(inputs=[*a.inputs, *raw, *a.metadata, *a.checkpoint], files=[a.output])


def _calibrate(a) -> Paths:
    return Paths(inputs=[a.store, *a.checkpoint], folders=[a.output],
                 written=[a.output / c.parent.name / c.name for c in a.checkpoint])


def _scaling(a) -> Paths:
    if a.scaling_command == "run":
        return Paths(inputs=[a.store, a.config], new_folder_files=[a.output])
    return Paths(inputs=a.rows, files=[a.output, a.plot])


def _compare(a) -> Paths:
    return Paths(inputs=[*a.runs, a.store], files=[a.output, a.plot])


REPORT_FILES = ("report.md", "report.html", "metrics.json")


def _report(a) -> Paths:
    inputs = [a.cnn, a.ensemble, a.baseline, *(a.history or []), a.store, a.train_store, a.config,
              a.compare]
    return Paths(inputs=inputs, folders=[a.output], written=[a.output / name for name in REPORT_FILES])


def _profile(a) -> Paths | None:
    if a.profile_command == "check":  # writes nothing
        return None
    return Paths(inputs=[a.source], folders=[Path.home() / ".config" / "snakemake" / a.name])


def _model(a) -> Paths | None:
    if a.model_command != "package":
        return None
    from snia.shipped import CHECKPOINT_NAME, PROVENANCE_NAME, SHIPPED

    out = a.output or SHIPPED
    return Paths(inputs=[a.checkpoint, a.evaluation, a.train_store], folders=[out],
                 written=[out / CHECKPOINT_NAME, out / PROVENANCE_NAME])


PATHS = {"ingest": _ingest, "data": _data, "store": _store, "rasterize": _rasterize, "gp": _gp, "train": _train,
         "evaluate": _evaluate, "baseline": _baseline, "classify": _classify, "calibrate": _calibrate,
         "scaling": _scaling, "compare": _compare, "report": _report, "profile": _profile,
         "model": _model}


# commands -> the argument naming the store(s) they read; an empty store is refused by them
STORE_ARGS = {"rasterize": ("store",), "gp": ("store",), "train": ("store",), "evaluate": ("store",),
              "calibrate": ("store",), "baseline": ("train", "test"), "classify": ("inputs",)}


def check_not_empty(args) -> None:
    """Refuse a store of no objects (one that ``store verify`` calls OK, but that ingest never
    writes) in one line: there is nothing to rasterize, fit, train on, classify or evaluate (an
    error, not an empty result: see docs/store.md). Stores that do not exist or cannot be read
    are left to the command, which names them in its own words."""
    import h5py

    from snia.store import Store

    for name in STORE_ARGS.get(args.command, ()):
        paths = getattr(args, name)
        paths = paths if isinstance(paths, list) else [paths]
        for path in paths:
            try:
                if not (Path(path).is_file() and h5py.is_hdf5(path)):
                    continue
                with Store(path) as store:
                    n = len(store)
            except Exception:  # noqa: BLE001 - the command reports it
                continue
            if n == 0:
                raise ConfigError(f"{path} holds no objects (an empty store): nothing to "
                                  f"{VERBS[args.command]}")


VERBS = {"rasterize": "rasterize", "gp": "fit", "train": "train on", "evaluate": "evaluate",
         "calibrate": "calibrate on", "baseline": "train or test on", "classify": "classify"}


def check(args) -> None:
    """Refuse, in one line (ConfigError), outputs that are inputs or cannot be written, and empty
    stores."""
    paths = PATHS[args.command](args) if args.command in PATHS else None  # None: nothing written
    if paths is not None:
        outputs = [p for p in (*paths.files, *paths.folders, *paths.new_folder_files) if p is not None]
        check_not_inputs(paths.inputs, outputs, paths.written)
        for path in paths.files:
            if path is not None:
                check_output_file(path)
        for path in paths.new_folder_files:
            check_output_file(path, create_folder=True)
        for path in paths.folders:
            check_output_folder(path)
    check_not_empty(args)
