"""The figures of an evaluation, shared by the CNN's evaluation, the baseline, the report and the
scaling runs: ROC and purity/completeness/FoM against the threshold (with bootstrap bands when
given), P(Ia) per true type, confusion matrices (counts and percentages), the reliability diagram,
the forest's feature importance, a t-SNE of embeddings, a gallery of the images the CNN sees and
the mistakes (light curve and image of the most confident false positives and negatives).

One style for all (``pyplot()`` sets it): every figure is ``FIG_WIDTH`` inches wide, so a report
that shows them at column width shows text at one size. matplotlib is imported inside
``pyplot()`` (it is slow to import and only plots need it).
"""

from __future__ import annotations

import numpy as np

from snia.metrics import auc, brier_score, confusion_at, reliability, threshold_curves
from snia.raster import rasterize, rasterize_numpy, to_host
from snia.store import Store
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


# ---------------------------------------------------------------------------- images


def _image_extent(spec):
    top = len(spec.bands) if spec.kind == "bands" else spec.wave_max
    bottom = 0 if spec.kind == "bands" else spec.wave_min
    return (-spec.t_before, spec.t_after, bottom, top)


def _image_axes(ax, spec, band_names) -> None:
    if spec.kind == "bands":
        ax.set_yticks(np.arange(len(spec.bands)) + 0.5, [band_names[b] for b in spec.bands])
    ax.grid(False)


def plot_gallery(store_path, spec, path, per_type: int = 4, seed: int = 0,
                 backend: str = "auto") -> None:
    """A few example images per true type (the flux channel, as the CNN sees it), on one colour
    scale with its colour bar (``backend``: "numpy" draws a few images without compiling)."""
    plt = pyplot()
    rng = np.random.default_rng(seed)
    with Store(store_path) as store:
        types = store.objects["type"]
        present = [t for t in np.unique(types)]
        picks, images = [], []
        for t in present:
            members = np.flatnonzero(types == t)
            pick = np.sort(rng.choice(members, min(per_type, len(members)), replace=False))
            picks.append(pick)
            images.append(to_host(rasterize(store.batch(pick), spec, backend).images)[:, 0])
        ids = store.objects["object_id"]
    limit = max(float(np.percentile(np.abs(np.concatenate([i.ravel() for i in images])), 99.5)),
                1e-6)
    fig, axes = plt.subplots(len(present), per_type, squeeze=False, layout="constrained",
                             figsize=(FIG_WIDTH, 1.4 * len(present) + 0.8))
    shown = None
    for row, t in enumerate(present):
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            if col < len(picks[row]):
                shown = ax.imshow(images[row][col].astype(np.float32), aspect="auto",
                                  origin="lower", cmap=IMAGE_CMAP, vmin=-limit, vmax=limit,
                                  extent=_image_extent(spec))
                ax.set_title(f"{CLASSES[int(t)]} {int(ids[picks[row][col]])}", fontsize=8)
            else:
                ax.axis("off")
    if shown is not None:
        fig.colorbar(shown, ax=axes.ravel().tolist(), label="flux / peak flux", shrink=0.6)
    fig.suptitle(f"{spec.kind} images (flux channel; x: {spec.t_before + spec.t_after:.0f} days, "
                 f"y: {'wavelength' if spec.kind == 'heatmap' else 'band'})", fontsize=10)
    save(fig, path)


def redshift_text(meta: dict, i: int) -> str:
    specz = float(meta["specz"][i]) if "specz" in meta else float("nan")
    photoz = float(meta["hostgal_photoz"][i])
    if np.isfinite(specz) and specz > 0:
        return f"z = {specz:.3f} (spectroscopic)"
    if np.isfinite(photoz):
        err = float(meta["hostgal_photoz_err"][i])
        return f"host photo-z {photoz:.3f}" + (f" ± {err:.3f}" if np.isfinite(err) else "")
    return "redshift unknown"


def plot_mistakes(store_path, objects, spec, path, title: str) -> None:
    """One row per object: its light curve (flux with errors, per band, in days from the image's
    reference time) and its image as the CNN sees it (flux channel, with a colour bar).
    ``objects``: [(object_id, caption), ...]; the redshift is added to each caption."""
    plt = pyplot()
    from matplotlib import colormaps

    with Store(store_path) as store:
        index = np.array([store.index_of(int(oid)) for oid, _ in objects], dtype=np.int64)
        batch = store.batch(index)
        registry = store.bands
    drawn = rasterize_numpy(batch, spec)  # the reference: a handful of objects, no compilation
    images, t_ref = to_host(drawn.images)[:, 0], to_host(drawn.t_ref)
    fig = plt.figure(figsize=(FIG_WIDTH, 2.7 * len(objects) + 0.4), layout="constrained")
    rows = fig.subfigures(len(objects), 1, squeeze=False)[:, 0]
    wave = np.array([b.wavelength for b in registry.bands])
    colors = colormaps["turbo"]
    for row, (_, caption) in enumerate(objects):
        lc = batch.lightcurve(row)
        left, right = rows[row].subplots(1, 2, width_ratios=(1.35, 1))
        rows[row].suptitle(f"{caption}; {redshift_text(batch.meta, row)}", fontsize=9)
        for b in np.unique(lc["band"]):
            pick = lc["band"] == b
            frac = (wave[b] - 3000.0) / 8000.0
            left.errorbar(lc["time"][pick] - t_ref[row], lc["flux"][pick], lc["flux_err"][pick],
                          fmt="o", ms=3, lw=1, color=colors(0.1 + 0.8 * np.clip(frac, 0, 1)),
                          label=registry.bands[b].name)
        left.axvspan(-spec.t_before, spec.t_after, color="grey", alpha=0.08, lw=0)
        left.set(xlabel="days from the image's reference time", ylabel="flux")
        left.legend(fontsize=7, ncols=2)
        image = images[row].astype(np.float32)
        limit = max(float(np.abs(image).max()), 1e-6)
        shown = right.imshow(image, aspect="auto", origin="lower", cmap=IMAGE_CMAP, vmin=-limit,
                             vmax=limit, extent=_image_extent(spec))
        _image_axes(right, spec, [b.name for b in registry.bands])
        right.set(xlabel="days from reference time" + (" (rest frame)" if spec.rest_frame else ""),
                  ylabel="band" if spec.kind == "bands" else "wavelength (A)")
        rows[row].colorbar(shown, ax=right, label="flux / peak flux")
    fig.suptitle(title, fontsize=11)
    save(fig, path)
