"""A picture of one object: its light curve next to its images (the flux channel of each kind)."""

from __future__ import annotations

import numpy as np

from snia.raster.files import spec_for_store
from snia.raster.reference import rasterize_numpy
from snia.raster.spec import KINDS


def plot_object(store, object_id: int, path, kinds=KINDS) -> None:
    """One object's light curve next to its images (flux channel), saved to ``path`` (PNG/PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = store.index_of(object_id)
    batch = store.batch(np.array([index]))
    lc = batch.lightcurve(0)
    registry = store.bands
    fig, axes = plt.subplots(1, 1 + len(kinds), figsize=(5 + 4 * len(kinds), 3.6))
    for band in np.unique(lc["band"]):
        pick = lc["band"] == band
        axes[0].errorbar(lc["time"][pick], lc["flux"][pick], lc["flux_err"][pick], fmt="o", ms=3,
                         label=registry.bands[band].name)
    axes[0].set(xlabel="MJD", ylabel="flux", title=f"object {object_id}")
    axes[0].legend(fontsize=7)
    for ax, kind in zip(axes[1:], kinds):
        spec = spec_for_store(store, kind)
        image = rasterize_numpy(batch, spec).images[0, 0]  # the reference: one object, no setup
        rows = ([registry.bands[b].name for b in spec.bands] if kind == "bands" else None)
        extent = (-spec.t_before, spec.t_after,
                  (len(spec.bands) if kind == "bands" else spec.wave_max),
                  (0 if kind == "bands" else spec.wave_min))
        shown = ax.imshow(image, aspect="auto", cmap="RdBu_r", extent=extent,
                          vmin=-np.abs(image).max(), vmax=np.abs(image).max())
        if rows:
            ax.set_yticks(np.arange(len(rows)) + 0.5, rows)
        ax.set(xlabel="days from reference time",
               ylabel="band" if kind == "bands" else "wavelength (A)", title=f"{kind} image (flux)")
        fig.colorbar(shown, ax=ax, label="flux / peak flux")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
