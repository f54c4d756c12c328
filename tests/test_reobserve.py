"""Re-observation as the survey would (snia.augment.reobserve): a training object's GP seen
through a survey light curve's schedule, noise and photo-z, checked against the GP reference
(snia.gp.reference) and astropy's luminosity distances."""

from __future__ import annotations

import numpy as np
import pytest

from snia.augment import AugmentConfig
from snia.augment.reobserve import GPCurves, Schedules, reobserve
from snia.gp import reference
from snia.lightcurve import Batch, offsets_from_lengths

WAVES = np.array([3671.0, 4827.0, 6223.0, 7546.0, 8691.0, 9712.0])
WAVE_SCALE = 6000.0


def gp_of_a_bump(rng, n=30):
    """A GP fitted (by the reference) to a noisy bump peaked at day 0: its support points."""
    t = np.sort(rng.uniform(-30.0, 80.0, n))
    band = rng.integers(0, 6, n)
    flux = 100.0 * (0.5 + band / 6.0) * np.exp(-0.5 * (t / 15.0) ** 2) + rng.normal(0, 2.0, n)
    err = np.full(n, 2.0)
    amp, time_scale, _ = reference.fit(t, WAVES[band], flux, err, WAVE_SCALE)
    alpha = reference.alpha(t, WAVES[band], flux, err, amp, time_scale, WAVE_SCALE)
    return t, WAVES[band], alpha, time_scale


def curves_of(objects, z):
    """GPCurves of (t, wave, alpha, time_scale) tuples, peaks at t = 0."""
    lengths = [len(o[0]) for o in objects]
    return GPCurves(offsets=offsets_from_lengths(lengths),
                    time=np.concatenate([o[0] for o in objects]),
                    wave=np.concatenate([o[1] for o in objects]),
                    alpha=np.concatenate([o[2] for o in objects]),
                    time_scale=np.array([o[3] for o in objects]), wave_scale=WAVE_SCALE,
                    z=np.asarray(z, dtype=np.float64))


def schedules_of(curves, photoz, err=0.5):
    """Schedules of (times, bands) pairs: a constant flux error, photo-z error 0.01 * (k + 1)."""
    lengths = [len(c[0]) for c in curves]
    return Schedules(offsets=offsets_from_lengths(lengths), time=np.concatenate([c[0] for c in curves]),
                     band=np.concatenate([c[1] for c in curves]).astype(np.int8),
                     flux_err=np.full(sum(lengths), err),
                     photoz=np.asarray(photoz, dtype=np.float64),
                     photoz_err=0.01 * (np.arange(len(curves)) + 1.0),
                     ddf=np.zeros(len(curves), np.int8))


def training_batch(n, z):
    """A placeholder batch of n objects (one observation each): what re-observation replaces."""
    obs = {"time": np.arange(n, dtype=np.float64), "band": np.zeros(n, np.int8),
           "flux": np.ones(n, np.float32), "flux_err": np.ones(n, np.float32)}
    meta = {"hostgal_photoz": np.asarray(z, np.float32), "hostgal_photoz_err": np.zeros(n, np.float32),
            "ddf": np.ones(n, np.int8), "type": np.zeros(n, np.int8)}
    return Batch(np.arange(100, 100 + n, dtype=np.int64), offsets_from_lengths(np.ones(n, int)), obs, meta)


def a_schedule(rng, n=80, start=60000.0):
    return np.sort(rng.uniform(start, start + 300.0, n)), rng.integers(0, 6, n)


