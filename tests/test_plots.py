"""The figures (snia.plots), read back from the figure objects before they are written: what each
panel draws is checked against values computed here by hand or with scikit-learn, and every file
is a PNG of the shared width."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

import snia.gallery as gallery
import snia.plots as plots
from snia.raster import RasterSpec
from snia.taxonomy import INDEX

# the example of test_metrics: at P(Ia) >= 0.5, TP 2, FP 1, FN 1, TN 1
Y = np.array([1, 1, 1, 0, 0])
P = np.array([0.9, 0.8, 0.3, 0.7, 0.2])


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions make, kept open for reading (and still written)."""
    kept = []

    def keep(fig, path):
        kept.append(fig)
        fig.savefig(path, dpi=plots.DPI)

    monkeypatch.setattr(plots, "save", keep)
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def png_width(path) -> int:
    from matplotlib.image import imread

    return imread(path).shape[1]


def test_roc_draws_scikit_learns_curve_its_auc_and_the_marked_threshold(figures, tmp_path):
    plots.plot_roc({"cnn": (Y, P)}, tmp_path / "roc.png", points={"cnn": [(0.5, "P(Ia) >= 0.5")]})
    ax = figures[0].axes[0]
    curve, marker = ax.lines[0], ax.lines[1]
    fpr, tpr, _ = roc_curve(Y, P)
    np.testing.assert_allclose(curve.get_xdata(), fpr)
    np.testing.assert_allclose(curve.get_ydata(), tpr)
    assert curve.get_label() == "cnn (AUC 0.833)"  # 5 of the 6 (Ia, non-Ia) pairs ordered
    # at 0.5: FPR = FP / (FP + TN) = 1/2, TPR = TP / (TP + FN) = 2/3
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == pytest.approx((0.5, 2 / 3))
    assert marker.get_label() == "P(Ia) >= 0.5"
    assert png_width(tmp_path / "roc.png") == round(plots.FIG_WIDTH * plots.DPI)


