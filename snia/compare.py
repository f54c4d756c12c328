"""The architecture comparison: size, speed and quality of each trained architecture, side by side.

The workflow's ``compare`` target trains one model per entry of ``compare.models`` (the same
training settings, only the model differs) and evaluates each on the report's dataset; this
module then puts them in one table (``compare.csv``) and one plot of AUC against inference speed
(``compare.png``), which the report shows. Per model:

- parameters, and floating-point operations per light curve of one forward pass
  (``snia.models.registry.flops_per_sample``: images of the model's geometry; the recurrent models
  at ``SEQUENCE_LENGTH`` observations);
- training samples/s: the median over the epochs of the run's history.csv (the whole training
  path, with the ranks the workflow gave it);
- inference light curves/s: measured here, one model after the other in one process, over the
  evaluated store (read, images or sequences, forward pass; after one warm-up batch);
- quality from the evaluation's metrics.json: AUC on the whole set, the development and the report
  half, purity, completeness and FoM at the best-FoM threshold, the Brier score, and the AUC of
  light curves cut ``EARLY_DAY`` days after the first detection.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np

from snia.errors import ConfigError
from snia.files import write_text_atomic
from snia.plots import pyplot, save

SEQUENCE_LENGTH = 100  # observations per light curve where a recurrent model's FLOPs are counted
EARLY_DAY = 10  # the early-classification column: light curves cut 10 days after detection

FIELDS = ["model", "arch", "parameters", "mflop_per_lc", "train_samples_per_s", "epochs",
          "infer_lc_per_s", "auc", "auc_development", "auc_report", "purity", "completeness",
          "fom", "brier", f"auc_{EARLY_DAY}d", "device"]


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the evaluation ({exc})") from None


def training_speed(history) -> tuple[float, int]:
    """Median training samples/s over the epochs of a history.csv, and the number of epochs."""
    with open(history, newline="") as f:
        rates = [float(r["samples_per_s"]) for r in csv.DictReader(f) if r.get("samples_per_s")]
    if not rates:
        raise ConfigError(f"{history}: no epoch with samples_per_s")
    return float(np.median(rates)), len(rates)


def quality(metrics_json) -> dict:
    """The comparison's quality columns from an evaluation's metrics.json."""
    m = _read_json(metrics_json)
    best = m.get("at_best_fom", {})
    halves = m.get("halves", {})
    early = {row["days"]: row["auc"] for row in m.get("early", [])}
    return {"auc": m["auc"],
            "auc_development": halves.get("development", {}).get("auc", math.nan),
            "auc_report": halves.get("report", {}).get("auc", math.nan),
            "purity": best.get("purity", math.nan),
            "completeness": best.get("completeness", math.nan),
            "fom": best.get("fom", math.nan), "brier": m.get("brier", math.nan),
            f"auc_{EARLY_DAY}d": early.get(EARLY_DAY, math.nan)}


def size_and_speed(checkpoint, store_path, batch_size: int = 512) -> dict:
    """Architecture, parameters, MFLOP per light curve and inference light curves/s of one
    model over a store (every batch read, turned into the model's inputs and run; the first
    batch once before, untimed: compilation and allocation)."""
    from snia.inference import default_device, load_members, run_members  # needs torch
    from snia.models.registry import example_inputs, flops_per_sample, parameter_count
    from snia.store import Store

    member = load_members([checkpoint], default_device())[0]
    with Store(store_path) as store:
        member.spec = member.spec_for(store.bands)
        size = tuple(member.spec.shape[1:])
        flops = flops_per_sample(member.model.cpu(), example_inputs(member.model, size,
                                                                     SEQUENCE_LENGTH))
        member.model.to(member.device)
        batches = iter(store.iter_batches(batch_size))
        run_members([member], next(batches))  # warm-up, untimed
        start = time.perf_counter()
        n = 0
        for batch in store.iter_batches(batch_size):
            run_members([member], batch)
            n += len(batch.object_id)
        if member.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return {"arch": member.arch, "parameters": parameter_count(member.model),
            "mflop_per_lc": flops / 1e6, "infer_lc_per_s": n / seconds,
            "device": member.device.type}


def compare(runs: dict, store_path, out_csv, plot=None) -> list[dict]:
    """One row per model: ``runs`` maps a name to its folder, holding best.pt and history.csv of
    the training and evaluate/metrics.json of its evaluation on ``store_path``. Writes the CSV
    (and the plot); the models are timed one after another, in this process."""
    runs = {name: Path(folder) for name, folder in runs.items()}
    for name, folder in runs.items():  # every run checked before any is timed
        missing = [p for p in ("best.pt", "history.csv", "evaluate/metrics.json")
                   if not (folder / p).exists()]
        if missing:
            raise ConfigError(f"{folder}: no {', '.join(missing)} (train and evaluate {name} "
                              "first: `snakemake compare`)")
    rows = []
    for name, folder in runs.items():
        row = {"model": name, **size_and_speed(folder / "best.pt", store_path)}
        row["train_samples_per_s"], row["epochs"] = training_speed(folder / "history.csv")
        row.update(quality(folder / "evaluate" / "metrics.json"))
        rows.append(row)
    write_csv(rows, out_csv)
    if plot:
        plot_compare(rows, plot)
    return rows


def write_csv(rows: list[dict], path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()}
                     for r in rows)
    write_text_atomic(path, text.getvalue())


def read_csv(path) -> list[dict]:
    """The rows of a compare.csv, numbers as numbers."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k not in ("model", "arch", "device"):
                r[k] = float(v) if v not in ("", None) else math.nan
    return rows


