"""The figures of an evaluation, shared by the CNN's evaluation, the baseline, the report and the
scaling runs: ROC and purity/completeness/FoM against the threshold (with bootstrap bands when
given), P(Ia) per true type, confusion matrices (counts and percentages), the reliability diagram,
the forest's feature importance, a t-SNE of embeddings. The figures of images (the gallery of what
the CNN sees, its mistakes) are ``snia.gallery``'s.

One style for all (``pyplot()`` sets it): every figure is ``FIG_WIDTH`` inches wide, so a report
that shows them at column width shows text at one size. matplotlib is imported inside
``pyplot()`` (it is slow to import and only plots need it).
"""

from __future__ import annotations

import numpy as np

from snia.metrics import auc, brier_score, confusion_at, reliability, threshold_curves
from snia.taxonomy import CLASSES

FIG_WIDTH = 9.0  # inches, every figure: shown at column width, text keeps one size
DPI = 110
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "figure.dpi": DPI}
IMAGE_CMAP = "RdBu_r"  # flux / peak flux: diverging, white at zero, symmetric limits
CURVE_POINTS = 4000  # vertices drawn of a curve at most (computed from every object): ~4 a pixel


def thinned(*arrays, limit: int = CURVE_POINTS) -> tuple:
    """At most ``limit`` evenly spaced points (the first and last kept) of equally long arrays:
    a survey's ROC has a vertex per object, and drawing millions costs memory, not detail."""
    n = len(arrays[0])
    keep = slice(None) if n <= limit else np.unique(np.linspace(0, n - 1, limit).astype(np.int64))
    return tuple(np.asarray(a)[keep] for a in arrays)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed on cluster nodes),
    in snia's figure style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def save(fig, path) -> None:
    """Lay out (unless the figure has a layout engine), write (PNG at DPI) and close a figure."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


# ---------------------------------------------------------------------------- ROC and thresholds


def draw_roc(ax, curves: dict, bands: dict | None = None, points: dict | None = None,
             title: str = "ROC") -> None:
    """ROC curves on ``ax``: ``curves`` label -> (y, P(Ia)); ``bands`` label -> (fpr grid, lower,
    upper true-positive rate); ``points`` label -> [(threshold, text), ...] marked on the curve."""
    from sklearn.metrics import roc_curve

    for k, (label, (y, p)) in enumerate(curves.items()):
        color = f"C{k}"
        fpr, tpr = thinned(*roc_curve(y, p)[:2])
        ax.plot(fpr, tpr, color=color, label=f"{label} (AUC {auc(y, p):.3f})")
        if bands and label in bands:
            grid, lo, hi = bands[label]
            ax.fill_between(grid, lo, hi, color=color, alpha=0.25, lw=0,
                            label=f"{label}: 68 % bootstrap band")
        for marker, (t, text) in zip("os^", (points or {}).get(label, [])):
            c = confusion_at(np.asarray(y), np.asarray(p), t)
            if c["fp"] + c["tn"] and c["tp"] + c["fn"]:
                ax.plot(c["fp"] / (c["fp"] + c["tn"]), c["tp"] / (c["tp"] + c["fn"]), marker,
                        color=color, mec="black", ms=7, clip_on=False, zorder=5, label=text)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (completeness)", title=title,
           xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")


def plot_roc(curves: dict, path, title: str = "ROC", bands: dict | None = None,
             points: dict | None = None) -> None:
    """ROC curves of one or more classifiers: ``curves`` maps a label to (y, P(Ia)) (see
    ``draw_roc`` for ``bands`` and ``points``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_WIDTH * 0.55))
    draw_roc(ax, curves, bands, points, title)
    save(fig, path)


