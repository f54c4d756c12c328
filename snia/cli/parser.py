"""The ``snia`` command line: one subcommand per pipeline stage.

  snia data fetch plasticc DIR           the benchmark data (PLAsTiCC + SPCC) from PyPI
  snia ingest --format F FILES -o STORE  raw survey files -> HDF5 store (mpiexec/srun for ranks)
  snia store info STORE                  what is in a store
  snia store verify STORE                check a store's invariants and its inputs' checksums
  snia store redshifts STORE             its photo-z quantiles (redshift moves toward a survey)
  snia rasterize STORE -o IMAGES.h5      light curves -> images (bands or heatmap kind)
  snia gp fit STORE                      a Gaussian process per light curve (STORE.gp.h5)
  snia train STORE -o RUN_DIR            the CNN, data-parallel under torchrun, srun or mpiexec
  snia evaluate STORE --checkpoint CKPT  predictions, metrics.json, plots, report
  snia baseline --train S --test S       the random forest on GP light-curve features
  snia report --cnn DIR --baseline DIR   both side by side
  snia classify INPUT [--checkpoint CKPT]  P(Ia) for new data (default: the packaged model)
  snia calibrate STORE --checkpoint CKPT  refit P(Ia)'s calibration on a survey's labelled objects
  snia scaling run|summarize             training throughput against ranks
  snia compare RUN_DIR... --store STORE  architectures side by side: size, speed, quality
  snia profile install cluster/slurm     make 'snakemake --profile slurm' work
  snia model info|package                the model that ships with snia
"""

from __future__ import annotations

import argparse
from pathlib import Path

from snia.cli.model import add_model_parser
from snia.cli.profile import add_profile_parser


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
    v.add_argument("--no-progress", action="store_true", help="no progress bar (log lines instead)")
    r = ssub.add_parser("redshifts", help="photo-z quantiles of the extragalactic objects, as "
                                          "training settings (augment.redshift_quantiles)")
    r.add_argument("store", type=Path)
    r.add_argument("--quantiles", type=int, default=21, help="how many (default 21: every 5 %%)")
    r.add_argument("-o", "--output", type=Path, help="YAML file to write (default: print)")


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


def _add_gp(sub) -> None:
    p = sub.add_parser("gp", help="Gaussian-process fits of a store's light curves",
                       description="Fit each light curve of a store with a GP in time x wavelength "
                                   "(2-D Matern-3/2, batched torch) and keep the fits beside it.")
    gp = p.add_subparsers(dest="gp_command", required=True)
    fit = gp.add_parser("fit", help="fit every object; write STORE.gp.h5 (or -o)")
    fit.add_argument("store", type=Path)
    fit.add_argument("-o", "--output", type=Path, help="default: the store's name with .gp.h5")
    fit.add_argument("--device", default="auto", help="auto (cuda when there is one), cpu, cuda")
    fit.add_argument("--chunk", type=int, default=4096, help="objects read at a time (memory bound)")
    fit.add_argument("--no-progress", action="store_true")


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
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or log lines)")
    _add_allow_other_bands(p)
    _add_ia_prior(p)


def _add_allow_other_bands(p) -> None:
    p.add_argument("--allow-other-bands", action="store_true",
                   help="run a model on data with bands it was not trained on, with a warning "
                        "(default: refuse, naming both). A heatmap model places observations by "
                        "wavelength, yet a band it never saw still counts: its light falls where "
                        "the model never learnt any. Data lacking some of the model's bands run.")


def ia_share(text: str):
    """--ia-prior's value: a share in (0, 1), or 'estimate'."""
    if text == "estimate":
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1) or 'estimate', not {text!r}")
    return value


def _add_ia_prior(p) -> None:
    p.add_argument("--ia-prior", type=ia_share, metavar="Q",
                   help="the share of SNe Ia in the data: calibrated P(Ia) is moved to it from "
                        "the validation split's; 'estimate': to the share the EM of Saerens et al. "
                        "(2002) finds in the data (no label read; far off under shift: docs/results.md)")


def _add_baseline(sub) -> None:
    p = sub.add_parser("baseline", help="random forest on features of each light curve's GP (the baseline)")
    p.add_argument("--train", type=Path, required=True, help="training store")
    p.add_argument("--test", type=Path, required=True, help="test store")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--n-iter", type=int, help="random candidates for the successive-halving search "
                   "(default: snia.baseline.run_baseline's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--survey", type=Path, help="a store of the survey's light curves: the chosen forest is "
                   "fitted on the training objects and --copies re-observations of each through its "
                   "schedules (needs the training store's GP fits, 'snia gp fit')")
    p.add_argument("--copies", type=int,
                   help="re-observations of each training object (with --survey; default: "
                        "snia.baseline.run_baseline's)")
    p.add_argument("--features", choices=["gp", "light-curve"], help="default: snia.baseline.run_baseline's")


def _add_classify(sub) -> None:
    from snia.readers import FORMATS

    p = sub.add_parser("classify", help="P(Ia) for new data (a store or raw survey files)")
    p.add_argument("inputs", nargs="+", type=Path, help="a store, or raw files of --format")
    p.add_argument("--checkpoint", type=Path, nargs="+", help="a model, or several (an ensemble); "
                   "default: the model that ships with snia ('snia model info')")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="CSV: object_id,p_ia,true_type (lsst-alert adds last_mjd,"
                        "days_since_first_detection,n_obs)")
    p.add_argument("--format", choices=FORMATS, help="format of raw inputs")
    p.add_argument("--metadata", nargs="+", type=Path, default=[])
    p.add_argument("--survey")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines instead)")
    _add_allow_other_bands(p)
    _add_ia_prior(p)


def _add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="copies of models with P(Ia)'s calibration refitted on a "
                                         "survey's labelled objects (e.g. its spectroscopic sample)")
    p.add_argument("store", type=Path, help="a store of labelled objects of the target survey")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="a model, or an ensemble's members (each refitted on its own scores)")
    p.add_argument("--half", choices=["development", "report"],
                   help="fit on this half of the store only (the other stays out of sample)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="folder for the copies: OUTPUT/<run folder>/<checkpoint file>")


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


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="trained architectures side by side: parameters, FLOPs, "
                                       "training and inference speed, quality (CSV + plot)")
    p.add_argument("runs", nargs="+", type=Path,
                   help="training folders (best.pt, history.csv), each with its evaluation on "
                        "STORE in evaluate/ (metrics.json); a row is named after its folder")
    p.add_argument("--store", type=Path, required=True,
                   help="the evaluated store: inference speed is measured on it")
    p.add_argument("-o", "--output", type=Path, required=True, help="CSV to write")
    p.add_argument("--plot", type=Path, help="PNG of AUC against inference speed")


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
    p.add_argument("--compare", type=Path,
                   help="compare.csv of 'snia compare' (its plot beside it): the architectures' table")
    p.add_argument("--target", help="the workflow target that asked for the report (provenance)")
    p.add_argument("--resamples", type=int, default=1000,
                   help="bootstrap resamples for the 68 %% intervals and bands (default 1000)")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; its description (``snia --help``) is this module's docstring."""
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
    _add_gp(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_baseline(sub)
    _add_classify(sub)
    _add_calibrate(sub)
    _add_scaling(sub)
    _add_compare(sub)
    _add_report(sub)
    add_profile_parser(sub)
    add_model_parser(sub)
    return parser
