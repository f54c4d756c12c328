"""Stage 4: predictions -> metrics and plots, the way the field reports an Ia sample.

purity = TP / (TP + FP), completeness (efficiency) = TP / (TP + FN) of the objects called Ia, at
P(Ia) >= 0.5 and at the threshold maximising the SPCC figure of merit
FoM = completeness x TP / (TP + W FP) with W = 3 (Kessler et al. 2010), plus the AUC and the
purity reached at 90 % and 95 % completeness.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FOM_WEIGHT = 3.0


def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    called = p >= threshold
    tp = int(np.sum(called & (y == 1)))
    fp = int(np.sum(called & (y == 0)))
    fn = int(np.sum(~called & (y == 1)))
    tn = int(np.sum(~called & (y == 0)))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def purity_completeness(c: dict) -> tuple[float, float]:
    purity = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else float("nan")
    completeness = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else float("nan")
    return purity, completeness


def figure_of_merit(c: dict, weight: float = FOM_WEIGHT) -> float:
    """SPCC figure of merit: completeness x TP / (TP + W FP) (0 when nothing is called Ia)."""
    if c["tp"] == 0:
        return 0.0
    return c["tp"] / (c["tp"] + c["fn"]) * c["tp"] / (c["tp"] + weight * c["fp"])


def threshold_curves(y: np.ndarray, p: np.ndarray):
    """Purity, completeness and FoM at every distinct threshold (descending P(Ia))."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]  # ends of tied groups
    tp = np.cumsum(y_sorted == 1)[last].astype(float)
    fp = np.cumsum(y_sorted == 0)[last].astype(float)
    positives = float(np.sum(y == 1))
    completeness = tp / positives if positives else np.full_like(tp, np.nan)
    purity = tp / (tp + fp)
    fom = completeness * tp / (tp + FOM_WEIGHT * fp)
    return p_sorted[last], purity, completeness, fom


def weighted_log_loss(types, class_probs, classes) -> tuple[float, int]:
    """PLAsTiCC's weighted log-loss with equal class weights (each true class counts the same
    however many objects it has): -sum_c (1/N_c) sum_{i in c} ln p_ic / (number of classes present).
    Probabilities are clipped to [1e-15, 1 - 1e-15] and rows renormalised, as in the challenge.
    Objects whose true type is not one of ``classes`` cannot be scored; returns (loss, scored)."""
    from snia.train import class_targets

    target = class_targets(types, list(classes))
    scored = target >= 0
    p = np.clip(np.asarray(class_probs, float)[scored], 1e-15, 1 - 1e-15)
    p /= p.sum(axis=1, keepdims=True)
    target = target[scored]
    per_class = [-np.mean(np.log(p[target == c, c])) for c in np.unique(target)]
    return (float(np.mean(per_class)) if per_class else float("nan")), int(scored.sum())


def metrics(y, p) -> dict:
    """Every number of metrics.json for a binary Ia-vs-rest classification."""
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    out = {"n": int(len(y)), "n_ia": int(y.sum())}
    out["auc"] = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    at_half = confusion_at(y, p, 0.5)
    purity, completeness = purity_completeness(at_half)
    out["at_0.5"] = {**at_half, "purity": purity, "completeness": completeness,
                     "accuracy": (at_half["tp"] + at_half["tn"]) / max(len(y), 1),
                     "fom": figure_of_merit(at_half)}
    thresholds, pur, comp, fom = threshold_curves(y, p)
    best = int(np.nanargmax(fom)) if len(fom) and np.isfinite(fom).any() else None
    if best is not None:
        c = confusion_at(y, p, thresholds[best])
        out["at_best_fom"] = {**c, "threshold": float(thresholds[best]),
                              "purity": purity_completeness(c)[0],
                              "completeness": purity_completeness(c)[1], "fom": float(fom[best])}
    for level in (0.90, 0.95):
        reach = np.flatnonzero(comp >= level)
        out[f"purity_at_{int(level * 100)}pc_completeness"] = (float(pur[reach[0]]) if reach.size
                                                               else float("nan"))
    return out


