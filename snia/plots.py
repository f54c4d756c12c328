"""The figures of an evaluation, shared by the CNN's evaluation, the baseline, the report and the
scaling runs: ROC, purity/completeness/FoM against the threshold, P(Ia) per true type, the
confusion matrix, a t-SNE of embeddings and a gallery of the images the CNN sees.

matplotlib is imported inside ``pyplot()`` (it is slow to import and only plots need it).
"""

from __future__ import annotations

import numpy as np

from snia.metrics import auc, confusion_at, threshold_curves
from snia.raster import rasterize, to_host
from snia.store import Store
from snia.taxonomy import CLASSES


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed on cluster nodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> None:
    """Lay out, write (PNG at 110 dpi) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(curves: dict, path, title: str = "ROC") -> None:
    """ROC curves of one or more classifiers: ``curves`` maps a label to (y, P(Ia))."""
    from sklearn.metrics import roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for label, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (completeness)", title=title)
    ax.legend()
    save(fig, path)


def plot_purity_completeness(y, p, path) -> None:
    plt = pyplot()
    thresholds, purity, completeness, fom = threshold_curves(np.asarray(y), np.asarray(p))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(thresholds, purity, label="purity")
    ax.plot(thresholds, completeness, label="completeness")
    ax.plot(thresholds, fom, label="FoM (W=3)")
    ax.set(xlabel="P(Ia) threshold", ylim=(0, 1.02), title="Ia sample vs threshold")
    ax.legend()
    save(fig, path)


def plot_probability_histograms(p, types, path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for t in np.unique(types):
        ax.hist(p[types == t], bins=np.linspace(0, 1, 26), histtype="step", lw=1.5,
                label=f"{CLASSES[int(t)]} ({int(np.sum(types == t))})", density=True)
    ax.set(xlabel="P(Ia)", ylabel="density", title="P(Ia) per true type")
    ax.legend(fontsize=8)
    save(fig, path)


def plot_confusion(y, p, path, threshold: float = 0.5) -> None:
    plt = pyplot()
    c = confusion_at(np.asarray(y), np.asarray(p), threshold)
    matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks([0, 1], ["non-Ia", "Ia"])
    ax.set_yticks([0, 1], ["non-Ia", "Ia"])
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion at P(Ia) >= {threshold:.2f}")
    save(fig, path)


def plot_tsne(embedding, types, path, seed: int = 0, max_points: int = 3000) -> None:
    """t-SNE of the CNN's penultimate embeddings, coloured by true type."""
    from sklearn.manifold import TSNE

    plt = pyplot()
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
    save(fig, path)


def plot_gallery(store_path, spec, path, per_type: int = 4, seed: int = 0) -> None:
    """A few example images per true type (the flux channel, as the CNN sees it)."""
    plt = pyplot()
    rng = np.random.default_rng(seed)
    with Store(store_path) as store:
        types = store.objects["type"]
        present = [t for t in np.unique(types)]
        fig, axes = plt.subplots(len(present), per_type, squeeze=False,
                                 figsize=(2.4 * per_type, 1.5 * len(present) + 0.4))
        for row, t in enumerate(present):
            members = np.flatnonzero(types == t)
            pick = np.sort(rng.choice(members, min(per_type, len(members)), replace=False))
            images = to_host(rasterize(store.batch(pick), spec, "auto").images)
            for col, ax in enumerate(axes[row]):
                ax.set_xticks([]), ax.set_yticks([])
                if col < len(pick):
                    ax.imshow(images[col, 0].astype(np.float32), aspect="auto", origin="lower",
                              cmap="viridis")
                    ax.set_title(f"{CLASSES[int(t)]} {int(store.objects['object_id'][pick[col]])}",
                                 fontsize=7)
    fig.suptitle(f"{spec.kind} images (flux channel; x: time, y: "
                 f"{'wavelength' if spec.kind == 'heatmap' else 'band'})", fontsize=9)
    save(fig, path)
