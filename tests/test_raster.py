"""Rasterization: every backend against the NumPy reference, and the reference against hand values."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_batch

from snia.errors import ConfigError
from snia.lightcurve import Batch
from snia.raster import DEFAULT_KIND, RasterSpec, available_backends, rasterize, redshift_factor, to_host

SMALL = dict(t_before=10.0, t_after=14.0, n_time=12, n_wave=5, bands=(0, 2, 4))


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def check_against_reference(batch, spec, backend, seed):
    ref = rasterize(batch, spec, "numpy")
    poisoned = np.full((len(batch), *spec.shape), np.nan, dtype=np.float32)
    got = rasterize(batch, spec, backend, out=poisoned)
    images = to_host(got.images)
    assert np.isfinite(images).all(), f"seed {seed}: some output element was never written"
    assert rel_l2(images, ref.images) < 1e-5, f"seed {seed}"
    np.testing.assert_allclose(to_host(got.t_ref), ref.t_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(to_host(got.scale), ref.scale, rtol=1e-6)
    return ref


# Numba's CUDA simulator runs a few thousand threads per second: keep its cases tiny.
BACKEND_CASES = [("cpu", None), ("numba-cuda", SMALL)]


@pytest.mark.parametrize("kind", ["bands", "heatmap"])
@pytest.mark.parametrize("backend,geometry", BACKEND_CASES, ids=[b for b, _ in BACKEND_CASES])
def test_backend_matches_reference_on_random_light_curves(backend, geometry, kind):
    seed = int(np.random.default_rng().integers(1 << 31))
    rng = np.random.default_rng(seed)
    n = 40 if geometry is None else 3
    spec = RasterSpec(kind=kind, **(geometry or {}))
    # observed in the drawn bands, at least one each: three tiny objects otherwise give empty
    # images now and then (the edge cases have tests of their own)
    batch = make_batch(rng.integers(1, 80 if geometry is None else 12, n), seed, bands=spec.bands)
    ref = check_against_reference(batch, spec, backend, seed)
    assert np.count_nonzero(ref.images[:, 0]) > 0  # the comparison is not between empty images


EDGE_CASES = {
    "empty_object": ([0, 5, 0], {}),
    "single_observation": ([1], {}),
    "outside_the_window": ([6], {"span": 600.0}),
    "one_band_only": ([20, 15], {"bands": (3,)}),
}


@pytest.mark.parametrize("kind", ["bands", "heatmap"])
@pytest.mark.parametrize("backend,geometry", BACKEND_CASES, ids=[b for b, _ in BACKEND_CASES])
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases(case, backend, geometry, kind):
    lengths, options = EDGE_CASES[case]
    seed = int(np.random.default_rng().integers(1 << 31))
    batch = make_batch(lengths, seed, **options)
    check_against_reference(batch, RasterSpec(kind=kind, **(geometry or {})), backend, seed)


@pytest.mark.parametrize("kind", ["bands", "heatmap"])
@pytest.mark.parametrize("backend,geometry", BACKEND_CASES, ids=[b for b, _ in BACKEND_CASES])
def test_duplicate_times_and_extreme_fluxes(backend, geometry, kind):
    batch = make_batch([6], 1)
    batch.obs["time"][:] = 60005.0  # six observations at one time
    batch.obs["flux"][:3] = 3e30
    batch.obs["flux_err"][:3] = 1e29
    check_against_reference(batch, RasterSpec(kind=kind, **(geometry or {})), backend, 1)


@pytest.mark.parametrize("n", [1, 10_000])
def test_cpu_batch_sizes(n):
    seed = int(np.random.default_rng().integers(1 << 31))
    lengths = np.random.default_rng(seed).integers(0, 8, n)
    for kind in ("bands", "heatmap"):
        spec = RasterSpec(kind=kind, t_before=5, t_after=10, n_time=15, n_wave=4)
        check_against_reference(make_batch(lengths, seed, span=20), spec, "cpu", seed)


# ----------------------------------------------------------------------------- the reference itself


def one_object(times, bands, fluxes, errors):
    obs = {"time": np.asarray(times, float), "band": np.asarray(bands, np.int8),
           "flux": np.asarray(fluxes, np.float32), "flux_err": np.asarray(errors, np.float32),
           "flag": np.zeros(len(times), np.int32)}
    return Batch(np.array([1]), np.array([0, len(times)]), obs,
                 {"specz": np.array([1.0], np.float32), "hostgal_photoz": np.array([np.nan], np.float32)})


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_bands_pixel_is_the_inverse_variance_mean(backend):
    # Peak (largest f^2/sigma) is the 40-flux point at t=100 -> reference time 100, scale 40.
    batch = one_object([99.2, 99.7, 100.0, 103.5], [1, 1, 2, 1], [10, 20, 40, 5], [1, 2, 4, 1])
    out = rasterize(batch, RasterSpec(kind="bands", bands=(1, 2), n_time=180), backend)  # 1-day columns
    image, scale = out.images[0], out.scale[0]
    assert out.t_ref[0] == 100.0 and scale == 40.0
    col = 49  # [-1, 0) days: t = 99.2 and 99.7 in band 1
    w = np.array([1.0, 1 / 4])
    assert image[0, 0, col] == pytest.approx((10 * w[0] + 20 * w[1]) / w.sum() / 40)
    assert image[1, 0, col] == pytest.approx(1 / np.sqrt(w.sum()) / 40)
    assert image[2, 0, col] == 1.0
    assert image[:, 1, 50].tolist() == pytest.approx([1.0, 4 / 40, 1.0])  # band 2 at t = 100
    assert image[:, 0, 53].tolist() == pytest.approx([5 / 40, 1 / 40, 1.0])
    assert np.count_nonzero(image[2]) == 3 and np.count_nonzero(image[0]) == 3


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_heatmap_single_observation_at_a_pixel_centre(backend):
    # A lone point: every pixel it reaches has its flux and error (the weights cancel).
    spec = RasterSpec(kind="heatmap", bands=(0,), wavelengths=(5000.0,), n_wave=8, wave_min=3000,
                      wave_max=7000, sigma_wave=500.0, n_time=180)  # 1-day columns
    batch = one_object([200.5], [0], [50.0], [5.0])
    out = rasterize(batch, spec, backend)
    image = out.images[0]
    row, col = 4, 50  # wavelength bin [5000, 5500) centre 5250; time bin centre 0.5 d after t_ref
    assert out.t_ref[0] == 200.5
    assert image[0, row, col] == pytest.approx(1.0) and image[1, row, col] == pytest.approx(0.1)
    reach = np.nonzero(image[0])
    assert set(np.unique(reach[0])) == {1, 2, 3, 4, 5, 6}  # |dl| <= 3 sigma = 1500 A
    assert image[0, 0, col] == 0 and image[0, row, 40] == 0  # beyond the kernel support: empty


def test_rest_frame_halves_time_and_wavelength_at_z_1():
    batch = one_object([100.0, 120.0], [0, 0], [50, 10], [1, 1])
    spec = RasterSpec(kind="bands", bands=(0,), rest_frame=True, n_time=180)  # 1-day columns
    image = rasterize(batch, spec, "numpy").images[0]  # specz = 1 -> 1 + z = 2
    assert image[2, 0, 50] == 1 and image[2, 0, 60] == 1  # 20 observed days -> 10 rest-frame days
    spec = RasterSpec(kind="bands", bands=(0,), n_time=180)
    assert rasterize(batch, spec, "numpy").images[0][2, 0, 70] == 1


def test_redshift_factor_prefers_spec_z_then_photo_z():
    meta = {"specz": np.array([0.5, -9.0, np.nan, 0.0], np.float32),
            "hostgal_photoz": np.array([0.1, 0.25, np.nan, 0.3], np.float32)}
    rest = RasterSpec(rest_frame=True)
    np.testing.assert_allclose(redshift_factor(meta, 4, rest), [1.5, 1.25, 1.0, 1.3], rtol=1e-6)
    np.testing.assert_allclose(redshift_factor(meta, 4, rest, redshift=[1, 0, -1, np.inf]),
                               [2, 1, 1, 1])
    np.testing.assert_array_equal(redshift_factor(meta, 4, RasterSpec()), np.ones(4))


def test_one_default_kind():
    import inspect

    from snia.raster import rasterize_store, spec_for_store

    assert RasterSpec().kind == DEFAULT_KIND
    for fn in (spec_for_store, rasterize_store):
        assert inspect.signature(fn).parameters["kind"].default == DEFAULT_KIND


def test_first_detection_reference():
    batch = one_object([10.0, 20.0, 30.0], [0, 0, 0], [4.0, 30.0, 80.0], [1.0, 5.0, 1.0])
    assert rasterize(batch, RasterSpec(kind="bands", reference="first_detection"),
                     "numpy").t_ref[0] == 20.0  # first with f/sigma >= 5
    assert rasterize(batch, RasterSpec(kind="bands"), "numpy").t_ref[0] == 30.0


def test_auto_backend_and_bad_input():
    assert available_backends()[-2:] == ["cpu", "numpy"]
    batch = one_object([1.0], [12], [1.0], [1.0])
    with pytest.raises(ValueError, match="band index 12 has no wavelength"):
        rasterize(batch, RasterSpec(), "auto")
    with pytest.raises(ConfigError, match="image kind"):
        RasterSpec(kind="pixels")
    with pytest.raises(ConfigError, match=r"raster: empty time or wavelength range"):
        RasterSpec.from_dict({"t_before": 0, "t_after": 0})
    with pytest.raises(ConfigError, match=r"unknown image setting\(s\) \['n_tme'\]"):
        RasterSpec.from_dict({"n_tme": 3})


# ----------------------------------------------------------------------------- stores


@pytest.mark.parametrize("kind", ["bands", "heatmap"])
def test_rasterize_command_streams_the_store_in_batches(small_store, tmp_path, kind):
    import json

    import h5py

    from snia.cli import main
    from snia.raster import spec_for_store
    from snia.store import Store

    out = tmp_path / f"{kind}.h5"
    assert main(["rasterize", str(small_store), "-o", str(out), "--kind", kind, "--batch-size", "7",
                 "--backend", "cpu", "--no-progress"]) == 0
    with Store(small_store) as store, h5py.File(out, "r") as f:
        spec = spec_for_store(store, kind)
        assert spec.bands == (0, 1, 2, 3, 4, 5)  # the LSST bands the store holds
        ref = rasterize(store.batch(slice(0, len(store))), spec, "numpy")
        assert rel_l2(f["images"][...], ref.images) < 1e-5  # batches of 7 == one pass
        np.testing.assert_array_equal(f["object_id"][...], store.objects["object_id"])
        np.testing.assert_array_equal(f["scale"][...], ref.scale)
        assert json.loads(f.attrs["spec"])["kind"] == kind and f.attrs["backend"] == b"cpu"
        assert list(f["split"][...]) == [0] * len(store)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_plot_object_draws_the_light_curve_and_both_images(small_store, tmp_path):
    from matplotlib.image import imread

    from snia.raster import plot_object
    from snia.store import Store

    with Store(small_store) as store:
        plot_object(store, int(store.objects["object_id"][3]), tmp_path / "obj.png")
    image = imread(tmp_path / "obj.png")
    assert image.shape[1] > 2 * image.shape[0]  # three panels side by side
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_rasterize_reads_image_settings_from_the_config(small_store, tmp_path):
    import h5py

    from snia.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("raster:\n  n_time: 20\n  n_wave: 8\n")
    out = tmp_path / "h.h5"
    assert main(["rasterize", str(small_store), "-o", str(out), "--config", str(config),
                 "--backend", "cpu", "--no-progress"]) == 0
    with h5py.File(out, "r") as f:
        assert f["images"].shape == (25, 2, 8, 20)


@pytest.mark.parametrize("section, named", [
    ("n_tme: 20", "n_tme"),  # a typo
    ("kinds: [heatmap]", "kinds"),  # the workflow's image files are under `images:`, not here
    ("reference: max", "reference must be one of"),
    ("n_time: 0", "at least one row and one column"),
    ("n_time: many", "n_time"),
    ("wave_min: 9000\n  wave_max: 4000", "empty time or wavelength range"),
])
def test_a_bad_rasterize_config_is_one_line_naming_it(small_store, tmp_path, capsys, section, named):
    from snia.cli import EXIT_BAD_INPUT, main

    config = tmp_path / "c.yaml"
    config.write_text(f"raster:\n  {section}\n")
    assert main(["rasterize", str(small_store), "-o", str(tmp_path / "h.h5"), "--config",
                 str(config)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert str(config) in err and named in err, err
    assert not (tmp_path / "h.h5").exists()


def test_float16_output():
    batch = make_batch([30, 10], 4)
    spec = RasterSpec(kind="heatmap")
    full = rasterize(batch, spec, "cpu")
    half = rasterize(batch, spec, "cpu", dtype="float16")
    assert half.images.dtype == np.float16
    np.testing.assert_allclose(half.images, full.images, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="dtype must be one of"):
        rasterize(batch, spec, "cpu", dtype="int8")


@pytest.mark.parametrize("backend,geometry", BACKEND_CASES, ids=[b for b, _ in BACKEND_CASES])
def test_observations_may_carry_their_own_wavelengths(backend, geometry):
    # A redshift augmentation moves each observation's effective wavelength off its band's.
    seed = int(np.random.default_rng().integers(1 << 31))
    batch = make_batch([25, 14], seed)
    spec = RasterSpec(kind="heatmap", **(geometry or {}))
    batch.obs["wave"] = (np.asarray(spec.wavelengths)[batch.obs["band"]]
                         * np.random.default_rng(seed).uniform(1.0, 1.6, len(batch.obs["band"])))
    ref = check_against_reference(batch, spec, backend, seed)
    plain = rasterize(make_batch([25, 14], seed), spec, "numpy")
    assert rel_l2(ref.images, plain.images) > 1e-3  # the wavelengths were used


def test_shifted_wavelengths_equal_a_shifted_band_table():
    batch = make_batch([30], 5, bands=(2,))
    spec = RasterSpec(kind="heatmap")
    batch.obs["wave"] = np.full(len(batch.obs["band"]), 1.25 * spec.wavelengths[2])
    moved = RasterSpec(kind="heatmap", wavelengths=tuple(1.25 * w for w in spec.wavelengths))
    plain = make_batch([30], 5, bands=(2,))
    np.testing.assert_allclose(rasterize(batch, spec, "cpu").images,
                               rasterize(plain, moved, "cpu").images, rtol=1e-6, atol=1e-7)


def test_numpy_names_numba_cuda_needs_are_restored(monkeypatch):
    """NumPy 2.5 removed np.row_stack, which numba-cuda looks up when it first compiles; the
    alias comes back as np.vstack, the function it always was (snia.numba_cuda_compat)."""
    from snia.numba_cuda_compat import ensure_numpy_names, numba_cuda_works

    if "row_stack" in dir(np):
        monkeypatch.delattr(np, "row_stack")
    assert "row_stack" not in dir(np)
    ensure_numpy_names()
    np.testing.assert_array_equal(np.row_stack(([1, 2], [3, 4])), [[1, 2], [3, 4]])
    import numba

    if numba.config.ENABLE_CUDASIM:  # the simulator is no GPU: its kernels are not offered
        assert not numba_cuda_works() and "numba-cuda" not in available_backends()


def test_object_references_are_the_oracles_reference_times_and_scales():
    """Object by object against the NumPy reference: mixed signs, all negative or zero, equal
    scores (the first wins), an empty object; both reference modes."""
    from snia.raster.cpu import object_references
    from snia.raster.reference import _reference_time, _scale

    rng = np.random.default_rng(4)
    lengths = list(rng.integers(1, 12, 200)) + [3, 0]
    time = np.concatenate([59000 + np.cumsum(rng.uniform(0.01, 30, k)) for k in lengths[:-2]]
                          + [[1.0, 2.0, 3.0]])
    flux = (rng.uniform(5, 50, len(time)) * rng.choice([1.0, -1.0, 0.0], len(time),
                                                       p=[0.5, 0.4, 0.1])).astype(np.float32)
    flux[-3:] = 7.0
    err = rng.uniform(0.5, 5, len(time)).astype(np.float32)
    err[-3:] = 2.0
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for mode, reference in enumerate(("peak", "first_detection")):
        t_ref, scale = object_references(offsets, time, flux, err, reference, 5.0)
        objects = list(zip(offsets, offsets[1:]))
        expected = [_reference_time(time[a:b], flux[a:b].astype(np.float64),
                                    err[a:b].astype(np.float64), mode, 5.0) for a, b in objects]
        np.testing.assert_array_equal(t_ref, expected)
        np.testing.assert_allclose(scale, [_scale(flux[a:b]) for a, b in objects], rtol=1e-7)
    assert t_ref[-2:].tolist() == [1.0, 0.0]