def test_purity_completeness_and_fom_against_the_threshold(figures, tmp_path):
    plots.plot_purity_completeness(Y, P, tmp_path / "pc.png")
    purity, completeness, fom = figures[0].axes[0].lines[:3]
    # thresholds 0.9, 0.8, 0.7, 0.3, 0.2 (each score): called Ia 1, 2, 3, 4, 5 objects
    np.testing.assert_allclose(sorted(purity.get_xdata()), [0.2, 0.3, 0.7, 0.8, 0.9])
    order = np.argsort(purity.get_xdata())[::-1]
    np.testing.assert_allclose(purity.get_ydata()[order], [1, 1, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(completeness.get_ydata()[order], [1 / 3, 2 / 3, 2 / 3, 1, 1])
    # FoM = completeness x TP / (TP + 3 FP)
    np.testing.assert_allclose(fom.get_ydata()[order], [1 / 3, 2 / 3, 4 / 15, 1 / 2, 1 / 3])
    assert [line.get_label() for line in (purity, completeness, fom)] == \
        ["purity", "completeness", "FoM (W = 3)"]


def test_a_surveys_curves_are_drawn_through_a_few_thousand_of_their_exact_points(figures, tmp_path):
    """200,000 objects: the ROC and the purity curve are drawn through at most CURVE_POINTS of
    their vertices, evenly spaced, both ends kept, each one a vertex of the exact curve."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200_000)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, len(y)), 0, 1)
    plots.plot_roc({"cnn": (y, p)}, tmp_path / "roc.png")
    plots.plot_purity_completeness(y, p, tmp_path / "pc.png")
    fpr, tpr, _ = roc_curve(y, p)
    assert len(fpr) > 10 * plots.CURVE_POINTS  # the exact curve: a vertex per few objects
    drawn = figures[0].axes[0].lines[0]
    x, yy = drawn.get_xdata(), drawn.get_ydata()
    assert len(x) == plots.CURVE_POINTS and (x[0], yy[0], x[-1], yy[-1]) == (fpr[0], tpr[0], 1.0, 1.0)
    keep = np.linspace(0, len(fpr) - 1, plots.CURVE_POINTS).astype(np.int64)
    np.testing.assert_array_equal(x, fpr[keep])
    np.testing.assert_array_equal(yy, tpr[keep])
    purity = figures[1].axes[0].lines[0]
    thresholds, exact, _, _ = plots.threshold_curves(y, p)
    assert len(purity.get_xdata()) == plots.CURVE_POINTS
    assert purity.get_xdata()[-1] == thresholds[-1] and purity.get_ydata()[-1] == exact[-1]
    np.testing.assert_array_equal(purity.get_ydata(), exact[np.linspace(0, len(exact) - 1,
                                                                        plots.CURVE_POINTS).astype(np.int64)])


def test_confusion_cells_hold_counts_and_shares_of_the_true_class(figures, tmp_path):
    plots.plot_confusion(Y, P, tmp_path / "c.png")
    ax = figures[0].axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    # rows: true non-Ia (TN 1, FP 1), true Ia (FN 1, TP 2)
    assert cells == {(0, 0): "1\n50.0 %", (0, 1): "1\n50.0 %", (1, 0): "1\n33.3 %",
                     (1, 1): "2\n66.7 %"}
    assert ax.get_title() == "confusion at P(Ia) >= 0.50"


def test_text_on_a_cell_is_whichever_of_black_and_white_reads():
    assert plots.text_color((0.0, 0.0, 0.3, 1.0)) == "white"  # dark blue
    assert plots.text_color((1.0, 1.0, 0.9, 1.0)) == "black"
    assert plots.text_color((0.0, 0.7, 0.0, 1.0)) == "black"  # luminance 0.50: light enough


def test_probability_histograms_one_per_type_counted_in_the_legend(figures, tmp_path):
    types = np.array([INDEX["Ia"]] * 3 + [INDEX["II"]] * 2)
    plots.plot_probability_histograms(P, types, tmp_path / "h.png")
    labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert labels == ["Ia (3)", "II (2)"]


def test_reliability_bins_and_the_brier_score(figures, tmp_path):
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.15, 0.9, 0.6])
    plots.plot_reliability({"cnn": (y, p)}, tmp_path / "r.png", n_bins=2)
    top, bottom = figures[0].axes
    # Brier: (0.01 + 0.0225 + 0.01 + 0.16) / 4 = 0.050625
    assert any(t.get_text() == "cnn (Brier 0.0506)" for t in top.get_legend().get_texts())
    # bins [0, 0.5): mean P 0.125, no Ia; [0.5, 1]: mean P 0.75, all Ia; two objects each
    line = [ln for ln in top.lines if ln.get_label() != "perfectly calibrated"][0]
    np.testing.assert_allclose(line.get_xdata(), [0.125, 0.75])
    np.testing.assert_allclose(line.get_ydata(), [0.0, 1.0])
    assert [bar.get_height() for bar in bottom.patches] == [2, 2]


def test_feature_importance_shows_the_top_ones_largest_on_top(figures, tmp_path):
    importance = [(0.1, "a"), (0.5, "b"), (0.3, "c"), (0.05, "d")]
    plots.plot_feature_importance(importance, tmp_path / "f.png", top=3)
    ax = figures[0].axes[0]
    assert [bar.get_width() for bar in ax.patches] == [0.1, 0.3, 0.5]  # barh draws bottom up
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "c", "b"]
    assert ax.get_title() == "random forest: the 3 most important features"


def test_early_classification_curves_and_the_whole_curves_dashed(figures, tmp_path):
    rows = [{"days": 0, "auc": 0.6, "purity": 0.5, "completeness": 0.4},
            {"days": 10, "auc": 0.7, "purity": 0.6, "completeness": 0.5},
            {"days": "all", "auc": 0.9, "purity": 0.8, "completeness": 0.7}]
    plots.plot_early(rows, tmp_path / "e.png")
    ax = figures[0].axes[0]
    solid = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert [list(ln.get_ydata()) for ln in solid] == [[0.6, 0.7], [0.5, 0.6], [0.4, 0.5]]
    assert all(list(ln.get_xdata()) == [0, 10] for ln in solid)
    assert [ln.get_ydata()[0] for ln in dashed] == [0.9, 0.8, 0.7]


def test_redshift_captions_prefer_the_spectroscopic_redshift():
    meta = {"specz": np.array([0.31, np.nan, -9.0]), "hostgal_photoz": np.array([0.2, 0.45, np.nan]),
            "hostgal_photoz_err": np.array([0.01, 0.05, np.nan])}
    assert [gallery.redshift_text(meta, i) for i in range(3)] == [
        "z = 0.310 (spectroscopic)", "host photo-z 0.450 ± 0.050", "redshift unknown"]


def test_gallery_and_mistakes_draw_the_images_of_the_stores_objects(small_store, figures, tmp_path):
    from snia.raster import rasterize_numpy, spec_for_store
    from snia.store import Store

    with Store(small_store) as store:
        spec = spec_for_store(store, "bands")
        types = store.objects["type"]
        ids = store.objects["object_id"]
        first = store.batch(np.array([0]))
    gallery.plot_gallery(small_store, spec, tmp_path / "g.png", per_type=2, backend="numpy")
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_title()]
    assert len(titles) == sum(min(2, int(np.sum(types == t))) for t in np.unique(types))
    assert all(int(t.split()[-1]) in set(ids.tolist()) for t in titles)
    gallery.plot_mistakes(small_store, [(int(ids[0]), "false positive")], spec, tmp_path / "m.png",
                        "mistakes")
    image = [ax for ax in figures[1].axes if ax.images][0].images[0]
    np.testing.assert_allclose(image.get_array(), rasterize_numpy(first, spec).images[0, 0])
    assert image.get_extent() == [-spec.t_before, spec.t_after, 0, len(spec.bands)]
    assert png_width(tmp_path / "m.png") == round(plots.FIG_WIDTH * plots.DPI)


def test_image_extent_is_days_by_bands_or_wavelengths():
    assert gallery._image_extent(RasterSpec(kind="bands", bands=(0, 2))) == (-50.0, 130.0, 0, 2)
    assert gallery._image_extent(RasterSpec(kind="heatmap")) == (-50.0, 130.0, 3000.0, 11000.0)
