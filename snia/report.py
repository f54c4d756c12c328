"""Stage 5: the report. The CNN and the random-forest baseline side by side on the same test
objects (one table, one ROC plot), training cost, and links to every plot, as Markdown and HTML.
Optionally a third column: the ensemble a distilled CNN learnt from."""

from __future__ import annotations

import csv
import html
import json
import os
from pathlib import Path

import numpy as np

from snia.files import write_text_atomic
from snia.plots import plot_roc
from snia.predictions import read_predictions
from snia.taxonomy import INDEX

ROWS = [  # (label, path into metrics.json, format)
    ("objects (Ia)", None, None),
    ("AUC", ("auc",), "{:.4f}"),
    ("accuracy at P(Ia) >= 0.5", ("at_0.5", "accuracy"), "{:.3f}"),
    ("purity at P(Ia) >= 0.5", ("at_0.5", "purity"), "{:.3f}"),
    ("completeness at P(Ia) >= 0.5", ("at_0.5", "completeness"), "{:.3f}"),
    ("best-FoM threshold", ("at_best_fom", "threshold"), "{:.3f}"),
    ("purity at best FoM", ("at_best_fom", "purity"), "{:.3f}"),
    ("completeness at best FoM", ("at_best_fom", "completeness"), "{:.3f}"),
    ("FoM (W = 3)", ("at_best_fom", "fom"), "{:.3f}"),
    ("purity at 90 % completeness", ("purity_at_90pc_completeness",), "{:.3f}"),
    ("purity at 95 % completeness", ("purity_at_95pc_completeness",), "{:.3f}"),
    ("weighted log-loss (multi-class)", ("weighted_log_loss",), "{:.4f}"),
]


def _value(result: dict, path, fmt) -> str:
    if path is None:
        return f"{result['n']:,} ({result['n_ia']:,})"
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return "-"
        result = result[key]
    return fmt.format(result)


def _training_summary(histories) -> dict:
    """Epochs, wall time and throughput of one model's training, or summed over an ensemble's."""
    runs = []
    for history in histories:
        with open(history, newline="") as f:
            runs.append(list(csv.DictReader(f)))
    rows = [r for run in runs for r in run]
    return {"members": len(runs), "epochs": [len(run) for run in runs],
            "wall_s": sum(float(r["seconds"]) for r in rows),
            "best_val_auc": [max(float(r["val_auc"]) for r in run) for run in runs],
            "samples_per_s": float(np.median([float(r["samples_per_s"]) for r in rows]))}


def _roc_all(folders: dict, path: Path) -> None:
    """ROC of every classifier (label -> folder of predictions.csv) over the labelled objects all
    of them scored (matched by object id)."""
    tables = {label: read_predictions(folder / "predictions.csv") for label, folder in folders.items()}
    common = None
    for table in tables.values():
        labelled = table["object_id"][table["type"] != INDEX["unknown"]]
        common = labelled if common is None else np.intersect1d(common, labelled)
    curves = {}
    for label, table in tables.items():
        order = np.argsort(table["object_id"])
        rows = order[np.searchsorted(table["object_id"], common, sorter=order)]
        curves[label] = ((table["type"][rows] == INDEX["Ia"]).astype(int), table["p_ia"][rows])
    plot_roc(curves, path, title=f"Ia vs rest, {len(common)} objects")


def write_report(out_dir, cnn_dir, baseline_dir=None, history=None, ensemble_dir=None) -> Path:
    """report.md and report.html in ``out_dir``; returns the Markdown path. ``ensemble_dir``:
    the evaluation of the ensemble a distilled CNN learnt from (a column of its own)."""
    out, cnn_dir = Path(out_dir), Path(cnn_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = {"CNN": cnn_dir}
    if ensemble_dir is not None:
        folders["CNN ensemble"] = Path(ensemble_dir)
    if baseline_dir is not None:
        baseline_dir = Path(baseline_dir)
        folders["random forest"] = baseline_dir
    columns = {label: json.loads((folder / "metrics.json").read_text())
               for label, folder in folders.items()}
    table = [["", *columns]] + [[label, *(_value(r, path, fmt) for r in columns.values())]
                                for label, path, fmt in ROWS]
    table = [row for row in table if row[0] == "" or any(v != "-" for v in row[1:])]
    figures = []
    if len(folders) > 1:
        _roc_all(folders, out / "roc_cnn_vs_rf.png")
        figures.append(("ROC of the classifiers", "roc_cnn_vs_rf.png"))
    for name, title in (("purity_completeness.png", "CNN purity, completeness and FoM vs threshold"),
                        ("p_ia_by_type.png", "CNN P(Ia) per true type"),
                        ("confusion.png", "CNN confusion at P(Ia) >= 0.5"),
                        ("tsne.png", "t-SNE of the CNN's penultimate embeddings"),
                        ("gallery.png", "example images per type"),
                        ("roc.png", "CNN ROC")):
        if (cnn_dir / name).exists():
            figures.append((title, os.path.relpath(cnn_dir / name, out)))
    if baseline_dir is not None and (baseline_dir / "feature_importance.txt").exists():
        figures.append(("random forest feature importance (text)",
                        os.path.relpath(baseline_dir / "feature_importance.txt", out)))
    if isinstance(history, (str, Path)):
        history = [history]
    training = _training_summary(history) if history else None
    md = _markdown(table, figures, training)
    write_text_atomic(out / "report.md", md)
    write_text_atomic(out / "report.html", _html(table, figures, training))
    return out / "report.md"


def _training_lines(training) -> list[str]:
    if not training:
        return []
    auc = ", ".join(f"{a:.4f}" for a in training["best_val_auc"])
    epochs = ", ".join(str(e) for e in training["epochs"])
    if training["members"] == 1:
        return [f"CNN training: {epochs} epochs in {training['wall_s'] / 60:.1f} min "
                f"(median {training['samples_per_s']:.0f} samples/s), best validation AUC {auc}."]
    return [f"CNN training: {training['members']} models (an ensemble, and the model distilled "
            f"from it if any), {epochs} epochs, {training['wall_s'] / 60:.1f} min in all "
            f"(median {training['samples_per_s']:.0f} samples/s); best validation AUC of each: "
            f"{auc}."]


def _markdown(table, figures, training) -> str:
    lines = ["# snia: SN Ia classification report", "",
             "Purity = TP / (TP + FP), completeness = TP / (TP + FN) of the objects called Ia; "
             "FoM = completeness x TP / (TP + 3 FP).", ""]
    lines += ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    lines += [""] + _training_lines(training) + [""]
    for title, path in figures:
        lines += [f"## {title}", "", f"![{title}]({path})" if path.endswith(".png")
                  else f"[{path}]({path})", ""]
    return "\n".join(lines)


def _html(table, figures, training) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table[0])
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                   for row in table[1:])
    parts = ["<!doctype html><meta charset='utf-8'><title>snia report</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
             "td,th{padding:2px 10px;text-align:right}</style>",
             "<h1>snia: SN Ia classification report</h1>",
             f"<table><tr>{head}</tr>{body}</table>"]
    parts += [f"<p>{esc(line)}</p>" for line in _training_lines(training)]
    for title, path in figures:
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(f"<img src='{esc(path)}' alt='{esc(title)}'>" if path.endswith(".png")
                     else f"<a href='{esc(path)}'>{esc(path)}</a>")
    return "\n".join(parts) + "\n"