# ----------------------------------------------------------------------------- running a model


def spec_of(state: dict):
    """The RasterSpec a checkpoint was trained with."""
    from snia.raster import RasterSpec

    values = dict(state["spec"])
    values["bands"] = tuple(values["bands"])
    values["wavelengths"] = tuple(values["wavelengths"])
    return RasterSpec(**values)


class Member:
    """One trained model ready for inference: the network, its image spec and input scaling."""

    def __init__(self, checkpoint, device="cpu"):
        import torch

        from snia.models import CNNConfig, LightCurveCNN

        state = torch.load(checkpoint, weights_only=True, map_location="cpu")
        model = LightCurveCNN(CNNConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model"])
        # channels-last memory: ~1.5x faster convolutions for inference on CPUs (not for
        # training, where GroupNorm's backward pass is slower in it)
        self.device = torch.device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.spec = spec_of(state)
        self.mean = np.asarray(state["norm"]["mean"])
        self.std = np.asarray(state["norm"]["std"])
        self.classes = list(state.get("classes") or [])
        self.backend = state["train_config"].get("backend", "auto")


def load_members(checkpoints, device="cpu") -> list[Member]:
    """The models of an ensemble (one or more checkpoints), checked to predict the same classes."""
    members = [Member(c, device) for c in _as_list(checkpoints)]
    classes = members[0].classes
    if any(m.classes != classes for m in members):
        raise ValueError("ensemble members predict different classes: "
                         f"{[m.classes for m in members]}")
    return members


def run_members(members: list[Member], batch, drawn: dict | None = None):
    """Each member's (embedding, logits) on one batch of light curves, without gradients.

    Each member sees its own images; members that share an image spec share one rasterization.
    ``drawn`` (spec -> (images, scale) as NumPy arrays) passes images already rasterized for this
    batch, e.g. by a training step, so they are not drawn again."""
    import torch

    from snia.raster import _host, rasterize
    from snia.train import scalars_of

    drawn = dict(drawn or {})
    inputs = {}  # spec -> (image tensor on the device, scale)
    out = []
    with torch.no_grad():
        for m in members:
            if m.spec not in drawn:
                images = rasterize(batch, m.spec, m.backend)
                drawn[m.spec] = (_host(images.images), _host(images.scale))
            if m.spec not in inputs:
                images, scale = drawn[m.spec]
                inputs[m.spec] = (torch.as_tensor(images).to(m.device).contiguous(
                    memory_format=torch.channels_last), scale)
            x, scale = inputs[m.spec]
            s = torch.as_tensor((scalars_of(batch.meta, scale) - m.mean) / m.std,
                                dtype=torch.float32, device=m.device)
            e = m.model.embed(x, s)
            out.append((e, m.model.head(e).float()))
    return out


def mean_probabilities(outputs, classes: list[str]):
    """The members' mean P(Ia) and, for multi-class members, mean class probabilities (else
    None), from run_members' outputs."""
    import torch

    from snia.train import p_ia_of

    p_ia = np.mean([p_ia_of(logits, classes).cpu().numpy() for _, logits in outputs], axis=0)
    if not classes:
        return p_ia, None
    return p_ia, np.mean([torch.softmax(logits, dim=1).cpu().numpy() for _, logits in outputs],
                         axis=0)


def ensemble_p_ia(members: list[Member], batch, drawn: dict | None = None) -> np.ndarray:
    """The members' mean P(Ia) for each light curve of a batch (``drawn``: see run_members)."""
    return mean_probabilities(run_members(members, batch, drawn), members[0].classes)[0]


def _as_list(checkpoints) -> list:
    return [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)


def predict_store(checkpoints, store_path, batch_size: int = 512, embeddings: bool = False):
    """P(Ia) (and optionally penultimate embeddings) for every object of a store.

    Several checkpoints make an ensemble: their probabilities are averaged (each model sees its
    own images; members that share an image spec share one rasterization). The embeddings are
    the first member's."""
    from snia.store import Store

    members = load_members(checkpoints)
    classes = members[0].classes
    probs, embeds, ids, types, class_probs = [], [], [], [], []
    with Store(store_path) as store:
        for batch in store.iter_batches(batch_size):
            outputs = run_members(members, batch)
            p_ia, c_probs = mean_probabilities(outputs, classes)
            probs.append(p_ia)
            if classes:
                class_probs.append(c_probs)
            if embeddings:
                embeds.append(outputs[0][0].numpy())  # the first member's
            ids.append(batch.object_id)
            types.append(batch.meta["type"])
    out = {"object_id": np.concatenate(ids), "p_ia": np.concatenate(probs).astype(np.float32),
           "type": np.concatenate(types), "spec": members[0].spec}
    if embeddings:
        out["embedding"] = np.concatenate(embeds)
    if classes:
        out["classes"] = classes
        out["class_probs"] = np.concatenate(class_probs)
    return out


def write_predictions(path, predictions: dict) -> None:
    from snia.taxonomy import CLASSES

    classes = predictions.get("classes", [])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["object_id", "p_ia", "true_type"] + [f"p_{c}" for c in classes])
        for i, (oid, p, t) in enumerate(zip(predictions["object_id"], predictions["p_ia"],
                                            predictions["type"])):
            extra = [f"{q:.6f}" for q in predictions["class_probs"][i]] if classes else []
            writer.writerow([int(oid), f"{p:.6f}", CLASSES[int(t)]] + extra)


