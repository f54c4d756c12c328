"""Stage 4: a trained model (or an ensemble) on a labelled store -> predictions, metrics, plots.

The numbers are ``snia.metrics`` (purity and completeness of the Ia sample at P(Ia) >= 0.5 and at
the best SPCC figure of merit, AUC, ...), the figures ``snia.plots``, the predictions
``snia.inference``; this module puts them together in one folder: predictions.csv, metrics.json,
the plots and a short report.md.

Memory is bounded by the store's read blocks and the bootstrap's blocks, plus per-object arrays
(P(Ia), type, id: O(N) numbers, a few per object and model), never by N x something large: every
pass over the store streams it (``predict_store``), the bootstrap draws its resamples in blocks
(``snia.metrics``), and the t-SNE figure, which does not need every object, embeds a fixed,
seeded random sample of at most ``TSNE_OBJECTS`` labelled objects (its caption says how many);
the embeddings of the others are never computed. Progress: a bar on a terminal, a log line per
few percent in a log file (``snia.progress``), over every pass (the predictions, the Ia-share
comparison, the early-classification cuts) and the bootstrap.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import torch

from snia.calibration import calibrate, fit_platt
from snia.checkpoints import read_checkpoint
from snia.errors import ConfigError
from snia.files import atomic_path, write_text_atomic
from snia.gallery import plot_gallery
from snia.inference import as_list, load_members, predict_store, run_members
from snia.lightcurve import cut_after_first_detection
from snia.metrics import (
    BOOTSTRAP_RESAMPLES,
    brier_score,
    confusion_at,
    half_metrics,
    halves,
    metrics,
    purity_completeness,
    weighted_log_loss,
)
from snia.plots import (
    plot_confusion,
    plot_early,
    plot_probability_histograms,
    plot_purity_completeness,
    plot_roc,
    plot_tsne,
)
from snia.predictions import write_predictions
from snia.progress import Progress, counted
from snia.provenance import evaluation_provenance
from snia.store import Store
from snia.taxonomy import INDEX

# early classification: light curves cut this many days after the first detection (None: whole)
EARLY_DAYS = (0, 5, 10, 20, 30, 50, None)

# the t-SNE figure: at most this many labelled objects, a uniform random sample (this seed) that
# keeps the class mix; t-SNE of more shows no more and costs O(N log N) time and O(N) embeddings
TSNE_OBJECTS = 3000
TSNE_SEED = 0
EMBED_BATCH = 512  # objects embedded at a time for the t-SNE sample


def evaluate(checkpoints, store_path, out_dir, allow_other_bands: bool = False,
             prior: float | str | None = None, progress: bool = True) -> dict:
    """Predictions, metrics.json, plots and a Markdown report for a store (types known). Data
    of bands a model was not trained on are refused unless ``allow_other_bands``. ``prior``: the
    Ia share to move calibrated P(Ia) to (a number, or "estimate": EM on the store's own light
    curves); metrics.json's ``ia_share`` compares P(Ia) at the validation split's share with
    P(Ia) at the estimated one, whichever is chosen. ``progress``: a bar or log lines (see the
    module docstring)."""
    checkpoints = as_list(checkpoints)
    with Store(store_path) as store:
        n_objects = len(store)
        if not np.any(store.objects["type"] != INDEX["unknown"]):
            raise ConfigError(f"{store_path}: no object of a known type, nothing to evaluate "
                              "against (snia classify gives P(Ia) without types)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calibrated = all(m.calibration is not None for m in load_members(checkpoints))
    share_passes = (0 if not calibrated else 1 if prior in (None, "estimate") else 2)
    passes = Progress(n_objects * (1 + share_passes + len(EARLY_DAYS)), "evaluate",
                      enabled=progress)
    with passes:
        passes.set_step("predictions")
        pred = predict_store(checkpoints, store_path, allow_other_bands=allow_other_bands,
                             prior=prior, transform=counted(passes))
        labelled = pred["type"] != INDEX["unknown"]
        y = (pred["type"][labelled] == INDEX["Ia"]).astype(int)
        p = pred["p_ia"][labelled]
        types = pred["type"][labelled]
        with Progress(BOOTSTRAP_RESAMPLES if len(y) else 0, "evaluate: bootstrap",
                      unit="resamples", enabled=progress) as resamples:
            result = metrics(y, p, progress=resamples)
        result["halves"] = half_metrics(y, p, pred["object_id"][labelled])
        if "classes" in pred:
            result["classes"] = pred["classes"]
            result["weighted_log_loss"], result["log_loss_objects"] = weighted_log_loss(
                types, pred["class_probs"][labelled], pred["classes"])
        result["calibration"] = pred["calibration"]
        if pred.get("p_ia_uncalibrated") is not None:
            passes.set_step("the Ia share")
            result["ia_share"] = share_comparison(checkpoints, store_path, pred, allow_other_bands,
                                                  prior, passes)
        if pred["ia_share"] is not None:  # early classification at the share chosen on the whole
            prior = pred["ia_share"]
        result["early"] = early_classification(checkpoints, store_path, allow_other_bands, prior,
                                               progress=passes)
    rows = np.flatnonzero(labelled)[tsne_sample(int(labelled.sum()))]
    result["tsne"] = {"objects": len(rows), "labelled": int(labelled.sum()), "cap": TSNE_OBJECTS,
                      "seed": TSNE_SEED, "sample": "uniform random (seeded)"}
    embedding = embeddings_of(checkpoints[0], store_path, rows)
    result["provenance"] = evaluation_provenance(checkpoints, store_path, pred["spec"])
    write_predictions(out / "predictions.csv", pred["object_id"], pred["p_ia"], pred["type"],
                      pred.get("classes", ()), pred.get("class_probs"), pred.get("p_ia_uncalibrated"))
    write_text_atomic(out / "metrics.json", json.dumps(result, indent=2))
    plots = {"roc.png": lambda f: plot_roc({"CNN": (y, p)}, f),
             "purity_completeness.png": lambda f: plot_purity_completeness(y, p, f),
             "p_ia_by_type.png": lambda f: plot_probability_histograms(p, types, f),
             "confusion.png": lambda f: plot_confusion(y, p, f),
             "tsne.png": lambda f: plot_tsne(embedding, pred["type"][rows], f,
                                             max_points=TSNE_OBJECTS),
             "gallery.png": lambda f: plot_gallery(store_path, pred["spec"], f),
             "early.png": lambda f: plot_early(result["early"], f)}
    with Progress(len(plots), "evaluate: figures", unit="figures", enabled=progress) as drawn:
        for name, draw in plots.items():
            drawn.set_step(name)
            draw(out / name)
            drawn.update(1)
    names = ", ".join(Path(c).parent.name + "/" + Path(c).name for c in checkpoints)
    lines = [f"# snia evaluation of {names} on {Path(store_path).name}", "",
             f"AUC {result['auc']:.4f}; at P(Ia) >= 0.5: purity {result['at_0.5']['purity']:.3f}, "
             f"completeness {result['at_0.5']['completeness']:.3f}", ""]
    captions = {"tsne.png": tsne_caption(result["tsne"])}
    for name in plots:
        lines += [f"![{name}]({name})"] + ([captions[name], ""] if name in captions else [])
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
    return result


def tsne_sample(n: int, cap: int | None = None, seed: int = TSNE_SEED) -> np.ndarray:
    """Sorted indices of at most ``cap`` (default ``TSNE_OBJECTS``) of ``n`` objects: all of
    them, or a uniform random sample without replacement, the same for the same seed (O(cap)
    memory, not O(n))."""
    cap = TSNE_OBJECTS if cap is None else cap
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def embeddings_of(checkpoint, store_path, rows) -> np.ndarray:
    """The penultimate-layer embeddings of a model (an ensemble's first member, as
    ``predict_store(embeddings=True)`` gives) for the store's objects at ``rows`` only, read and
    run ``EMBED_BATCH`` at a time."""
    member = load_members([checkpoint])[0]
    parts = []
    with Store(store_path) as store:
        member.spec = member.spec_for(store.bands)
        for start in range(0, len(rows), EMBED_BATCH):
            [(embedding, _)] = run_members([member], store.batch(rows[start:start + EMBED_BATCH]))
            parts.append(embedding.float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)


def tsne_caption(record: dict | None) -> str:
    """What the t-SNE figure shows: how many objects, and how they were chosen (metrics.json's
    ``tsne``; an evaluation before it was recorded drew at most 3,000, at random)."""
    what = "t-SNE of the penultimate-layer embeddings, coloured by true type"
    if not record:
        return f"{what} (at most 3,000 objects drawn at random; the sample was not recorded)."
    if record["objects"] >= record["labelled"]:
        return f"{what}: all {record['labelled']:,} labelled objects."
    return (f"{what}: {record['objects']:,} of the {record['labelled']:,} labelled objects, a "
            f"uniform random sample (seed {record['seed']}; at most {record['cap']:,} objects "
            "are drawn: the picture needs no more).")


def share_comparison(checkpoints, store_path, pred, allow_other_bands, prior,
                     progress: Progress | None = None) -> dict:
    """Brier score, purity and completeness at P(Ia) >= 0.5 of the labelled objects (whole set
    and halves) "before": calibrated at the validation split's Ia share, and "after": moved to
    the share the EM estimates from all the store's light curves (no label read). ``progress``:
    told of the light curves of each pass over the store."""
    def again(share):
        return predict_store(checkpoints, store_path, allow_other_bands=allow_other_bands,
                             prior=share, transform=None if progress is None else counted(progress))

    before = pred if prior is None else again(None)
    after = pred if prior == "estimate" else again("estimate")
    labelled = pred["type"] != INDEX["unknown"]
    y = (pred["type"][labelled] == INDEX["Ia"]).astype(int)
    parts = {"whole": np.ones(len(y), bool), **halves(pred["object_id"][labelled])}
    out = {"estimated": after["ia_share"], "labelled": float(y.mean()) if len(y) else None}
    for name, made in (("before", before), ("after", after)):
        p = made["p_ia"][labelled]
        out[name] = {}
        for part, mask in parts.items():
            purity, completeness = purity_completeness(confusion_at(y[mask], p[mask], 0.5))
            out[name][part] = {"brier": brier_score(y[mask], p[mask]), "purity": purity,
                               "completeness": completeness}
    return out


def early_classification(checkpoints, store_path, allow_other_bands: bool = False,
                         prior: float | None = None, days=EARLY_DAYS,
                         progress: Progress | None = None) -> list[dict]:
    """AUC (of the whole set and of each half), and purity and completeness at the best-FoM
    threshold, of the same labelled objects with their light curves cut ``days`` after the first
    detection (see ``snia.lightcurve.cut_after_first_detection``); "all": the whole light
    curves. One pass over the store per cut (streamed); ``progress``: told of each pass's light
    curves."""
    rows = []
    for n in days:
        cut = partial(cut_after_first_detection, days=n)
        if progress is not None:
            progress.set_step(f"early classification, {'whole light curves' if n is None else f'{n} days'}")
            cut = counted(progress, cut)
        pred = predict_store(checkpoints, store_path, allow_other_bands=allow_other_bands,
                             prior=prior, transform=cut)
        labelled = pred["type"] != INDEX["unknown"]
        y = (pred["type"][labelled] == INDEX["Ia"]).astype(int)
        m = metrics(y, pred["p_ia"][labelled], n_resamples=0)
        half = half_metrics(y, pred["p_ia"][labelled], pred["object_id"][labelled])
        best = m.get("at_best_fom", {})
        rows.append({"days": "all" if n is None else n, "objects": m["n"], "auc": m["auc"],
                     "auc_development": half["development"]["auc"],
                     "auc_report": half["report"]["auc"],
                     "purity": best.get("purity", float("nan")),
                     "completeness": best.get("completeness", float("nan")),
                     "threshold": best.get("threshold", float("nan"))})
    return rows


def recalibrate(checkpoints, store_path, out_dir, half: str | None = None) -> list[dict]:
    """Copies of the checkpoints whose Platt scaling is refitted on the labelled objects of a
    store (``half``: only its development or report half, see ``snia.metrics.halves``): a
    survey's own spectroscopically confirmed objects, where the validation split of the training
    set is not like the survey (docs/results.md: under PLAsTiCC's shift, moving the validation
    calibration to the true Ia share makes P(Ia) worse; a refit on half the survey makes it
    better on the other half). Each member is refitted on its own scores; the networks are
    untouched. Written to ``out_dir``/<run folder>/<file>; returns each's Brier before and after
    on the fitted objects."""
    out = Path(out_dir)
    rows = []
    for member in load_members(as_list(checkpoints)):
        pred = predict_store([member], store_path)
        if "p_ia_uncalibrated" not in pred:
            raise ConfigError(f"{member.path}: carries no calibration to refit (trained before "
                              "calibration, or its validation split held one class)")
        chosen = pred["type"] != INDEX["unknown"]
        if half is not None:
            chosen &= halves(pred["object_id"])[half]
        y = (pred["type"][chosen] == INDEX["Ia"]).astype(int)
        where = f"{Path(store_path).name} ({half + ' half, ' if half else ''}{chosen.sum()} objects)"
        calibration = fit_platt(y, pred["p_ia_uncalibrated"][chosen], fitted_on=where)
        if calibration is None:
            raise ConfigError(f"{store_path}: {int(chosen.sum())} labelled objects"
                              f"{' in the ' + half + ' half' if half else ''}, not of both "
                              "classes (Ia and not Ia): nothing to fit a calibration on")
        state = read_checkpoint(member.path)
        state["calibration"] = calibration
        target = out / member.path.parent.name / member.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
        rows.append({"checkpoint": str(target), "objects": len(y),
                     "brier_before": brier_score(y, pred["p_ia"][chosen]),
                     "brier_after": brier_score(y, calibrate(pred["p_ia_uncalibrated"][chosen],
                                                             calibration))})
    return rows