def test_a_reobserved_object_is_its_gp_moved_dimmed_and_seen_with_the_surveys_schedule():
    from astropy.cosmology import FlatLambdaCDM

    rng = np.random.default_rng(0)
    gp = gp_of_a_bump(rng)
    z, z_new = 0.1, 0.3
    curves = curves_of([gp], [z])
    schedule = a_schedule(rng)
    survey = schedules_of([schedule], [z_new], err=1e-6)  # errors so small the noise is nothing
    cfg = AugmentConfig(reobserve_probability=1.0)
    out = reobserve(training_batch(1, [z]), np.array([0]), epoch=3, seed=7, cfg=cfg, curves=curves,
                    survey=survey, band_wave=WAVES)
    times, bands = schedule
    np.testing.assert_array_equal(out.obs["time"], times)
    np.testing.assert_array_equal(out.obs["band"], bands)
    np.testing.assert_allclose(out.obs["flux_err"], 1e-6, rtol=1e-6)
    np.testing.assert_allclose(out.obs["wave"], WAVES[bands], rtol=1e-6)
    assert out.meta["hostgal_photoz"][0] == pytest.approx(z_new)
    assert out.meta["hostgal_photoz_err"][0] == pytest.approx(0.01)
    # the peak was placed at some time of the schedule: find it from the brightest point, then
    # every flux is the reference GP mean there, time-dilated, redshifted and dimmed
    cosmology = FlatLambdaCDM(H0=70, Om0=0.3)
    dim = (cosmology.luminosity_distance(z) / cosmology.luminosity_distance(z_new)).value ** 2
    stretch = (1 + z_new) / (1 + z)
    t, wave, alpha, time_scale = gp

    def expected(peak):
        return dim * reference.mean((times - peak) / stretch, WAVES[bands] / stretch, t, wave, alpha,
                                    time_scale, WAVE_SCALE)

    grid = np.linspace(times[0] - 15.0, times[-1] + 15.0, 3301)
    misfit = [np.abs(out.obs["flux"] - expected(p)).max() for p in grid]
    best = grid[int(np.argmin(misfit))]
    np.testing.assert_allclose(out.obs["flux"], expected(best), atol=0.01 * np.abs(expected(best)).max())
    assert np.abs(expected(best)).max() > 1.0  # a real signal was compared (the noise is 1e-6)


def test_draws_are_fresh_each_epoch_and_the_same_for_the_same_key():
    rng = np.random.default_rng(1)
    curves = curves_of([gp_of_a_bump(rng), gp_of_a_bump(rng)], [0.1, 0.2])
    survey = schedules_of([a_schedule(rng) for _ in range(6)], [0.15, 0.25, 0.3, 0.5, 0.6, 0.9])
    cfg = AugmentConfig(reobserve_probability=1.0)
    batch = training_batch(2, [0.1, 0.2])

    def draw(epoch, order=(0, 1)):
        sub = Batch(batch.object_id[list(order)], batch.offsets[:3], batch.obs,
                    {k: v[list(order)] for k, v in batch.meta.items()})
        return reobserve(sub, np.array(order), epoch, 0, cfg, curves, survey, WAVES)

    a, b, c = draw(1), draw(1), draw(2)
    np.testing.assert_array_equal(a.obs["flux"], b.obs["flux"])
    assert not np.array_equal(a.obs["flux"], c.obs["flux"])
    # an object's draw does not depend on its batch neighbours or position
    swapped = draw(1, order=(1, 0))
    np.testing.assert_array_equal(swapped.lightcurve(1)["flux"], a.lightcurve(0)["flux"])
    # each takes a survey object at or above its own redshift
    assert np.all(a.meta["hostgal_photoz"] >= np.array([0.1, 0.2]))


def test_undetectable_draws_and_objects_not_drawn_keep_their_light_curve():
    rng = np.random.default_rng(2)
    t, wave, alpha, time_scale = gp_of_a_bump(rng)
    faint = curves_of([(t, wave, alpha * 1e-4, time_scale)], [0.1])
    survey = schedules_of([a_schedule(rng)], [0.5], err=5.0)
    batch = training_batch(1, [0.1])
    for cfg, curves in ((AugmentConfig(reobserve_probability=1.0), faint),
                        (AugmentConfig(reobserve_probability=0.0), curves_of([(t, wave, alpha, time_scale)], [0.1]))):
        out = reobserve(batch, np.array([0]), 0, 0, cfg, curves, survey, WAVES)
        np.testing.assert_array_equal(out.obs["time"], batch.obs["time"])
        np.testing.assert_array_equal(out.obs["flux"], batch.obs["flux"])
        assert out.meta["hostgal_photoz"][0] == pytest.approx(0.1)


def test_a_galactic_object_takes_a_galactic_schedule_and_stays_at_redshift_zero():
    rng = np.random.default_rng(3)
    curves = curves_of([gp_of_a_bump(rng)], [0.0])
    schedules = [a_schedule(rng, start=61000.0), a_schedule(rng, start=62000.0)]
    survey = schedules_of(schedules, [0.4, 0.0], err=1e-3)
    out = reobserve(training_batch(1, [0.0]), np.array([0]), 0, 0, AugmentConfig(reobserve_probability=1.0),
                    curves, survey, WAVES)
    np.testing.assert_array_equal(out.obs["time"], schedules[1][0])
    assert out.meta["hostgal_photoz"][0] == 0.0
    # a survey of extragalactic objects only still lends its cadence; the object stays galactic
    survey = schedules_of(schedules, [0.4, 0.7], err=1e-3)
    out = reobserve(training_batch(1, [0.0]), np.array([0]), 0, 0, AugmentConfig(reobserve_probability=1.0),
                    curves, survey, WAVES)
    assert any(np.array_equal(out.obs["time"], s[0]) for s in schedules)
    assert out.meta["hostgal_photoz"][0] == 0.0