# ----------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(y, p, path, label="CNN") -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (completeness)", title="ROC")
    ax.legend()
    _save(fig, path)


def plot_purity_completeness(y, p, path) -> None:
    plt = _plt()
    thresholds, purity, completeness, fom = threshold_curves(np.asarray(y), np.asarray(p))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(thresholds, purity, label="purity")
    ax.plot(thresholds, completeness, label="completeness")
    ax.plot(thresholds, fom, label="FoM (W=3)")
    ax.set(xlabel="P(Ia) threshold", ylim=(0, 1.02), title="Ia sample vs threshold")
    ax.legend()
    _save(fig, path)


def plot_probability_histograms(p, types, path) -> None:
    from snia.taxonomy import CLASSES

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for t in np.unique(types):
        ax.hist(p[types == t], bins=np.linspace(0, 1, 26), histtype="step", lw=1.5,
                label=f"{CLASSES[int(t)]} ({int(np.sum(types == t))})", density=True)
    ax.set(xlabel="P(Ia)", ylabel="density", title="P(Ia) per true type")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_confusion(y, p, path, threshold: float = 0.5) -> None:
    plt = _plt()
    c = confusion_at(np.asarray(y), np.asarray(p), threshold)
    matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks([0, 1], ["non-Ia", "Ia"])
    ax.set_yticks([0, 1], ["non-Ia", "Ia"])
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion at P(Ia) >= {threshold:.2f}")
    _save(fig, path)


def plot_tsne(embedding, types, path, seed: int = 0, max_points: int = 3000) -> None:
    """t-SNE of the CNN's penultimate embeddings, coloured by true type."""
    from sklearn.manifold import TSNE

    from snia.taxonomy import CLASSES

    plt = _plt()
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(types))[:max_points]
    xy = TSNE(n_components=2, init="pca", random_state=seed,
              perplexity=min(30.0, max(2.0, (len(pick) - 1) / 3))).fit_transform(embedding[pick])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for t in np.unique(types[pick]):
        sel = types[pick] == t
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, label=CLASSES[int(t)])
    ax.set(title="t-SNE of CNN embeddings", xticks=[], yticks=[])
    ax.legend(markerscale=3, fontsize=8)
    _save(fig, path)