def plot_early(rows: list[dict], path, title: str = "early classification") -> None:
    """AUC, and purity and completeness at the best-FoM threshold, against the days after the
    first detection the light curves were cut at (``rows``: metrics.json's ``early``; the whole
    light curves drawn at the right, dashed)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_WIDTH * 0.5))
    cut = [r for r in rows if r["days"] != "all"]
    whole = [r for r in rows if r["days"] == "all"]
    days = [r["days"] for r in cut]
    for k, (key, label) in enumerate((("auc", "AUC"), ("purity", "purity at the best FoM"),
                                      ("completeness", "completeness at the best FoM"))):
        ax.plot(days, [r[key] for r in cut], "o-", color=f"C{k}", label=label)
        for r in whole:
            ax.axhline(r[key], color=f"C{k}", ls="--", lw=1)
    ax.set(xlabel="days after the first detection (dashed: whole light curves)",
           ylabel="AUC, purity, completeness", ylim=(0, 1.02), title=title)
    ax.legend(loc="lower right", fontsize=8)
    save(fig, path)


def draw_purity_completeness(ax, y, p, band=None, marks=()) -> None:
    """Purity, completeness and FoM against the P(Ia) threshold on ``ax``; ``band``: (threshold
    grid, {"purity"|"completeness"|"fom": (lower, upper)}); ``marks``: [(threshold, text)] drawn
    as vertical lines."""
    thresholds, purity, completeness, fom = thinned(*threshold_curves(np.asarray(y), np.asarray(p)))
    for k, (name, values) in enumerate((("purity", purity), ("completeness", completeness),
                                        ("fom", fom))):
        label = "FoM (W = 3)" if name == "fom" else name
        ax.plot(thresholds, values, color=f"C{k}", label=label)
        if band is not None:
            grid, limits = band
            lo, hi = limits[name]
            ax.fill_between(grid, lo, hi, color=f"C{k}", alpha=0.25, lw=0)
    for (t, text), ls in zip(marks, ("--", ":", "-.")):
        ax.axvline(t, color="black", ls=ls, lw=1, label=text)
    ax.set(xlabel="P(Ia) threshold (called Ia: P(Ia) >= threshold)",
           ylabel="purity, completeness, FoM", xlim=(0, 1), ylim=(0, 1.02),
           title="the Ia sample against the threshold")
    ax.legend(loc="best", fontsize=8)


def plot_purity_completeness(y, p, path, band=None, marks=()) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_WIDTH * 0.5))
    draw_purity_completeness(ax, y, p, band, marks)
    save(fig, path)


def plot_curves(y, p, path, label: str, roc_band=None, pc_band=None, marks=()) -> None:
    """One classifier's ROC (left) and purity/completeness/FoM against the threshold (right),
    with bootstrap bands; ``marks``: [(threshold, text)] shown on both."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(FIG_WIDTH, FIG_WIDTH * 0.45))
    draw_roc(left, {label: (y, p)}, {label: roc_band} if roc_band is not None else None,
             {label: list(marks)}, title=f"{label}: ROC")
    draw_purity_completeness(right, y, p, pc_band, marks)
    save(fig, path)


# ---------------------------------------------------------------------------- distributions


def plot_probability_histograms(p, types, path, marks=()) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_WIDTH * 0.45))
    for t in np.unique(types):
        ax.hist(p[types == t], bins=np.linspace(0, 1, 26), histtype="step", lw=1.5,
                label=f"{CLASSES[int(t)]} ({int(np.sum(types == t))})", density=True)
    for (t, text), ls in zip(marks, ("--", ":", "-.")):
        ax.axvline(t, color="black", ls=ls, lw=1, label=text)
    ax.set(xlabel="P(Ia)", ylabel="density (each type's histogram has area 1)",
           title="P(Ia) per true type (objects)", xlim=(0, 1))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save(fig, path)


def text_color(rgba) -> str:
    """Black or white, whichever reads on a cell of colour ``rgba`` (by its luminance)."""
    r, g, b = rgba[:3]
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else "black"


