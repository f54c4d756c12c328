"""Stage 5: the report a cosmologist can cite. Every classifier (the shipped CNN, the ensemble a
distilled CNN learnt from, the random forest) side by side on the same test objects, as Markdown
(for GitHub) and as one self-contained HTML file (images embedded: it can be mailed or attached to
a paper's supplement), with the same content:

- provenance: date, snia version and git commit, command and workflow target, the data sets (objects,
  class mix, input files), which checkpoint(s) each column is, hardware, training wall time, and the
  complete configuration (collapsed); the same in the report folder's metrics.json;
- one comparison table with bootstrap 68 % intervals (``snia.metrics``), the definitions beside it,
  and one ROC of all classifiers;
- one section per classifier, drawn here from its folder's predictions.csv (one layout for all):
  ROC and purity/completeness/FoM against the threshold with bootstrap bands, confusion at 0.5 and at
  the best-FoM threshold, P(Ia) per true type, the reliability diagram and Brier score (before and
  after calibration when predictions.csv carries ``p_ia_uncalibrated``); the forest's feature
  importance; the CNN's t-SNE;
- the mistakes: light curve and image of the CNN's most confident false positives and negatives
  (needs the evaluated store), and example images per type.

``check_in_browser`` opens the HTML in headless Chromium (Selenium) as a reader would: CI and the
tests check that every image decodes, nothing overflows 1280 px and provenance and definitions are
there, and keep a screenshot.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snia.errors import ConfigError
from snia.files import write_text_atomic
from snia.metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    FOM_WEIGHT,
    INTERVAL_PERCENTILES,
    bootstrap,
    brier_score,
    metrics,
)
from snia.plots import (
    plot_confusions,
    plot_curves,
    plot_feature_importance,
    plot_gallery,
    plot_mistakes,
    plot_probability_histograms,
    plot_reliability,
    plot_roc,
)
from snia.predictions import read_predictions
from snia.provenance import class_mix, command_line, describe_store, environment, training_summary
from snia.raster import DEFAULT_KIND, RasterSpec, spec_for_store
from snia.store import Store
from snia.taxonomy import CLASSES, INDEX

MISTAKES = 4  # false positives and false negatives shown
FPR_GRID = np.linspace(0.0, 1.0, 201)  # where the ROC band is evaluated
THRESHOLD_GRID = np.linspace(0.0, 1.0, 201)  # where the purity/completeness bands are
SCREENSHOT = "report_1280.png"

ROWS = [  # (label, path into metrics.json, format); intervals from metrics.json's "intervals"
    ("objects (Ia)", None, None),
    ("AUC", ("auc",), "{:.3f}"),
    ("purity at P(Ia) >= 0.5", ("at_0.5", "purity"), "{:.3f}"),
    ("completeness at P(Ia) >= 0.5", ("at_0.5", "completeness"), "{:.3f}"),
    ("FoM at P(Ia) >= 0.5", ("at_0.5", "fom"), "{:.3f}"),
    ("accuracy at P(Ia) >= 0.5", ("at_0.5", "accuracy"), "{:.3f}"),
    ("best-FoM threshold", ("at_best_fom", "threshold"), "{:.3f}"),
    ("purity at best FoM", ("at_best_fom", "purity"), "{:.3f}"),
    ("completeness at best FoM", ("at_best_fom", "completeness"), "{:.3f}"),
    (f"FoM (W = {FOM_WEIGHT:g}) at best FoM", ("at_best_fom", "fom"), "{:.3f}"),
    ("purity at 90 % completeness", ("purity_at_90pc_completeness",), "{:.3f}"),
    ("purity at 95 % completeness", ("purity_at_95pc_completeness",), "{:.3f}"),
    ("Brier score", ("brier",), "{:.4f}"),
    ("Brier score before calibration", ("brier_uncalibrated",), "{:.4f}"),
    ("weighted log-loss (multi-class)", ("weighted_log_loss",), "{:.4f}"),
    ("cross-validated AUC (training set)", ("cv_auc",), "{:.3f}"),
]

DEFINITIONS = [
    ("Ia sample", "the objects called Ia: P(Ia) >= the threshold. TP, FP: Ia and non-Ia in it; "
                  "FN: Ia left out."),
    ("purity", "TP / (TP + FP): the share of the sample that is Ia."),
    ("completeness", "TP / (TP + FN) (efficiency): the share of all Ia that are in the sample."),
    ("FoM", f"the SPCC figure of merit, completeness x TP / (TP + W FP) with W = {FOM_WEIGHT:g} "
            "(Kessler et al. 2010): a false positive costs W true ones."),
    ("AUC", "area under the ROC curve (true against false positive rate over all thresholds): "
            "the chance that a random Ia gets a higher P(Ia) than a random non-Ia."),
    ("thresholds", "0.5, and the threshold that maximises the FoM on these test objects (chosen on "
                   "the data it is scored on, so its FoM is slightly optimistic)."),
    ("intervals", "[a, b]: the 16th and 84th percentiles (a 68 % interval) over bootstrap "
                  "resamples of the test objects (seeded). At the best-FoM threshold the threshold "
                  "stays fixed; the threshold's own interval is re-optimised per resample."),
    ("Brier score", "mean of (P(Ia) - 1 for Ia, 0 otherwise)^2; 0 is perfect, 0.25 is P(Ia) = 0.5 "
                    "for every object."),
    ("reliability diagram", "the fraction of Ia against the mean P(Ia) in bins of P(Ia): on the "
                            "diagonal, P(Ia) is a probability for this data set's class mix."),
]

CSS = """
body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1a1a1a;max-width:1000px;
margin:0 auto;padding:0 24px 48px;overflow-wrap:break-word}
h1{font-size:1.7em;margin:.8em 0 .2em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;max-width:100%}table.numbers{min-width:70%}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #b8b8b8;padding:3px 9px;vertical-align:top}
thead th{background:#eef1f5;text-align:center}
tbody th{text-align:left;font-weight:normal;background:#f8f9fa}
td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.text td{text-align:left;white-space:normal;overflow-wrap:anywhere}
figure{margin:1.2em 0}figure img{display:block;width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.92em;color:#444;margin-top:.3em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.6em;font-size:.85em}
code{overflow-wrap:anywhere}nav{font-size:.95em}div.wide{overflow-x:auto}
"""

SCREEN_JS = """
const images = Array.from(document.images);
const text = id => (document.getElementById(id) || {innerText: ''}).innerText;
return {images: images.length,
        broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
        external: images.filter(i => !i.src.startsWith('data:')).map(i => i.src),
        scroll_width: document.documentElement.scrollWidth,
        inner_width: window.innerWidth,
        provenance: text('provenance'), definitions: text('definitions'),
        height: document.documentElement.scrollHeight};
"""


# ------------------------------------------------------------------------------- the document


@dataclass
class Para:
    text: str


@dataclass
class Figure:
    path: Path  # a PNG
    caption: str


@dataclass
class Table:
    caption: str
    header: list
    rows: list  # [label, cell, ...]
    kind: str = "numbers"  # numbers: right-aligned cells; text: left-aligned, wrapping
    id: str | None = None


@dataclass
class Definitions:
    items: list
    id: str = "definitions"


@dataclass
class Details:
    summary: str
    text: str
    language: str = "yaml"


@dataclass
class Section:
    title: str
    id: str
    blocks: list = field(default_factory=list)


# ------------------------------------------------------------------------------- the classifiers


@dataclass
class Column:
    """One classifier: its folder's metrics.json and predictions.csv."""

    label: str
    folder: Path
    metrics: dict
    object_id: np.ndarray
    p_ia: np.ndarray
    types: np.ndarray
    p_uncalibrated: np.ndarray | None = None

    @property
    def labelled(self) -> np.ndarray:
        return self.types != INDEX["unknown"]

    @property
    def y(self) -> np.ndarray:
        return (self.types[self.labelled] == INDEX["Ia"]).astype(int)

    @property
    def p(self) -> np.ndarray:
        return self.p_ia[self.labelled]

    @property
    def best_threshold(self) -> float | None:
        return self.metrics.get("at_best_fom", {}).get("threshold")

    @property
    def provenance(self) -> dict:
        return self.metrics.get("provenance") or {}


def _csv_column(path, name) -> np.ndarray | None:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if name not in (reader.fieldnames or []):
            return None
        return np.array([float(r[name]) for r in reader])


def load_column(label: str, folder, n_resamples: int, seed: int) -> Column:
    """A classifier's folder (written by ``snia evaluate`` or ``snia baseline``). Its binary
    metrics and their intervals are recomputed from predictions.csv, so that the table and the
    figures (drawn from it) agree to the object: metrics.json's were computed before P(Ia) was
    rounded to 6 decimals there, which can move an object across a threshold. What only
    metrics.json has (the multi-class log-loss, the forest's search, the provenance) is kept;
    the Brier score before calibration is added when predictions.csv has ``p_ia_uncalibrated``."""
    folder = Path(folder)
    recorded = json.loads((folder / "metrics.json").read_text())
    table = read_predictions(folder / "predictions.csv")
    column = Column(label, folder, recorded, table["object_id"], table["p_ia"], table["type"],
                    _csv_column(folder / "predictions.csv", "p_ia_uncalibrated"))
    computed = metrics(column.y, column.p, n_resamples, seed)
    column.metrics = {**computed, **{k: v for k, v in recorded.items() if k not in computed}}
    if column.p_uncalibrated is not None:
        column.metrics["brier_uncalibrated"] = brier_score(column.y,
                                                           column.p_uncalibrated[column.labelled])
    return column


def _lookup(result: dict, path):
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def _cell(result: dict, path, fmt) -> str:
    if path is None:
        return f"{result['n']:,} ({result['n_ia']:,})"
    value = _lookup(result, path)
    if value is None:
        return "-"
    text = fmt.format(value)
    interval = _lookup(result.get("intervals", {}), path)
    if isinstance(interval, list) and len(interval) == 2 and all(np.isfinite(interval)):
        text += " [" + ", ".join(fmt.format(v) for v in interval) + "]"
    return text


def comparison_table(columns: list[Column]) -> Table:
    rows = [[label, *(_cell(c.metrics, path, fmt) for c in columns)] for label, path, fmt in ROWS]
    rows = [row for row in rows if any(v != "-" for v in row[1:])]
    first = next((c.metrics.get("intervals") for c in columns if c.metrics.get("intervals")), {})
    note = (f"; [a, b]: 68 % bootstrap interval ({first.get('resamples', 0):,} resamples)"
            if first else "")
    return Table(f"Table 1. The classifiers on the same test objects (Ia vs rest){note}.",
                 ["", *(c.label for c in columns)], rows, id="comparison")


# ------------------------------------------------------------------------------- provenance


def _mix_text(mix: dict) -> str:
    total = sum(mix.values()) or 1
    return ", ".join(f"{name} {n:,} ({100 * n / total:.1f} %)" for name, n in mix.items())


def _dataset_text(d: dict) -> str:
    text = f"{d.get('name', d.get('path'))}: {d['objects']:,} objects; {_mix_text(d['class_mix'])}"
    if d.get("inputs"):
        files = ", ".join(f"{i['file']} (sha256 {str(i.get('sha256'))[:12]})" for i in d["inputs"])
        text += f"; ingested from {files}"
    return text


def _checkpoint_text(c: dict) -> str:
    text = f"{c['run']}/{Path(c['path']).name} (sha256 {c['sha256'][:12]}, epoch {c.get('epoch')}"
    text += f", seed {c.get('seed')}, {c.get('task')}, {c.get('kind')} images"
    if c.get("distilled_from"):
        text += (f"; distilled from {', '.join(c['distilled_from'])} with weight "
                 f"{c.get('distill_weight')}")
    if c.get("calibration"):
        calibration = c["calibration"]
        text += "; calibrated: " + (", ".join(f"{k} {v}" for k, v in calibration.items())
                                    if isinstance(calibration, dict) else str(calibration))
    return text + ")"


def _column_text(c: Column) -> str:
    prov = c.provenance
    if prov.get("checkpoints"):
        parts = [_checkpoint_text(k) for k in prov["checkpoints"]]
        head = "mean P(Ia) of " if len(parts) > 1 else ""
        return head + "; ".join(parts)
    if "best_params" in c.metrics:
        params = ", ".join(f"{k} = {v}" for k, v in sorted(c.metrics["best_params"].items()))
        text = f"random forest ({c.folder.name}/random_forest.joblib): {params}"
        search = _lookup(prov, ("model", "search"))
        if search:
            text += (f"; chosen by a {search['cv']}-fold cross-validated search of "
                     f"{search['n_iter']} candidates on {search['scoring']} (seed {search['seed']})")
        return text
    return f"{c.folder} (its metrics.json records no provenance)"


def _hardware_text(h: dict | None) -> str:
    """``provenance.hardware()``'s dict in words; any other dict (a checkpoint's own record of
    its training hardware, say) as its key: value pairs."""
    if not h:
        return "not recorded"
    if not isinstance(h, dict):
        return str(h)
    if "cpu" in h and "cores" in h:
        gpus = ", ".join(h.get("gpus") or []) or "no GPU"
        rest = {k: v for k, v in h.items() if k not in ("cpu", "cores", "gpus", "system")}
        return f"{h['cpu']} ({h['cores']} cores), {gpus}" + "".join(f", {k}: {v}"
                                                                    for k, v in rest.items())
    return ", ".join(f"{k}: {v}" for k, v in h.items())


def _training_runs(columns: list[Column], history) -> list[dict]:
    """Training runs: from the history files given, then those recorded beside the evaluated
    checkpoints; each with its role (which column it is)."""
    roles: dict = {}
    hardware: dict = {}
    for c in columns:
        checkpoints = c.provenance.get("checkpoints") or []
        for k in checkpoints:
            if c.label == "CNN" and k.get("distilled_from"):
                teachers = ", ".join(Path(t).parent.name for t in k["distilled_from"])
                role = f"CNN (distilled from {teachers})"
            elif len(checkpoints) > 1:
                role = f"member of the {c.label}"
            else:
                role = c.label
            roles.setdefault(k["run"], role)
            hardware.setdefault(k["run"], k.get("hardware"))
    runs = {}
    for h in history or []:
        summary = training_summary(h)
        if summary:
            runs[summary["run"]] = summary
    for c in columns:
        for k in c.provenance.get("checkpoints") or []:
            if k.get("training") and k["run"] not in runs:
                runs[k["run"]] = k["training"]
    return [{**r, "role": roles.get(name, "-"), "hardware": hardware.get(name)}
            for name, r in runs.items()]


def _config_ranks(config: dict | None) -> str | None:
    ranks = _lookup(config or {}, ("train", "ranks"))
    return None if ranks is None else f"{ranks} data-parallel rank(s) per run (train.ranks)"


def provenance_section(columns, runs, env, datasets, config_text, config_path,
                       target) -> tuple[Section, dict]:
    """The provenance section and its machine-readable twin (the report's metrics.json)."""
    import yaml

    config = yaml.safe_load(config_text) if config_text else None
    rows = [["generated", env["date"]],
            ["snia", f"version {env['snia_version']}, git commit {env['git_commit']}"],
            ["command", env["command"]]]
    if target:
        rows.append(["workflow target", target])
    for role, d in datasets.items():
        rows.append([f"data ({role})", _dataset_text(d)])
    for c in columns:
        rows.append([f"column '{c.label}'", _column_text(c)])
    rows.append(["hardware (this report)", _hardware_text(env["hardware"])])
    for c in columns:
        if c.provenance.get("hardware"):
            what = "training and evaluation" if "best_params" in c.metrics else "evaluation"
            rows.append([f"hardware ({what}, {c.label})", _hardware_text(c.provenance["hardware"])
                         + f"; run {c.provenance.get('date', 'at an unrecorded date')}"])
    recorded = {r["run"]: r["hardware"] for r in runs if r.get("hardware")}
    ranks = _config_ranks(config)
    if runs:
        text = "; ".join(f"{run}: {_hardware_text(h)}" for run, h in recorded.items()) or \
            "device not recorded in the checkpoints"
        rows.append(["hardware (CNN training)", text + (f"; {ranks}" if ranks else "")])
        total = sum(r["wall_s"] for r in runs)
        rows.append(["training wall time", f"{total / 60:.1f} min for {len(runs)} CNN run(s) "
                                           "(per run: section Training)"])
    for c in columns:
        wall = _lookup(c.provenance, ("model", "training", "wall_s"))
        if wall is not None:
            rows.append([f"training wall time ({c.label})",
                         f"{wall / 60:.1f} min (features, search and refit)"])
    section = Section("Provenance", "provenance",
                      [Table("Where these numbers come from.", ["", ""], rows, kind="text")])
    if config_text:
        section.blocks.append(Details(f"configuration ({Path(config_path).name}, complete)",
                                      config_text))
    else:
        section.blocks.append(Para("configuration: none given (snia report --config)."))
    record = {**env, "target": target, "config_file": str(config_path) if config_path else None,
              "config": config, "datasets": datasets,
              "columns": {c.label: {"folder": str(c.folder), "description": _column_text(c),
                                    "provenance": c.provenance} for c in columns},
              "training_runs": runs}
    return section, record


# ------------------------------------------------------------------------------- the sections


def _bands(column: Column, n_resamples: int, seed: int):
    """The bootstrap bands (16th-84th percentiles) of the ROC and of purity/completeness/FoM."""
    draws = bootstrap(column.y, column.p, n_resamples, seed, thresholds=(), fpr_grid=FPR_GRID,
                      threshold_grid=THRESHOLD_GRID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # grid points no resample reaches: NaN
        roc = np.nanpercentile(draws["roc_tpr"], INTERVAL_PERCENTILES, axis=0)
        curves = {k: tuple(np.nanpercentile(v, INTERVAL_PERCENTILES, axis=0))
                  for k, v in draws["curves"].items()}
    return (FPR_GRID, roc[0], roc[1]), (THRESHOLD_GRID, curves)


def _marks(column: Column) -> list:
    marks = [(0.5, "P(Ia) >= 0.5")]
    if column.best_threshold is not None:
        marks.append((column.best_threshold, f"best FoM: P(Ia) >= {column.best_threshold:.3f}"))
    return marks


def classifier_section(column: Column, figures: Path, n_resamples: int, seed: int,
                       key: str) -> Section:
    y, p, types = column.y, column.p, column.types[column.labelled]
    section = Section(column.label, f"classifier-{key}")
    m = column.metrics
    section.blocks.append(Para(
        f"{m['n']:,} labelled objects ({m['n_ia']:,} Ia). AUC {_cell(m, ('auc',), '{:.3f}')}; at "
        f"P(Ia) >= 0.5 purity {_cell(m, ('at_0.5', 'purity'), '{:.3f}')}, completeness "
        f"{_cell(m, ('at_0.5', 'completeness'), '{:.3f}')}."))
    if not (0 < y.sum() < len(y)):
        section.blocks.append(Para("Only one class among the labelled objects: no curves."))
        return section
    roc_band, pc_band = _bands(column, n_resamples, seed)
    marks = _marks(column)
    path = figures / f"{key}_curves.png"
    plot_curves(y, p, path, column.label, roc_band, pc_band, marks)
    section.blocks.append(Figure(path, f"{column.label}: ROC (left; the markers are the two "
                                       "thresholds) and purity, completeness and FoM against the "
                                       "P(Ia) threshold (right); shaded: 68 % bootstrap bands."))
    path = figures / f"{key}_confusion.png"
    plot_confusions(y, p, path, [(t, f"called Ia at {text}") for t, text in marks])
    section.blocks.append(Figure(path, f"{column.label}: confusion matrices at P(Ia) >= 0.5 and at "
                                       "the best-FoM threshold; each cell: objects and their share "
                                       "of the true class (row)."))
    path = figures / f"{key}_p_ia_by_type.png"
    plot_probability_histograms(p, types, path, marks)
    section.blocks.append(Figure(path, f"{column.label}: P(Ia) per true type (objects in "
                                       "brackets)."))
    path = figures / f"{key}_reliability.png"
    if column.p_uncalibrated is not None:
        before = column.p_uncalibrated[column.labelled]
        plot_reliability({"before calibration": (y, before), "calibrated": (y, p)}, path)
        text = (f"P(Ia) is calibrated (a calibration fitted on held-out data, carried by the "
                f"model): Brier score {brier_score(y, before):.4f} before, {brier_score(y, p):.4f} "
                "after.")
    else:
        plot_reliability({column.label: (y, p)}, path)
        text = (f"No calibration was fitted for this classifier: P(Ia) as it comes (Brier score "
                f"{brier_score(y, p):.4f}); the diagram shows how far it is from the fraction of "
                "Ia in this data set.")
    section.blocks.append(Para(text))
    section.blocks.append(Figure(path, f"{column.label}: reliability diagram (binomial error "
                                       "bars) and objects per bin."))
    importance = column.folder / "feature_importance.txt"
    if importance.exists():
        values = []
        for line in importance.read_text().splitlines():
            if line.strip():
                value, name = line.split(maxsplit=1)
                values.append((float(value), name))
        path = figures / f"{key}_feature_importance.png"
        plot_feature_importance(values, path)
        section.blocks.append(Figure(path, f"{column.label}: feature importance (the 20 largest; "
                                           "all of them in feature_importance.txt)."))
    if (column.folder / "tsne.png").exists():
        section.blocks.append(Figure(column.folder / "tsne.png",
                                     f"{column.label}: t-SNE of the penultimate-layer embeddings, "
                                     "coloured by true type."))
    return section


def _spec_of(column: Column, store) -> tuple[RasterSpec, str]:
    values = column.provenance.get("image_spec")
    if values:
        values = dict(values, bands=tuple(values["bands"]), wavelengths=tuple(values["wavelengths"]))
        return RasterSpec(**values), "the model's image geometry"
    return spec_for_store(store, DEFAULT_KIND), "the default image geometry (not recorded)"


def check_store(column: Column, store_path) -> None:
    """The store must hold the objects the classifier was evaluated on (checked before any work)."""
    with Store(store_path) as store:
        missing = np.setdiff1d(column.object_id, store.objects["object_id"])
    if missing.size:
        raise ConfigError(f"--store {store_path} does not hold the evaluated objects (object "
                          f"{int(missing[0])} and {missing.size - 1} more): pass the store the "
                          "classifiers were evaluated on")


def mistakes_section(columns: list[Column], store_path, figures: Path) -> tuple[Section, dict]:
    """The first column's most confident false positives and false negatives at P(Ia) >= 0.5,
    drawn from the store, with the other classifiers' P(Ia) for the same objects; and their ids
    (kind -> [object id, ...], most confident first)."""
    column = columns[0]
    section = Section(f"Mistakes of the {column.label}", "mistakes")
    ids, y, p = column.object_id[column.labelled], column.y, column.p
    types = column.types[column.labelled]
    with Store(store_path) as store:
        spec, where = _spec_of(column, store)
    others = [(c, dict(zip(c.object_id.tolist(), c.p_ia.tolist()))) for c in columns[1:]]
    section.blocks.append(Para(
        f"The {MISTAKES} non-Ia with the highest P(Ia) (false positives) and the {MISTAKES} Ia with "
        f"the lowest (false negatives) at P(Ia) >= 0.5; left: the light curve (flux and error per "
        f"band, in days from the image's reference time; the grey band is the image's window), "
        f"right: the image the CNN sees ({where}), on its own colour scale."))
    shown = {}
    for kind, pick in (("false positives", np.flatnonzero((y == 0) & (p >= 0.5))),
                       ("false negatives", np.flatnonzero((y == 1) & (p < 0.5)))):
        order = pick[np.argsort(-p[pick] if kind == "false positives" else p[pick],
                                kind="stable")][:MISTAKES]
        shown[kind.replace(" ", "_")] = [int(ids[i]) for i in order]
        if not order.size:
            section.blocks.append(Para(f"No {kind} at P(Ia) >= 0.5."))
            continue
        objects = []
        for i in order:
            oid = int(ids[i])
            other = ", ".join(f"{c.label} {lookup[oid]:.2f}" for c, lookup in others if oid in lookup)
            objects.append((oid, f"object {oid}, true type {CLASSES[int(types[i])]}, "
                                 f"P(Ia) {p[i]:.3f}" + (f" ({other})" if other else "")))
        path = figures / f"mistakes_{kind.replace(' ', '_')}.png"
        plot_mistakes(store_path, objects, spec, path,
                      f"{column.label}: the most confident {kind}")
        section.blocks.append(Figure(path, f"{column.label}: the {len(objects)} most confident "
                                           f"{kind}, objects {', '.join(str(o) for o, _ in objects)} "
                                           "(P(Ia) of the other classifiers in brackets)."))
    return section, shown


def training_section(runs: list[dict], columns: list[Column]) -> Section | None:
    rows = [[r["run"], r["role"], str(r["epochs"]), f"{r['wall_s'] / 60:.1f}",
             f"{r['samples_per_s']:.0f}", f"{r['best_val_auc']:.4f}"] for r in runs]
    blocks = []
    if rows:
        rows.append(["all", "", str(sum(r["epochs"] for r in runs)),
                     f"{sum(r['wall_s'] for r in runs) / 60:.1f}", "", ""])
        blocks.append(Table("Table 2. The CNN training runs (history.csv of each): wall time and "
                            "median throughput over epochs; the best validation AUC is on each "
                            "run's validation split.",
                            ["run", "role", "epochs", "wall time (min)", "samples/s",
                             "best validation AUC"], rows))
    for c in columns:
        wall = _lookup(c.provenance, ("model", "training", "wall_s"))
        if wall is not None:
            blocks.append(Para(f"{c.label}: {wall / 60:.1f} min for the training set's features, "
                               f"the cross-validated search and the refit "
                               f"({_lookup(c.provenance, ('model', 'training', 'objects')):,} "
                               "training objects)."))
    return Section("Training", "training", blocks) if blocks else None


# ------------------------------------------------------------------------------- the report


def write_report(out_dir, cnn_dir, baseline_dir=None, history=None, ensemble_dir=None, *,
                 store=None, train_store=None, config=None, target=None, command=None,
                 n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Path:
    """report.md, report.html (self-contained), metrics.json and figures/ in ``out_dir``; returns
    the Markdown path. ``ensemble_dir``: the evaluation of the ensemble a distilled CNN learnt
    from; ``store``: the evaluated store (for the mistakes and example images);
    ``train_store``: the CNN's training store (its counts and class mix); ``config``: the
    workflow's configuration file (shown complete); ``target``: the workflow target."""
    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    folders = {"CNN": Path(cnn_dir)}
    if ensemble_dir is not None:
        folders["CNN ensemble"] = Path(ensemble_dir)
    if baseline_dir is not None:
        folders["random forest"] = Path(baseline_dir)
    columns = [load_column(label, folder, n_resamples, seed) for label, folder in folders.items()]
    if store is not None:
        check_store(columns[0], store)
    if isinstance(history, (str, Path)):
        history = [history]

    env = environment(command if command is not None else command_line())
    datasets = {}
    if store is not None:
        datasets["test"] = describe_store(store)
    elif columns[0].provenance.get("store"):
        datasets["test"] = columns[0].provenance["store"]
    else:
        datasets["test"] = {"name": "predictions.csv of the CNN", "objects": len(columns[0].types),
                            "class_mix": class_mix(columns[0].types)}
    if train_store is not None:
        datasets["CNN training"] = describe_store(train_store)
    for c in columns:
        if c.provenance.get("train_store"):
            datasets[f"{c.label} training"] = c.provenance["train_store"]
    config_text = Path(config).read_text() if config is not None else None
    runs = _training_runs(columns, history)
    prov_section, record = provenance_section(columns, runs, env, datasets, config_text, config,
                                              target)

    comparison = Section("The classifiers side by side", "comparison",
                         [comparison_table(columns), Definitions(DEFINITIONS)])
    if len(columns) > 1 and _roc_all(columns, figures / "roc_all.png", n_resamples, seed):
        path = figures / "roc_all.png"
        comparison.blocks.append(Figure(path, "ROC of every classifier on the labelled objects "
                                              "they all scored; shaded: 68 % bootstrap bands."))
    sections = [prov_section, comparison]
    sections += [classifier_section(c, figures, n_resamples, seed, key)
                 for c, key in zip(columns, ("cnn", "ensemble", "forest"))]
    if store is not None:
        section, record["mistakes"] = mistakes_section(columns, store, figures)
        sections.append(section)
    gallery = columns[0].folder / "gallery.png"
    if not gallery.exists() and store is not None:
        gallery = figures / "gallery.png"
        with Store(store) as s:
            spec, _ = _spec_of(columns[0], s)
        plot_gallery(store, spec, gallery, backend="numpy")
    if gallery.exists():
        sections.append(Section("Example images", "gallery",
                                [Figure(gallery, "Example images per true type, as the CNN sees "
                                                 "them (flux channel).")]))
    training = training_section(runs, columns)
    if training is not None:
        sections.append(training)

    title = "snia: SN Ia classification report"
    write_text_atomic(out / "report.md", _markdown(title, sections, out))
    write_text_atomic(out / "report.html", _html(title, sections))
    write_text_atomic(out / "metrics.json", json.dumps(
        {"provenance": record, "classifiers": {c.label: c.metrics for c in columns}},
        indent=2, default=str))
    return out / "report.md"


def _roc_all(columns: list[Column], path: Path, n_resamples: int, seed: int) -> bool:
    """ROC of every classifier over the labelled objects all of them scored (matched by id);
    False (nothing drawn) when they share none or those are all of one class."""
    common = None
    for c in columns:
        ids = c.object_id[c.labelled]
        common = ids if common is None else np.intersect1d(common, ids)
    first = columns[0]
    truth = first.types[np.isin(first.object_id, common)] == INDEX["Ia"]
    if not (0 < truth.sum() < len(truth)):
        return False
    curves, bands = {}, {}
    for c in columns:
        order = np.argsort(c.object_id)
        rows = order[np.searchsorted(c.object_id, common, sorter=order)]
        y, p = (c.types[rows] == INDEX["Ia"]).astype(int), c.p_ia[rows]
        curves[c.label] = (y, p)
        if 0 < y.sum() < len(y):
            sub = Column(c.label, c.folder, c.metrics, c.object_id[rows], p, c.types[rows])
            bands[c.label] = _bands(sub, n_resamples, seed)[0]
    plot_roc(curves, path, title=f"Ia vs rest, {len(common):,} objects", bands=bands)
    return True


# ------------------------------------------------------------------------------- rendering


def _markdown(title: str, sections: list[Section], out: Path) -> str:
    lines = [f"# {title}", "", " · ".join(f"[{s.title}](#{s.id})" for s in sections), ""]
    number = 0
    for s in sections:
        lines += [f'<a id="{s.id}"></a>', "", f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Para):
                lines += [b.text, ""]
            elif isinstance(b, Figure):
                number += 1
                rel = os.path.relpath(b.path, out)
                lines += [f"![{b.caption}]({rel})", "", f"*Figure {number}. {b.caption}*", ""]
            elif isinstance(b, Table):
                lines += [f"**{b.caption}**", "", "| " + " | ".join(b.header) + " |",
                          "|" + "|".join([":---"] + ["---:" if b.kind == "numbers" else ":---"]
                                         * (len(b.header) - 1)) + "|"]
                lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
                          for row in b.rows]
                lines.append("")
            elif isinstance(b, Definitions):
                lines += [f'<a id="{b.id}"></a>', "", "**Definitions.**", ""]
                lines += [f"- **{term}**: {text}" for term, text in b.items]
                lines.append("")
            elif isinstance(b, Details):
                lines += ["<details>", f"<summary>{html.escape(b.summary)}</summary>", "",
                          f"```{b.language}", b.text.rstrip("\n"), "```", "", "</details>", ""]
    return "\n".join(lines)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _html(title: str, sections: list[Section]) -> str:
    esc = html.escape
    parts = ["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             "<nav>" + " · ".join(f"<a href='#{s.id}'>{esc(s.title)}</a>" for s in sections)
             + "</nav>"]
    number = 0
    for s in sections:
        parts.append(f"<section id='{s.id}'><h2>{esc(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Para):
                parts.append(f"<p>{esc(b.text)}</p>")
            elif isinstance(b, Figure):
                number += 1
                parts.append(f"<figure><img src='{_data_uri(b.path)}' alt='{esc(b.caption)}'>"
                             f"<figcaption>Figure {number}. {esc(b.caption)}</figcaption></figure>")
            elif isinstance(b, Table):
                ident = f" id='{b.id}'" if b.id else ""
                head = ("" if not any(b.header) else "<thead><tr>" + "".join(
                    f"<th scope='col'>{esc(str(h))}</th>" for h in b.header) + "</tr></thead>")
                body = "".join("<tr><th scope='row'>" + esc(str(row[0])) + "</th>"
                               + "".join(f"<td>{esc(str(v))}</td>" for v in row[1:]) + "</tr>"
                               for row in b.rows)
                # a wide table scrolls inside its box; the page never overflows
                parts.append(f"<div class='wide'><table class='{b.kind}'{ident}><caption>"
                             f"{esc(b.caption)}</caption>{head}<tbody>{body}</tbody></table></div>")
            elif isinstance(b, Definitions):
                items = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in b.items)
                parts.append(f"<div id='{b.id}'><h3>Definitions</h3><dl>{items}</dl></div>")
            elif isinstance(b, Details):
                parts.append(f"<details><summary>{esc(b.summary)}</summary>"
                             f"<pre>{esc(b.text)}</pre></details>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------- in a browser


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables of Chromium and its WebDriver, or None when either is
    missing (Debian: apt-get install chromium chromium-driver)."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def check_in_browser(html_path, screenshot=None, width: int = 1280, height: int = 900) -> dict:
    """Open a report in headless Chromium at ``width`` px, as a reader would. Returns what the
    page shows: images (count), broken (alt texts of images that did not decode), external
    (image sources that are not embedded), scroll_width (document width: > ``width`` means
    horizontal overflow), the text of the provenance and definitions blocks. ``screenshot``: a
    PNG of the whole page at that width."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise ConfigError("checking a report in a browser needs chromium and chromedriver "
                          "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--hide-scrollbars", f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(found[1]))
    try:
        driver.get(Path(html_path).resolve().as_uri())
        info = driver.execute_script(SCREEN_JS)
        if screenshot is not None:
            driver.set_window_size(width, min(int(info["height"]) + 20, 30000))
            driver.save_screenshot(str(screenshot))
            info["screenshot"] = str(screenshot)
    finally:
        driver.quit()
    return info