def plot_compare(rows: list[dict], path) -> None:
    """AUC (whole test set; bars: the two halves) against inference light curves/s, one point
    per model, marker area growing with the parameters."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    largest = max(r["parameters"] for r in rows) or 1
    for k, r in enumerate(rows):
        halves = [r["auc_development"], r["auc_report"]]
        low, high = min(halves), max(halves)
        err = ([[max(r["auc"] - low, 0)], [max(high - r["auc"], 0)]]
               if all(np.isfinite(halves)) else None)
        ax.errorbar(r["infer_lc_per_s"], r["auc"], yerr=err, fmt="none", ecolor=f"C{k}", alpha=0.6)
        ax.scatter(r["infer_lc_per_s"], r["auc"], s=30 + 400 * np.sqrt(r["parameters"] / largest),
                   color=f"C{k}", alpha=0.8,
                   label=f"{r['model']} ({r['parameters'] / 1e6:.2g} M parameters)")
    ax.set(xscale="log", xlabel=f"inference light curves / s ({rows[0]['device']})",
           ylabel="AUC (bars: development and report half)",
           title="architectures: quality against speed")
    ax.legend(fontsize="small", loc="best")
    save(fig, path)


def markdown_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table (the report's architecture section)."""
    header = ["model", "parameters", "MFLOP / LC", "training samples/s", "inference LC/s",
              "AUC (dev / report / whole)", "purity", "completeness", "FoM", "Brier",
              f"AUC at {EARLY_DAY} d"]
    cells = [[r["model"] if r["model"] == r["arch"] else f"{r['model']} ({r['arch']})",
              f"{int(r['parameters']):,}", f"{r['mflop_per_lc']:,.1f}",
              f"{r['train_samples_per_s']:,.0f}", f"{r['infer_lc_per_s']:,.0f}",
              f"{r['auc_development']:.3f} / {r['auc_report']:.3f} / {r['auc']:.3f}",
              f"{r['purity']:.3f}", f"{r['completeness']:.3f}", f"{r['fom']:.3f}",
              f"{r['brier']:.3f}", f"{r[f'auc_{EARLY_DAY}d']:.3f}"] for r in rows]
    return header, cells
