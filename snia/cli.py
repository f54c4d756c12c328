"""The ``snia`` command line: one subcommand per pipeline stage.

  snia data fetch plasticc DIR           the benchmark data (PLAsTiCC + SPCC) from PyPI
  snia ingest --format F FILES -o STORE  raw survey files -> HDF5 store (mpiexec/srun for ranks)
  snia store info STORE                  what is in a store
  snia store verify STORE                check a store's invariants and its inputs' checksums
  snia rasterize STORE -o IMAGES.h5      light curves -> images (bands or heatmap kind)
  snia train STORE -o RUN_DIR            the CNN, data-parallel under torchrun, srun or mpiexec
  snia evaluate STORE --checkpoint CKPT  predictions, metrics.json, plots, report
  snia baseline --train S --test S       the random forest on light-curve features
  snia report --cnn DIR --baseline DIR   both side by side
  snia classify INPUT --checkpoint CKPT  P(Ia) for new data
  snia scaling run|summarize             training throughput against ranks
  snia profile install cluster/slurm     make 'snakemake --profile slurm' work

Wiring only: each command hands its arguments to its stage's module, which reads its own config
section and checks its own settings. Stage modules are imported inside the command functions, so
``snia --help`` stays fast and a stage's optional dependencies (torch, light-curve, mpi4py, cupy)
are needed only by the commands that use them (a missing one is explained, see OPTIONAL_MODULES).
Every snia error (bad input, bad setting or usage) is one plain line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("snia")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# optional dependencies -> how to get them
OPTIONAL_MODULES = {
    "torch": "pip install -e '.[train]' (make test installs the CPU build torch==2.13.0)",
    "light_curve": "pip install -e '.[train]'",
    "sklearn": "pip install -e '.[train]'",
    "mpi4py": "pip install -e '.[mpi]' (or '.[mpi-wheel]' without a system MPI)",
    "cupy": "pip install -e '.[gpu]' on a machine with an NVIDIA GPU",
}


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="obtain benchmark data sets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="fetch a data set",
                        description="Fetch the PLAsTiCC training set, the 5,000-object test example "
                                    "and the SPCC subset from the snmachine wheel on PyPI.")
    f.add_argument("dataset", choices=["plasticc"])
    f.add_argument("dest", type=Path, help="folder to put the files in")
    f.add_argument("--wheel", type=Path, help="use this local copy of the wheel (offline)")
    f.add_argument("--from", dest="source_dir", type=Path,
                   help="copy the files from this folder instead of downloading (offline)")
    s = dsub.add_parser("subset", help="a small random copy of the fetched benchmark data",
                        description="Copy at most N objects of each PLAsTiCC file pair and N SPCC "
                                    "light curves (random, seeded; rows copied byte for byte).")
    s.add_argument("dataset", choices=["plasticc"])
    s.add_argument("source", type=Path, help="folder filled by 'snia data fetch plasticc'")
    s.add_argument("dest", type=Path)
    s.add_argument("--max-objects", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)


def _add_ingest(sub) -> None:
    from snia.errors import POLICIES
    from snia.ingest import LAYOUTS
    from snia.readers import FORMATS
    from snia.store import SPLIT_NAMES

    p = sub.add_parser("ingest", help="ingest raw survey files into an HDF5 store",
                       description="Ingest light curves into one HDF5 store. Run under "
                                   "'mpiexec -n N' or 'srun' to use N ranks.")
    p.add_argument("inputs", nargs="+", type=Path,
                   help="light-curve files (plasticc: CSV or CSV.gz; snana-fits: *HEAD.FITS[.gz]; snana-text: "
                        "*.DAT) or folders holding them")
    p.add_argument("-o", "--output", type=Path, required=True, help="store file to write (.h5)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--metadata", nargs="+", type=Path, default=[],
                   help="metadata CSV file(s) (plasticc format)")
    p.add_argument("--survey", help="survey of the filter letters (default: from the files)")
    p.add_argument("--split", choices=SPLIT_NAMES, help="tag every object with this split")
    p.add_argument("--on-error", choices=POLICIES, default="fail",
                   help="fail: stop at the first bad row/object (default); skip: drop it and "
                        "report counts per reason at the end")
    p.add_argument("--chunk-mb", type=float, default=16.0,
                   help="input read per block, per rank (bounds memory; default 16)")
    p.add_argument("--compression", choices=["gzip", "lzf"], default=None,
                   help="compress datasets (default: none, fastest)")
    p.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="virtual: store file + per-rank shards (stock h5py); single: one file "
                        "written collectively (h5py built with MPI); auto picks single when possible")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--config", type=Path, help="YAML config with extra 'bands:'")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_store(sub) -> None:
    p = sub.add_parser("store", help="inspect a light-curve store")
    ssub = p.add_subparsers(dest="store_command", required=True)
    i = ssub.add_parser("info", help="counts per type and band, time span")
    i.add_argument("store", type=Path)
    i.add_argument("--json", action="store_true", help="machine-readable output")
    v = ssub.add_parser("verify", help="check offsets, counts, order and input checksums")
    v.add_argument("store", type=Path)
    v.add_argument("--no-inputs", action="store_true", help="skip re-hashing the input files")


def _add_rasterize(sub) -> None:
    from snia.raster import BACKENDS, DEFAULT_KIND, KINDS

    p = sub.add_parser("rasterize", help="turn a store's light curves into images (HDF5)",
                       description="Stream a store through the rasterization kernels into an "
                                   "HDF5 file of images [N, C, H, W].")
    p.add_argument("store", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--kind", choices=KINDS, default=DEFAULT_KIND)
    p.add_argument("--backend", choices=("auto",) + BACKENDS, default="auto",
                   help="auto: cupy > numba-cuda > cpu, whichever is available")
    p.add_argument("--batch-size", type=int, default=4096, help="objects per batch (memory bound)")
    p.add_argument("--config", type=Path, help="YAML config; its 'raster:' keys set the image spec")
    p.add_argument("--no-progress", action="store_true")


def _add_train(sub) -> None:
    from snia.raster import KINDS

    p = sub.add_parser("train", help="train the CNN (DDP under torchrun, srun or mpiexec)",
                       description="Train the light-curve CNN on a store; resumes automatically "
                                   "from RUN_DIR/checkpoint.pt.")
    p.add_argument("store", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder")
    p.add_argument("--config", type=Path, help="YAML config; its 'train:' keys set TrainConfig")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch, split over ranks")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--seed", type=int)
    p.add_argument("--teachers", type=Path, nargs="+",
                   help="distil these models (an ensemble) into this one: their mean P(Ia) is a "
                        "soft target")
    p.add_argument("--distill-weight", type=float, help="share of the loss on the teachers' P(Ia)")
    p.add_argument("--restart", action="store_true",
                   help="start over when RUN_DIR holds a checkpoint of other settings or one that "
                        "cannot be read (default: refuse; the old files are kept as *.stale); a "
                        "checkpoint of the same settings is always resumed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)  # tests: a run cut short


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="predictions, metrics.json, plots and report for a store")
    p.add_argument("store", type=Path)
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="a model, or several: an ensemble averaging their probabilities")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    _add_allow_other_bands(p)
    _add_ia_prior(p)


def _add_allow_other_bands(p) -> None:
    p.add_argument("--allow-other-bands", action="store_true",
                   help="run a model on data with bands it was not trained on, with a warning "
                        "(default: refuse, naming both). A heatmap model places observations by "
                        "wavelength, yet a band it never saw still counts: its light falls where "
                        "the model never learnt any. Data lacking some of the model's bands run.")


def _add_ia_prior(p) -> None:
    p.add_argument("--ia-prior", type=float, metavar="Q",
                   help="the share of SNe Ia expected in the data, if known: a calibrated model's "
                        "P(Ia) is moved from the validation split's share to it")


def _add_baseline(sub) -> None:
    p = sub.add_parser("baseline", help="random forest on light-curve features (the baseline)")
    p.add_argument("--train", type=Path, required=True, help="training store")
    p.add_argument("--test", type=Path, required=True, help="test store")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--n-iter", type=int, default=12, help="random-search candidates")
    p.add_argument("--seed", type=int, default=0)


def _add_classify(sub) -> None:
    from snia.readers import FORMATS

    p = sub.add_parser("classify", help="P(Ia) for new data (a store or raw survey files)")
    p.add_argument("inputs", nargs="+", type=Path, help="a store, or raw files of --format")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="a model, or several: an ensemble averaging their probabilities")
    p.add_argument("-o", "--output", type=Path, required=True, help="CSV: object_id,p_ia,true_type")
    p.add_argument("--format", choices=FORMATS, help="format of raw inputs")
    p.add_argument("--metadata", nargs="+", type=Path, default=[])
    p.add_argument("--survey")
    _add_allow_other_bands(p)
    _add_ia_prior(p)


def _add_scaling(sub) -> None:
    from snia.scaling import MODES

    p = sub.add_parser("scaling", help="training throughput against the number of ranks")
    ssub = p.add_subparsers(dest="scaling_command", required=True)
    r = ssub.add_parser("run", help="time N training steps (under torchrun/srun/mpiexec for ranks)")
    r.add_argument("store", type=Path)
    r.add_argument("-o", "--output", type=Path, required=True, help="JSON row to write")
    r.add_argument("--mode", choices=MODES, required=True,
                   help="strong: fixed global batch; weak: fixed batch per rank")
    r.add_argument("--steps", type=int, default=20)
    r.add_argument("--warmup", type=int, default=2)
    r.add_argument("--batch-size", type=int, default=64,
                   help="global batch (strong) or batch per rank (weak)")
    r.add_argument("--config", type=Path, help="YAML config; its 'train:' keys set the model")
    s = ssub.add_parser("summarize", help="JSON rows -> CSV with speedup/efficiency (+ plot)")
    s.add_argument("rows", nargs="+", type=Path)
    s.add_argument("-o", "--output", type=Path, required=True, help="CSV to write")
    s.add_argument("--plot", type=Path, help="PNG of throughput and efficiency")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="every classifier side by side, with provenance, intervals and "
                                      "mistakes (Markdown + self-contained HTML)")
    p.add_argument("--cnn", type=Path, required=True, help="folder written by 'snia evaluate'")
    p.add_argument("--ensemble", type=Path,
                   help="'snia evaluate' folder of the ensemble a distilled CNN learnt from")
    p.add_argument("--baseline", type=Path, help="folder written by 'snia baseline'")
    p.add_argument("--history", type=Path, nargs="+",
                   help="training history.csv of the model, or of each model trained")
    p.add_argument("--store", type=Path,
                   help="the evaluated store: the CNN's mistakes (light curves, images) and its data set")
    p.add_argument("--train-store", type=Path, help="the CNN's training store (objects, class mix)")
    p.add_argument("--config", type=Path, help="configuration file to show, complete, in the provenance")
    p.add_argument("--target", help="the workflow target that asked for the report (provenance)")
    p.add_argument("--resamples", type=int, default=1000,
                   help="bootstrap resamples for the 68 %% intervals and bands (default 1000)")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder")


def _add_profile(sub) -> None:
    p = sub.add_parser("profile", help="install a Snakemake profile (e.g. cluster/slurm)")
    psub = p.add_subparsers(dest="profile_command", required=True)
    i = psub.add_parser("install", help="copy a profile folder to ~/.config/snakemake/NAME",
                        description="After 'snia profile install cluster/slurm', "
                                    "'snakemake --profile slurm' finds it by name.")
    i.add_argument("source", type=Path, nargs="?", default=Path("cluster/slurm"))
    i.add_argument("--name", default="slurm")
    i.add_argument("--force", action="store_true", help="replace an installed profile")


def build_parser() -> argparse.ArgumentParser:
    from snia import __version__

    parser = argparse.ArgumentParser(prog="snia", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"snia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data(sub)
    _add_ingest(sub)
    _add_store(sub)
    _add_rasterize(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_baseline(sub)
    _add_classify(sub)
    _add_scaling(sub)
    _add_report(sub)
    _add_profile(sub)
    return parser


def _setup_logging(verbose: bool, rank: int = 0, size: int = 1) -> None:
    prefix = f"[rank {rank}/{size}] " if size > 1 else ""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from snia.errors import SniaError

    _setup_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except SniaError as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    except ModuleNotFoundError as exc:
        if exc.name not in OPTIONAL_MODULES:
            raise
        log.error("snia %s needs the Python package %r: %s", args.command, exc.name,
                  OPTIONAL_MODULES[exc.name])
        return EXIT_FAILED


def cmd_data(args) -> int:
    from snia.data import fetch_plasticc, subset_plasticc

    if args.data_command == "subset":
        subset_plasticc(args.source, args.dest, args.max_objects, seed=args.seed)
        return 0
    fetch_plasticc(args.dest, wheel=args.wheel, source_dir=args.source_dir)
    return 0


def cmd_ingest(args) -> int:
    from snia.bands import BandRegistry
    from snia.ingest import IngestAborted, IngestInterrupted, run_ingest
    from snia.parallel import world
    from snia.readers import expand_inputs

    comm = world()
    _setup_logging(args.verbose, comm.rank, comm.size)
    bands = BandRegistry.from_config_file(args.config)
    try:
        result = run_ingest(args.format, expand_inputs(args.inputs, args.format), args.output,
                            args.metadata, survey=args.survey, split=args.split,
                            on_error=args.on_error, chunk_bytes=int(args.chunk_mb * (1 << 20)),
                            compression=args.compression, layout=args.layout,
                            overwrite=args.overwrite, bands=bands, comm=comm,
                            progress=not args.no_progress)
    except IngestAborted as exc:
        log.debug("%s", exc)  # the failing rank reports the cause itself
        return EXIT_BAD_INPUT
    except IngestInterrupted as exc:  # SIGTERM (SLURM's time limit): the shell's 128 + signal
        log.error("%s", exc)
        return 128 + exc.signum
    # run_ingest logged the result and any skipped-input summary on rank 0.
    return 0 if result.n_objects else EXIT_FAILED


def cmd_store(args) -> int:
    from snia.store import format_summary, summarize, verify

    if args.store_command == "info":
        info = summarize(args.store)
        print(json.dumps(info, indent=2) if args.json else format_summary(info))
        return 0
    failures = verify(args.store, check_inputs=not args.no_inputs)
    if failures:
        for failure in failures:
            print(f"FAIL {failure}")
        return EXIT_FAILED
    print(f"{args.store}: OK")
    return 0


def cmd_rasterize(args) -> int:
    from snia.raster import geometry_from_file, rasterize_store, spec_for_store
    from snia.store import Store

    options = geometry_from_file(args.config)
    with Store(args.store) as store:
        spec = spec_for_store(store, args.kind, **options)
    result = rasterize_store(args.store, args.output, spec, backend=args.backend,
                             batch_size=args.batch_size, progress=not args.no_progress)
    log.info("wrote %s: %d images of shape %s (%s backend)", result["path"], result["objects"],
             result["shape"], result["backend"])
    return 0


def cmd_train(args) -> int:
    from snia.parallel import dist_from_env
    from snia.train import TrainConfig, run_training, settings_from_file

    values = settings_from_file(args.config)
    for key in ("epochs", "batch_size", "kind", "seed"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    distill = dict(values.get("distill") or {})
    if args.distill_weight is not None:
        distill["weight"] = args.distill_weight
    if args.teachers:
        distill["teachers"] = args.teachers  # TrainConfig keeps them as strings
    if distill:
        values["distill"] = distill
    dist = dist_from_env()
    _setup_logging(args.verbose, dist.rank, dist.world)
    result = run_training(args.store, args.output, TrainConfig.from_dict(values),
                          stop_after=args.stop_after, restart_on_change=args.restart,
                          progress=dist.rank == 0 and not args.no_progress and sys.stderr.isatty())
    if dist.rank == 0:
        log.info("trained %d epochs; best validation AUC %.4f; checkpoints in %s",
                 result["epochs"], result["best_auc"], args.output)
    return 0


def cmd_evaluate(args) -> int:
    from snia.evaluate import evaluate

    result = evaluate(args.checkpoint, args.store, args.output,
                      allow_other_bands=args.allow_other_bands, prior=args.ia_prior)
    half = result["at_0.5"]
    log.info("AUC %.4f; at P(Ia) >= 0.5 purity %.3f, completeness %.3f; report: %s",
             result["auc"], half["purity"], half["completeness"], args.output / "report.md")
    return 0


def cmd_baseline(args) -> int:
    from snia.baseline import run_baseline

    result = run_baseline(args.train, args.test, args.output, n_iter=args.n_iter, seed=args.seed)
    half = result["at_0.5"]
    log.info("random forest: AUC %.4f; at P(Ia) >= 0.5 purity %.3f, completeness %.3f (%s)",
             result["auc"], half["purity"], half["completeness"], args.output / "metrics.json")
    return 0


def cmd_classify(args) -> int:
    from snia.inference import classify

    done = classify(args.checkpoint, args.inputs, args.output, fmt=args.format,
                    metadata=args.metadata, survey=args.survey,
                    allow_other_bands=args.allow_other_bands, prior=args.ia_prior)
    log.info("wrote P(Ia) of %d objects to %s: %s", done["objects"], args.output,
             done["calibration"])
    return 0


def cmd_scaling(args) -> int:
    from snia.scaling import measure, summarize

    if args.scaling_command == "summarize":
        rows = summarize(args.rows, args.output, plot=args.plot)
        for row in rows:
            log.info("%s %d rank(s): %.1f samples/s, efficiency %.2f", row["mode"],
                     row["world_size"], row["samples_per_s"], row["efficiency"])
        return 0
    from snia.parallel import dist_from_env
    from snia.train import settings_from_file

    dist = dist_from_env()
    _setup_logging(args.verbose, dist.rank, dist.world)
    measure(args.store, args.output, args.mode, args.steps, args.batch_size, warmup=args.warmup,
            train_settings=settings_from_file(args.config))
    return 0


def cmd_report(args) -> int:
    from snia.report import write_report

    path = write_report(args.output, args.cnn, baseline_dir=args.baseline, history=args.history,
                        ensemble_dir=args.ensemble, store=args.store, train_store=args.train_store,
                        config=args.config, target=args.target, n_resamples=args.resamples)
    log.info("report: %s (and %s)", path, path.with_suffix(".html"))
    print(f"report: {path.resolve()}")
    return 0


def cmd_profile(args) -> int:
    import shutil

    target = Path.home() / ".config" / "snakemake" / args.name
    if not (args.source / "config.yaml").is_file():
        raise FileNotFoundError(f"{args.source}/config.yaml: not a Snakemake profile folder")
    if target.exists():
        if not args.force:
            log.error("%s exists; use --force to replace it", target)
            return EXIT_FAILED
        shutil.rmtree(target)
    shutil.copytree(args.source, target)
    print(f"installed {args.source} as {target}: use 'snakemake --profile {args.name}'")
    return 0


COMMANDS = {"data": cmd_data, "ingest": cmd_ingest, "store": cmd_store,
            "rasterize": cmd_rasterize, "train": cmd_train, "evaluate": cmd_evaluate,
            "baseline": cmd_baseline, "classify": cmd_classify, "scaling": cmd_scaling,
            "report": cmd_report, "profile": cmd_profile}

if __name__ == "__main__":
    sys.exit(main())