def test_the_survey_store_gives_its_schedules_but_never_its_fluxes(tmp_path, monkeypatch):
    import h5py
    from conftest import synthetic_plasticc

    from snia.ingest import run_ingest
    from snia.store import Store

    lc, meta, expected = synthetic_plasticc(tmp_path, 9, 4)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False, split="test")
    read = []
    original = h5py.Dataset.__getitem__

    def recording(self, key):
        read.append(self.name)
        return original(self, key)

    with Store(tmp_path / "s.h5") as store:
        monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
        survey = Schedules.from_store(store)
        monkeypatch.undo()
        ids = store.objects["object_id"]
    assert not [name for name in read if name.endswith("/flux") or name.endswith("/type")]
    for k, oid in enumerate(ids):
        a, b = survey.offsets[k], survey.offsets[k + 1]
        np.testing.assert_allclose(survey.time[a:b], expected[oid]["time"])
        np.testing.assert_array_equal(survey.band[a:b], expected[oid]["band"])
        np.testing.assert_allclose(survey.flux_err[a:b], expected[oid]["flux_err"], rtol=1e-6)


def test_settings_that_reobserve_need_a_survey():
    from snia.errors import ConfigError
    from snia.train import TrainConfig

    with pytest.raises(ConfigError, match="survey"):
        TrainConfig.from_dict({"augment": {"reobserve_probability": 0.5}})
    with pytest.raises(ConfigError, match="reobserve_probability"):
        AugmentConfig(reobserve_probability=1.5)
    assert TrainConfig.from_dict({"augment": {"reobserve_probability": 0.5}, "survey": "x.h5"}).survey == "x.h5"


def test_training_reobserves_with_the_stores_gp_fits_and_refuses_without_them(tmp_path):
    from conftest import error_line, synthetic_plasticc

    from snia.cli import main
    from snia.ingest import run_ingest
    from snia.train import TrainConfig
    from snia.train.data import TrainingData

    (tmp_path / "survey").mkdir()
    lc, meta, _ = synthetic_plasticc(tmp_path, 24, 11)
    run_ingest("plasticc", [lc], tmp_path / "train.h5", [meta], progress=False, split="train")
    lc, meta, _ = synthetic_plasticc(tmp_path / "survey", 16, 12, first_id=1000)
    run_ingest("plasticc", [lc], tmp_path / "survey.h5", [meta], progress=False, split="test")
    settings = {"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.25, "min_epoch_samples": 0,
                "survey": str(tmp_path / "survey.h5"),
                "augment": {"reobserve_probability": 1.0},
                "model": {"channels": [4, 8], "groups": 2, "hidden": 8, "dropout": 0.2}}
    config = tmp_path / "settings.yaml"
    import yaml

    config.write_text(yaml.safe_dump({"train": settings}))
    # without fits: one line naming what to run (in a process of its own, as a user runs it)
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snia", "train", str(tmp_path / "train.h5"), "-o",
                           str(tmp_path / "m"), "--config", str(config)], capture_output=True, text=True)
    assert proc.returncode != 0 and "snia gp fit" in error_line(proc.stderr)
    assert main(["gp", "fit", str(tmp_path / "train.h5"), "--no-progress"]) == 0
    data = TrainingData(tmp_path / "train.h5", TrainConfig.from_dict(settings), "cpu")
    try:
        indices = data.train_index[:8]
        batch = data.source.batch(np.sort(indices))
        from snia.augment.reobserve import reobserve

        moved = reobserve(batch, np.sort(indices), 0, 0, data.cfg.augment, *data.reobserved, data.spec.wavelengths)
        survey_times = set(np.round(data.reobserved[1].time, 4))
        replaced = [j for j in range(len(moved)) if set(np.round(moved.lightcurve(j)["time"], 4)) <= survey_times]
        assert replaced  # some objects now carry survey schedules
    finally:
        data.close()
    assert main(["train", str(tmp_path / "train.h5"), "-o", str(tmp_path / "m"), "--config", str(config)]) == 0
    assert (tmp_path / "m" / "best.pt").is_file()