def plot_confusions(y, p, path, thresholds) -> None:
    """Confusion matrices at each (threshold, title): counts and the percentage of the true class
    in each cell, cells coloured by that percentage."""
    plt = pyplot()
    cmap = plt.get_cmap("Blues")
    fig, axes = plt.subplots(1, len(thresholds), squeeze=False,
                             figsize=(FIG_WIDTH, FIG_WIDTH * 0.4), layout="constrained")
    for ax, (t, title) in zip(axes[0], thresholds):
        c = confusion_at(np.asarray(y), np.asarray(p), t)
        matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        rows = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
        shown = ax.imshow(share, cmap=cmap, vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, f"{v:,}\n{100 * share[i, j]:.1f} %", ha="center", va="center",
                    color=text_color(cmap(share[i, j])), fontsize=11)
        ax.set_xticks([0, 1], ["non-Ia", "Ia"])
        ax.set_yticks([0, 1], ["non-Ia", "Ia"])
        ax.grid(False)
        ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(shown, ax=axes[0].tolist(), label="share of the true class", shrink=0.9)
    save(fig, path)


def plot_confusion(y, p, path, threshold: float = 0.5) -> None:
    plot_confusions(y, p, path, [(threshold, f"confusion at P(Ia) >= {threshold:.2f}")])


def plot_reliability(curves: dict, path, n_bins: int = 10) -> None:
    """Reliability diagram: the fraction of Ia against mean P(Ia) in bins of P(Ia), for each
    label -> (y, P(Ia)) (e.g. before and after calibration), with binomial errors; below, how
    many objects each bin holds. The Brier score is in each label."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, height_ratios=(3, 1),
                                      figsize=(FIG_WIDTH, FIG_WIDTH * 0.55))
    top.plot([0, 1], [0, 1], ls=":", c="grey", label="perfectly calibrated")
    width = 1 / n_bins / (len(curves) + 1)
    for k, (label, (y, p)) in enumerate(curves.items()):
        r = reliability(y, p, n_bins)
        top.errorbar(r["p_mean"], r["fraction_ia"], r["error"], fmt="o-", ms=4, capsize=2,
                     color=f"C{k}", label=f"{label} (Brier {brier_score(y, p):.4f})")
        centres = (r["edges"][:-1] + r["edges"][1:]) / 2
        bottom.bar(centres[r["bin"]] + (k - (len(curves) - 1) / 2) * width, r["count"],
                   width=width, color=f"C{k}")
    top.set(ylabel="fraction that are Ia", xlim=(0, 1), ylim=(-0.02, 1.02),
            title="reliability: is P(Ia) a probability?")
    top.legend(loc="upper left")
    bottom.set(xlabel=f"P(Ia) (above: bin means; bins of width {1 / n_bins:g})", ylabel="objects")
    save(fig, path)


def plot_feature_importance(importance, path, top: int = 20) -> None:
    """The forest's ``top`` most important features: ``importance`` is [(value, name), ...]."""
    plt = pyplot()
    rows = sorted(importance, reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.9 + 0.28 * len(rows)))
    ax.barh([name for _, name in rows], [value for value, _ in rows], color="C0")
    ax.set(xlabel="mean decrease in impurity (sums to 1 over all features)",
           title=f"random forest: the {len(rows)} most important features")
    ax.grid(axis="y", visible=False)
    save(fig, path)


def plot_tsne(embedding, types, path, seed: int = 0, max_points: int = 3000) -> None:
    """t-SNE of CNN embeddings by true type (at most ``max_points``; ``evaluate.tsne_sample``)."""
    from sklearn.manifold import TSNE

    plt = pyplot()
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(types))[:max_points]
    xy = TSNE(n_components=2, init="pca", random_state=seed,
              perplexity=min(30.0, max(2.0, (len(pick) - 1) / 3))).fit_transform(embedding[pick])
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_WIDTH * 0.7))
    for t in np.unique(types[pick]):
        sel = types[pick] == t
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, label=CLASSES[int(t)])
    ax.set(title=f"t-SNE of CNN embeddings ({len(pick):,} objects)", xticks=[], yticks=[])
    ax.legend(markerscale=3, fontsize=8)
    save(fig, path)