def plot_gallery(store_path, spec, path, per_type: int = 4, seed: int = 0) -> None:
    """A few example images per true type (the flux channel, as the CNN sees it)."""
    from snia.raster import _host, rasterize
    from snia.store import Store
    from snia.taxonomy import CLASSES

    plt = _plt()
    rng = np.random.default_rng(seed)
    with Store(store_path) as store:
        types = store.objects["type"]
        present = [t for t in np.unique(types)]
        fig, axes = plt.subplots(len(present), per_type, squeeze=False,
                                 figsize=(2.4 * per_type, 1.5 * len(present) + 0.4))
        for row, t in enumerate(present):
            members = np.flatnonzero(types == t)
            pick = np.sort(rng.choice(members, min(per_type, len(members)), replace=False))
            images = _host(rasterize(store.batch(pick), spec, "auto").images)
            for col, ax in enumerate(axes[row]):
                ax.set_xticks([]), ax.set_yticks([])
                if col < len(pick):
                    ax.imshow(images[col, 0].astype(np.float32), aspect="auto", origin="lower",
                              cmap="viridis")
                    ax.set_title(f"{CLASSES[int(t)]} {int(store.objects['object_id'][pick[col]])}",
                                 fontsize=7)
    fig.suptitle(f"{spec.kind} images (flux channel; x: time, y: "
                 f"{'wavelength' if spec.kind == 'heatmap' else 'band'})", fontsize=9)
    _save(fig, path)


def evaluate(checkpoints, store_path, out_dir) -> dict:
    """Predictions, metrics.json, plots and a Markdown report for a store (types known)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = _as_list(checkpoints)
    pred = predict_store(checkpoints, store_path, embeddings=True)
    from snia.taxonomy import INDEX

    labelled = pred["type"] != INDEX["unknown"]
    y = (pred["type"][labelled] == INDEX["Ia"]).astype(int)
    p = pred["p_ia"][labelled]
    result = metrics(y, p)
    if "classes" in pred:
        result["classes"] = pred["classes"]
        result["weighted_log_loss"], result["log_loss_objects"] = weighted_log_loss(
            pred["type"][labelled], pred["class_probs"][labelled], pred["classes"])
    write_predictions(out / "predictions.csv", pred)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    plots = {"roc.png": lambda f: plot_roc(y, p, f),
             "purity_completeness.png": lambda f: plot_purity_completeness(y, p, f),
             "p_ia_by_type.png": lambda f: plot_probability_histograms(p, pred["type"][labelled], f),
             "confusion.png": lambda f: plot_confusion(y, p, f),
             "tsne.png": lambda f: plot_tsne(pred["embedding"][labelled], pred["type"][labelled], f),
             "gallery.png": lambda f: plot_gallery(store_path, pred["spec"], f)}
    for name, draw in plots.items():
        draw(out / name)
    names = ", ".join(Path(c).parent.name + "/" + Path(c).name for c in checkpoints)
    lines = [f"# snia evaluation of {names} on {Path(store_path).name}", "",
             f"AUC {result['auc']:.4f}; at P(Ia) >= 0.5: purity {result['at_0.5']['purity']:.3f}, "
             f"completeness {result['at_0.5']['completeness']:.3f}", ""]
    lines += [f"![{name}]({name})" for name in plots]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return result


def classify(checkpoints, inputs, out_csv, fmt: str | None = None, metadata=(), survey=None) -> int:
    """P(Ia) for every object of a store, or of raw survey files (ingested to a temporary store
    first, with the default checks). Returns the number of objects classified."""
    import tempfile

    import h5py

    inputs = [Path(p) for p in inputs]
    is_store = len(inputs) == 1 and inputs[0].is_file() and h5py.is_hdf5(inputs[0])
    with tempfile.TemporaryDirectory() as tmp:
        store = inputs[0]
        if not is_store:
            from snia.ingest import run_ingest

            if fmt is None:
                raise ValueError("raw input needs --format (plasticc, snana-fits or snana-text)")
            store = Path(tmp) / "input.h5"
            run_ingest(fmt, inputs, store, metadata, survey=survey, progress=False)
        pred = predict_store(checkpoints, store)
    write_predictions(out_csv, pred)
    return len(pred["object_id"])
