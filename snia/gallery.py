"""The figures of images, beside ``snia.plots`` (whose style and helpers they use): a gallery of
the images the CNN sees, a few objects of each type, and its mistakes (light curve and image of
the most confident false positives and negatives). Both read the store and draw the images
themselves, so they sit above the plots of numbers."""

from __future__ import annotations

import numpy as np

from snia import plots  # plots.save: one place writes every figure (tests catch it there)
from snia.plots import FIG_WIDTH, IMAGE_CMAP, pyplot
from snia.raster import rasterize, rasterize_numpy, to_host
from snia.store import Store
from snia.taxonomy import CLASSES


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
    plots.save(fig, path)


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
    plots.save(fig, path)
