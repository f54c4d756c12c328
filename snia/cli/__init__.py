"""The ``snia`` command line (the commands: ``snia --help``, built by ``snia.cli.parser``).

Wiring only: each command hands its arguments to its stage's module, which reads its own config
section and checks its own settings. Stage modules are imported inside the command functions, so
``snia --help`` stays fast and a stage's optional dependencies (torch, light-curve, mpi4py, cupy)
are needed only by the commands that use them (a missing one is explained, see OPTIONAL_MODULES).
Every snia error (bad input, bad setting or usage) is one plain line and exit code 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from snia.cli.endings import disk_is_full, stopped
from snia.cli.endings import setup_logging as _setup_logging
from snia.cli.guard import check as check_paths
from snia.cli.model import cmd_model, default_checkpoints
from snia.cli.parser import build_parser
from snia.stopping import check_lost as check_stopped
from snia.stopping import stop_on_signals

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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from snia.errors import SniaError

    _setup_logging(args.verbose)
    try:
        with stop_on_signals():  # SIGTERM, SIGINT: an exception, so what is half written goes
            default_checkpoints(args)  # classify without --checkpoint: the packaged model
            check_paths(args)  # outputs that are inputs, or cannot be written: before any work
            code = COMMANDS[args.command](args)
            check_stopped()  # a signal whose exception was lost on the way
            return code
    except KeyboardInterrupt as exc:  # one line, no traceback; the shell's 128 + signal
        return stopped(args.command, exc)
    except SniaError as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    except (OSError, RuntimeError) as exc:  # h5py raises either for a full disk
        return disk_is_full(args, exc, exit_now=argv is None, code=EXIT_FAILED)
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
    if args.store_command == "redshifts":
        import yaml

        from snia.files import write_text_atomic
        from snia.store import redshift_quantiles

        text = yaml.safe_dump({"augment": {"redshift_quantiles": redshift_quantiles(
            args.store, args.quantiles)}}, default_flow_style=None)
        if args.output:
            write_text_atomic(args.output, text)
        else:
            print(text, end="")
        return 0
    failures = verify(args.store, check_inputs=not args.no_inputs, progress=not args.no_progress)
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


def cmd_gp(args) -> int:
    from snia.errors import ConfigError
    from snia.gp.file import fit_store

    if args.chunk < 1:
        raise ConfigError(f"--chunk must be >= 1, not {args.chunk}")
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    result = fit_store(args.store, args.output, device=device, chunk=args.chunk,
                       progress=not args.no_progress)
    log.info("wrote %s: %d objects fitted in %.1f s (%.0f objects/s on %s), %d failed",
             result["path"], result["objects"], result["seconds"],
             result["objects"] / max(result["seconds"], 1e-9), device, result["failed"])
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
                      allow_other_bands=args.allow_other_bands, prior=args.ia_prior,
                      progress=not args.no_progress)
    half = result["at_0.5"]
    log.info("AUC %.4f; at P(Ia) >= 0.5 purity %.3f, completeness %.3f; report: %s",
             result["auc"], half["purity"], half["completeness"], args.output / "report.md")
    return 0


def cmd_baseline(args) -> int:
    from snia.baseline import run_baseline

    given = {k: v for k, v in (("n_iter", args.n_iter), ("copies", args.copies), ("kind", args.features))
             if v is not None}
    result = run_baseline(args.train, args.test, args.output, seed=args.seed, survey=args.survey,
                          **given)  # an option left out: run_baseline's default, its one source
    half = result["at_0.5"]
    log.info("random forest: AUC %.4f; at P(Ia) >= 0.5 purity %.3f, completeness %.3f (%s)",
             result["auc"], half["purity"], half["completeness"], args.output / "metrics.json")
    return 0


def cmd_classify(args) -> int:
    from snia.classify import classify

    done = classify(args.checkpoint, args.inputs, args.output, fmt=args.format,
                    metadata=args.metadata, survey=args.survey,
                    allow_other_bands=args.allow_other_bands, prior=args.ia_prior,
                    progress=not args.no_progress)
    log.info("wrote P(Ia) of %d objects to %s: %s", done["objects"], args.output,
             done["calibration"])
    return 0


def cmd_calibrate(args) -> int:
    from snia.evaluate import recalibrate

    for row in recalibrate(args.checkpoint, args.store, args.output, half=args.half):
        log.info("%s: calibration refitted on %d objects; Brier there %.4f -> %.4f",
                 row["checkpoint"], row["objects"], row["brier_before"], row["brier_after"])
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


def cmd_compare(args) -> int:
    from snia.compare import compare
    from snia.errors import ConfigError

    runs = {Path(r).name: r for r in args.runs}
    if len(runs) < len(args.runs):
        raise ConfigError(f"two training folders share a name: {[str(r) for r in args.runs]}")
    rows = compare(runs, args.store, args.output, plot=args.plot)
    for r in rows:
        log.info("%s: %d parameters, %.1f MFLOP/LC, %.0f training samples/s, %.0f LC/s, AUC %.4f",
                 r["model"], r["parameters"], r["mflop_per_lc"], r["train_samples_per_s"],
                 r["infer_lc_per_s"], r["auc"])
    return 0


def cmd_report(args) -> int:
    from snia.report import write_report

    path = write_report(args.output, args.cnn, baseline_dir=args.baseline, history=args.history,
                        ensemble_dir=args.ensemble, store=args.store, train_store=args.train_store,
                        config=args.config, target=args.target, n_resamples=args.resamples,
                        compare_csv=args.compare)
    log.info("report: %s (and %s)", path, path.with_suffix(".html"))
    print(f"report: {path.resolve()}")
    return 0


def cmd_profile(args) -> int:
    import shutil

    if args.profile_command == "check":
        from snia.cli.profile import check

        return check(args.source, args.snakemake_args or ["all", "scaling"], sbatch_test=args.test_only)

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
            "rasterize": cmd_rasterize, "gp": cmd_gp, "train": cmd_train, "evaluate": cmd_evaluate,
            "baseline": cmd_baseline, "classify": cmd_classify, "calibrate": cmd_calibrate,
            "scaling": cmd_scaling,
            "compare": cmd_compare, "report": cmd_report, "profile": cmd_profile,
            "model": cmd_model}


if __name__ == "__main__":
    sys.exit(main())
