"""The report's sections: provenance, one section per classifier (curves with bootstrap bands,
confusions, P(Ia) per type, calibration), the most confident mistakes and the training runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from snia.calibration import describe
from snia.compare import EARLY_DAY, markdown_table, read_csv
from snia.errors import ConfigError
from snia.evaluate import tsne_caption
from snia.gallery import plot_mistakes
from snia.metrics import (
    INTERVAL_PERCENTILES,
    bootstrap,
    brier_score,
)
from snia.plots import (
    plot_confusions,
    plot_curves,
    plot_feature_importance,
    plot_probability_histograms,
    plot_reliability,
    plot_roc,
)
from snia.provenance import inputs_text, training_summary
from snia.raster import DEFAULT_KIND, RasterSpec, spec_for_store
from snia.report.columns import Column, cell, lookup
from snia.report.document import Details, Figure, Para, Section, Table
from snia.report.tables import early_table, share_table
from snia.store import Store
from snia.taxonomy import CLASSES, INDEX

MISTAKES = 4  # false positives and false negatives shown


FPR_GRID = np.linspace(0.0, 1.0, 201)  # where the ROC band is evaluated


THRESHOLD_GRID = np.linspace(0.0, 1.0, 201)  # where the purity/completeness bands are


def _mix_text(mix: dict) -> str:
    total = sum(mix.values()) or 1
    return ", ".join(f"{name} {n:,} ({100 * n / total:.1f} %)" for name, n in mix.items())


def _dataset_text(d: dict) -> str:
    text = f"{d.get('name', d.get('path'))}: {d['objects']:,} objects; {_mix_text(d['class_mix'])}"
    inputs = inputs_text(d)
    return text + (f"; ingested from {inputs}" if inputs else "")


def _checkpoint_text(c: dict) -> str:
    text = f"{c['run']}/{Path(c['path']).name} (sha256 {c['sha256'][:12]}, epoch {c.get('epoch')}"
    text += f", seed {c.get('seed')}, {c.get('task')}, {c.get('kind')} images"
    if c.get("distilled_from"):
        text += (f"; distilled from {', '.join(c['distilled_from'])} with weight "
                 f"{c.get('distill_weight')}")
    if c.get("survey"):
        text += f"; read {c['survey']['store']} unlabelled: {'; '.join(c['survey']['uses'])}"
    if c.get("calibration"):
        calibration = c["calibration"]
        text += "; " + (describe(calibration) if isinstance(calibration, dict) and "a" in calibration
                        else f"calibrated: {calibration}")
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
        search = lookup(prov, ("model", "search"))
        if search:
            how = f" by {search['method']} ({search['rounds']} rounds)" if "method" in search else ""
            text += (f"; chosen by a {search['cv']}-fold cross-validated search of {search['n_iter']} "
                     f"candidates{how} on {search['scoring']} (seed {search['seed']})")
        if copies := lookup(prov, ("model", "training", "reobserved")):
            text += (f"; fitted on the training objects and {copies['copies']} re-observations of "
                     f"each through the schedules of {copies['survey']['path']} (read unlabelled)")
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


def training_runs(columns: list[Column], history) -> list[dict]:
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
    ranks = lookup(config or {}, ("train", "ranks"))
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
        wall = lookup(c.provenance, ("model", "training", "wall_s"))
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


def _bands(column: Column, n_resamples: int, seed: int, progress=None):
    """The bootstrap bands (16th-84th percentiles) of the ROC and of purity/completeness/FoM."""
    draws = bootstrap(column.y, column.p, n_resamples, seed, thresholds=(), fpr_grid=FPR_GRID,
                      threshold_grid=THRESHOLD_GRID, progress=progress)
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
                       key: str, progress=None) -> Section:
    y, p, types = column.y, column.p, column.types[column.labelled]
    section = Section(column.label, f"classifier-{key}")
    m = column.metrics
    section.blocks.append(Para(
        f"{m['n']:,} labelled objects ({m['n_ia']:,} Ia). AUC {cell(m, ('auc',), '{:.3f}')}; at "
        f"P(Ia) >= 0.5 purity {cell(m, ('at_0.5', 'purity'), '{:.3f}')}, completeness "
        f"{cell(m, ('at_0.5', 'completeness'), '{:.3f}')}."))
    if not (0 < y.sum() < len(y)):
        section.blocks.append(Para("Only one class among the labelled objects: no curves."))
        return section
    roc_band, pc_band = _bands(column, n_resamples, seed, progress)
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
    share = m.get("ia_share")
    if share:
        section.blocks.append(share_table(column.label, share))
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
    early = m.get("early")
    if early:
        section.blocks.append(early_table(column.label, early))
        if (column.folder / "early.png").exists():
            section.blocks.append(Figure(column.folder / "early.png",
                                         f"{column.label}: AUC, purity and completeness against "
                                         "the days after the first detection."))
    if (column.folder / "tsne.png").exists():
        section.blocks.append(Figure(column.folder / "tsne.png",
                                     f"{column.label}: {tsne_caption(m.get('tsne'))}"))
    return section


def spec_of(column: Column, store) -> tuple[RasterSpec, str]:
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
        spec, where = spec_of(column, store)
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
        wall = lookup(c.provenance, ("model", "training", "wall_s"))
        if wall is not None:
            blocks.append(Para(f"{c.label}: {wall / 60:.1f} min for the training set's features, "
                               f"the cross-validated search and the refit "
                               f"({lookup(c.provenance, ('model', 'training', 'objects')):,} "
                               "training objects)."))
    return Section("Training", "training", blocks) if blocks else None


def roc_all(columns: list[Column], path: Path, n_resamples: int, seed: int, progress=None) -> bool:
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
            bands[c.label] = _bands(sub, n_resamples, seed, progress)[0]
    plot_roc(curves, path, title=f"Ia vs rest, {len(common):,} objects", bands=bands)
    return True


def architectures_section(compare_csv) -> Section:
    """The architecture comparison: its table, and AUC against inference speed when plotted."""
    rows = read_csv(compare_csv)
    header, cells = markdown_table(rows)
    device = rows[0]["device"] if rows else "?"
    blocks = [Table(
        "The architectures, each trained with the same settings (only the model differs) and "
        f"evaluated on the same test objects: parameters; MFLOP per light curve (one forward "
        f"pass); training samples/s (median over epochs, the workflow's ranks); inference light "
        f"curves/s (read, images or sequences, forward; {device}); AUC on the development half, "
        "the report half and the whole test set; purity, completeness and FoM at the best-FoM "
        f"threshold; Brier score; AUC of light curves cut {EARLY_DAY} days after the first "
        "detection.", header, cells, id="architectures")]
    plot = Path(compare_csv).with_suffix(".png")
    if plot.exists():
        blocks.append(Figure(plot, "AUC against inference speed, one point per architecture "
                                   "(area: parameters; bars: the two halves)."))
    return Section("Architectures", "architectures", blocks)
