"""Training: DDP ranks train exactly like one rank; a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (make test installs torch==2.13.0)")

from conftest import synthetic_plasticc  # noqa: E402

from snia.augment import AugmentConfig, augment, passes_detection_trigger  # noqa: E402
from snia.ingest import run_ingest  # noqa: E402
from snia.parallel import dist_from_env, local_ranks, share_cpu_threads  # noqa: E402
from snia.train import TrainConfig, close, open_trainer, run_training, split_objects  # noqa: E402

TINY = {"kind": "bands", "epochs": 3, "batch_size": 8, "val_fraction": 0.25, "patience": 10,
        "model": {"channels": [4, 8], "groups": 2, "hidden": 8, "dropout": 0.0}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    lc, meta, _ = synthetic_plasticc(folder, 48, 21)
    run_ingest("plasticc", [lc], folder / "s.h5", [meta], progress=False)
    return folder / "s.h5"


def weights(run_dir, name="checkpoint.pt"):
    state = torch.load(run_dir / name, weights_only=True)  # plain tensors and containers only
    return state


def test_resumed_run_ends_like_an_uninterrupted_one(store, tmp_path):
    cfg = TrainConfig.from_dict(TINY)
    run_training(store, tmp_path / "whole", cfg)
    first = run_training(store, tmp_path / "cut", cfg, stop_after=1)  # "killed" after epoch 1
    assert first["epochs"] == 1
    assert run_training(store, tmp_path / "cut", cfg)["epochs"] == 3  # resumes at epoch 2
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert a["epoch"] == b["epoch"] == 3
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    history = (tmp_path / "cut" / "history.csv").read_text().splitlines()
    assert len(history) == 4 and history[0].startswith("epoch,train_loss")


def test_checkpoint_holds_everything_to_resume(store, tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "epochs": 1})
    run_training(store, tmp_path, cfg)
    state = weights(tmp_path)
    assert set(state) >= {"model", "optimizer", "scheduler", "torch_rng", "epoch", "train_config",
                          "model_config", "spec", "norm"}
    assert state["train_config"]["batch_size"] == 8 and state["spec"]["kind"] == "bands"
    assert (tmp_path / "best.pt").exists()
    with pytest.raises(ValueError, match="other training settings"):
        run_training(store, tmp_path, TrainConfig.from_dict({**TINY, "epochs": 1, "lr": 0.5}))
    # the rasterization backend is a run-time choice: a resume does not compare it
    assert run_training(store, tmp_path, TrainConfig.from_dict(
        {**TINY, "epochs": 1, "backend": "numpy"}))["epochs"] == 1


def test_split_and_environment():
    ids = np.arange(100_000)
    val = split_objects(ids, 0.1, 0)
    assert abs(val.mean() - 0.1) < 0.01
    assert not np.array_equal(val, split_objects(ids, 0.1, 1))  # the seed matters
    np.testing.assert_array_equal(val[::-1], split_objects(ids[::-1], 0.1, 0))  # order does not
    assert dist_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}).world == 4
    slurm = dist_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"})
    assert (slurm.rank, slurm.world, slurm.local_rank) == (3, 8, 1)
    assert dist_from_env({}).world == 1


def test_launcher_detection():
    # srun with PMI sets PMI_* and SLURM_* alike: srun, with SLURM's local rank
    srun = dist_from_env({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1",
                          "SLURM_STEP_ID": "0", "PMI_RANK": "1", "PMI_SIZE": "2"})
    assert (srun.rank, srun.world, srun.local_rank, srun.launcher) == (1, 2, 1, "srun")
    # mpiexec inside a batch job: every rank inherits SLURM_PROCID=0; the MPI rank wins
    nested = dist_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "batch",
                            "PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALRANKID": "3"})
    assert (nested.rank, nested.world, nested.local_rank, nested.launcher) == (3, 4, 3, "mpiexec")
    ompi = dist_from_env({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3",
                          "OMPI_COMM_WORLD_LOCAL_RANK": "0"})
    assert (ompi.rank, ompi.world, ompi.launcher) == (2, 3, "mpiexec")


def test_ranks_share_the_cores():
    assert local_ranks({"SLURM_STEP_TASKS_PER_NODE": "4(x2)"}) == 4
    assert local_ranks({"MPI_LOCALNRANKS": "2"}) == 2 and local_ranks({}) == 1
    before = torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
        assert share_cpu_threads({"LOCAL_WORLD_SIZE": "1"}) == cores
        # Snakemake's OMP_NUM_THREADS is the job's budget, shared by its ranks
        assert share_cpu_threads({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.mpi
def test_two_gloo_ranks_train_like_one_rank(store, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found next to this Python")
    import yaml

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"train": {**TINY, "epochs": 2}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "SLURM_"))}
    env["OMP_NUM_THREADS"] = "1"
    one = subprocess.run([sys.executable, "-m", "snia", "train", str(store), "-o", str(tmp_path / "one"),
                          "--config", str(cfg)], capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "snia", "train",
                          str(store), "-o", str(tmp_path / "two"), "--config", str(cfg)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for name, value in a["model"].items():
        np.testing.assert_allclose(b["model"][name].numpy(), value.numpy(), rtol=0, atol=1e-6,
                                   err_msg=name)
    rows = [(tmp_path / d / "history.csv").read_text().splitlines()[1:] for d in ("one", "two")]
    auc = [[float(r.split(",")[4]) for r in rs] for rs in rows]
    np.testing.assert_allclose(auc[0], auc[1], atol=1e-6)  # validation gathered over ranks


def one_band_batch(flux_rows, err, photoz, ddf, photoz_err=0.01, types=None):
    """Objects observed in one band, n points over 100 days each; one row of fluxes per object."""
    from snia.lightcurve import Batch

    flux_rows = np.atleast_2d(np.asarray(flux_rows, np.float32))
    k, n = flux_rows.shape
    obs = {"time": np.tile(np.linspace(60000, 60100, n), k), "band": np.zeros(k * n, np.int8),
           "flux": flux_rows.ravel(), "flux_err": np.full(k * n, err, np.float32),
           "flag": np.zeros(k * n, np.int32)}
    meta = {"hostgal_photoz": np.asarray(photoz, np.float32),
            "hostgal_photoz_err": np.broadcast_to(np.asarray(photoz_err, np.float32), (k,)).copy(),
            "ddf": np.asarray(ddf, np.int8),
            "type": np.zeros(k, np.int8) if types is None else np.asarray(types, np.int8)}
    return Batch(np.arange(1, k + 1), np.arange(0, k * n + 1, n), obs, meta)


def test_augmentation_is_reproducible_and_physical():
    n = 200
    batch = one_band_batch(np.full((2, n), 100.0), 2.0, [0.1, 0.3], [1, 0], photoz_err=[0.01, 0.02],
                           types=[0, 3])
    meta = {k: v.copy() for k, v in batch.meta.items()}
    cfg = AugmentConfig(redshift_probability=1.0, redshift_max=1.0, drop_fraction=0.3, time_shift=0)
    wavelengths = (4000.0,)
    a = augment(batch, np.array([10, 11]), 0, 0, cfg, wavelengths)
    b = augment(batch, np.array([10, 11]), 0, 0, cfg, wavelengths)
    for key in ("time", "flux", "flux_err"):
        np.testing.assert_array_equal(a.obs[key], b.obs[key])  # same (seed, epoch, index)
    c = augment(batch, np.array([10, 11]), 1, 0, cfg, wavelengths)
    assert not np.array_equal(a.obs["flux"][:5], c.obs["flux"][:5])  # fresh every epoch
    lengths = np.diff(a.offsets)
    assert lengths[0] <= 0.5 * n + 10  # the deep-drilling object keeps at most half (+ noise)
    assert lengths[1] >= 0.6 * n  # a wide-survey object loses at most 30 % (+ noise)
    assert np.all(a.meta["hostgal_photoz"] > meta["hostgal_photoz"])  # moved to higher z
    assert batch.meta["hostgal_photoz"][0] == np.float32(0.1)  # the input batch is unchanged
    assert np.all(a.obs["flux_err"] >= 2.0) and np.mean(a.obs["flux"]) < 60  # fainter, not cleaner
    span = [np.ptp(a.lightcurve(j)["time"]) for j in range(2)]
    assert span[1] > 100  # time dilation (1+z')/(1+z) > 1
    for j in range(2):  # observed wavelengths move redward by the same factor as time
        stretch = (1 + a.meta["hostgal_photoz"][j]) / (1 + meta["hostgal_photoz"][j])
        np.testing.assert_allclose(a.lightcurve(j)["wave"], 4000.0 * stretch, rtol=1e-6)


def test_deep_field_objects_are_brought_to_wide_survey_noise():
    batch = one_band_batch(np.full((2, 400), 100.0), 1.0, [0.1, 0.1], [1, 0])
    cfg = AugmentConfig(redshift_probability=0.0, drop_fraction=0.0, time_shift=0)
    out = augment(batch, np.array([0, 1]), 0, 0, cfg, (4000.0,), noise_floor=np.array([10.0]))
    deep, wide = out.lightcurve(0), out.lightcurve(1)
    # the deep-field object: errors 7-13 (floor x 0.7-1.3, one factor per object), and its
    # flux scatter grows to match them (sample std of N(100, e) within 15 %)
    assert np.all(deep["flux_err"] >= 7.0) and np.all(deep["flux_err"] <= 13.0)
    assert abs(np.std(deep["flux"]) / deep["flux_err"][0] - 1) < 0.15
    # the wide-survey object, not moved: untouched
    np.testing.assert_array_equal(wide["flux_err"], 1.0)
    np.testing.assert_array_equal(wide["flux"], 100.0)


def test_moved_objects_still_pass_the_detection_trigger():
    n_obj, n = 40, 60
    flux = np.where(np.arange(n) % 10 == 0, 15.0, 1.0)  # 6 points at S/N 7.5
    z = np.linspace(0.05, 0.5, n_obj).astype(np.float32)
    batch = one_band_batch(np.tile(flux, (n_obj, 1)), 2.0, z, np.zeros(n_obj))
    cfg = AugmentConfig(redshift_probability=1.0, redshift_max=1.2, drop_fraction=0.0,
                        time_shift=0, detection_trigger=True)
    out = augment(batch, np.arange(n_obj), 0, 0, cfg, (4000.0,))
    moved = out.meta["hostgal_photoz"] != z
    for j in range(n_obj):
        lc = out.lightcurve(j)
        if moved[j]:  # every moved object is still detected ...
            assert passes_detection_trigger(lc["flux"], lc["flux_err"]), j
        else:  # ... and one that could not be moved is left as it was
            np.testing.assert_array_equal(lc["flux"], batch.lightcurve(j)["flux"])
    assert 0 < moved.sum() < n_obj  # faint objects can only move a little, if at all


def test_image_geometry_is_a_training_setting_kept_with_the_model(store, tmp_path):
    from snia.inference import predict_store

    cfg = TrainConfig.from_dict({**TINY, "kind": "heatmap", "epochs": 1,
                                 "raster": {"n_time": 45, "n_wave": 8}})
    run_training(store, tmp_path, cfg)
    state = weights(tmp_path, "best.pt")
    assert (state["spec"]["n_time"], state["spec"]["n_wave"]) == (45, 8)
    pred = predict_store(tmp_path / "best.pt", store)  # inference draws the same 8 x 45 images
    assert len(pred["p_ia"]) == 48 and np.all((pred["p_ia"] >= 0) & (pred["p_ia"] <= 1))


def test_flux_noise_grows_errors_and_scatter_together():
    batch = one_band_batch(np.full((1, 4000), 50.0), 1.0, [0.1], [0])
    cfg = AugmentConfig(redshift_probability=0.0, drop_fraction=0.0, time_shift=0, flux_noise=2.0)
    lc = augment(batch, np.array([7]), 0, 0, cfg, (4000.0,)).lightcurve(0)
    k2 = lc["flux_err"][0] ** 2 - 1  # the k drawn for this object
    assert 0 < k2 <= 4 + 1e-5 and np.allclose(lc["flux_err"], lc["flux_err"][0])
    # the added scatter matches the added variance: std(flux) = k sigma (within 5 %)
    assert np.std(lc["flux"]) == pytest.approx(np.sqrt(k2), rel=0.05)


def test_bad_training_settings_are_refused_by_name(store, tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        TrainConfig.from_dict({"task": "regression"})
    with pytest.raises(ValueError, match=r"unknown type\(s\) \['Ib'\]"):
        TrainConfig.from_dict({"types": ["Ia", "Ib"]})
    from snia.taxonomy import class_list

    with pytest.raises(ValueError, match="must include Ia"):
        class_list("multiclass", ["II", "Ibc"])
    with pytest.raises(ValueError, match=r"unknown setting\(s\) under 'augment' \['redshift'\]"):
        TrainConfig.from_dict({"augment": {"redshift": 1.0}})
    with pytest.raises(ValueError, match=r"under 'model' \['in_channels'\]"):
        TrainConfig.from_dict({"model": {"in_channels": 3}})  # follows from the images
    with pytest.raises(ValueError, match=r"unknown image setting\(s\) \['n_pixels'\]"):
        TrainConfig.from_dict({"raster": {"n_pixels": 3}})
    from snia.scaling import measure

    with pytest.raises(ValueError, match="fewer than one global batch of 4096"):
        measure(store, tmp_path / "row.json", "strong", 1, 4096, train_settings=TINY)
    with pytest.raises(ValueError, match="mode must be one of"):
        measure(store, tmp_path / "row.json", "diagonal", 1, 8, train_settings=TINY)
    assert not (tmp_path / "row.json").exists()


def test_distillation_targets_are_the_teachers_p_ia_and_the_loss_mixes_both(store, tmp_path):
    from snia.inference import predict_store

    teachers = []
    for seed in (0, 1):
        run_training(store, tmp_path / f"t{seed}", TrainConfig.from_dict({**TINY, "epochs": 1,
                                                                           "seed": seed}))
        teachers.append(str(tmp_path / f"t{seed}" / "best.pt"))
    cfg = TrainConfig.from_dict({**TINY, "augment": {"enabled": False},
                                 "distill": {"teachers": teachers, "weight": 0.25}})
    trainer = open_trainer(store, tmp_path / "student", cfg)
    try:
        indices = trainer.data.train_index[[5, 0, 3]]  # not sorted: targets follow the given order
        _, _, (label, soft) = trainer.data.tensors(indices, 0, train=True)
        # independent path: the ensemble's predictions over the whole store, read in store order
        expected = predict_store(teachers, store)["p_ia"][indices]
        np.testing.assert_allclose(soft.numpy(), expected, atol=1e-6)
        # loss = w [(1 - a) BCE(p, label) + a BCE(p, soft)], by hand
        logits = torch.tensor([[0.3], [-1.2], [2.0]])
        p = 1 / (1 + np.exp(-logits.numpy()[:, 0]))
        y, q = label.numpy(), soft.numpy()

        def bce(target):
            return -(target * np.log(p) + (1 - target) * np.log(1 - p))

        w = np.where(y == 1, trainer.data.class_weight[0], trainer.data.class_weight[1])
        expected_loss = np.sum(w * (0.75 * bce(y) + 0.25 * bce(q))) / 3
        assert float(trainer.loss(logits, (label, soft), 3)) == pytest.approx(expected_loss, rel=1e-5)
        # without teachers in validation, targets are the labels alone
        assert isinstance(trainer.data.tensors(indices, 0, train=False)[2], torch.Tensor)
    finally:
        close(trainer)
    # a distilled run trains, resumes like any other, and its checkpoint names its teachers
    run_training(store, tmp_path / "student", cfg)
    assert weights(tmp_path / "student")["train_config"]["distill"]["teachers"] == teachers
    # a distilled model trains to the end and keeps the last epoch: no early stopping on the
    # labels' validation AUC, whatever the patience
    short = TrainConfig.from_dict({**TINY, "epochs": 4, "patience": 1,
                                   "distill": {"teachers": teachers, "weight": 1.0}})
    assert run_training(store, tmp_path / "patient", short)["epochs"] == 4
    assert weights(tmp_path / "patient", "best.pt")["epoch"] == 4
    # `snia train --teachers` is the same run
    import yaml

    from snia import cli

    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"train": {**TINY, "augment": {"enabled": False},
                                                  "distill": {"weight": 0.25}}}))
    assert cli.main(["train", str(store), "-o", str(tmp_path / "cli"), "--config", str(settings),
                     "--teachers", *teachers]) == 0
    a, b = weights(tmp_path / "student"), weights(tmp_path / "cli")
    assert a["train_config"] == b["train_config"]
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_bad_distillation_settings_are_refused_by_name(store, tmp_path):
    with pytest.raises(ValueError, match="need task 'binary'"):
        TrainConfig.from_dict({"task": "multiclass", "distill": {"teachers": ["a.pt"]}})
    with pytest.raises(ValueError, match=r"distill weight must be in \[0, 1\]"):
        TrainConfig.from_dict({"distill": {"teachers": ["a.pt"], "weight": 1.5}})
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        run_training(store, tmp_path / "s", TrainConfig.from_dict(
            {**TINY, "distill": {"teachers": [str(tmp_path / "nowhere.pt")]}}))


def test_ranks_split_each_global_batch_of_the_distributed_sampler(store, tmp_path):
    from snia.train import local_batches

    trainer = open_trainer(store, tmp_path, TrainConfig.from_dict({**TINY, "batch_size": 12}))
    try:
        train_index = trainer.data.train_index
        n = len(train_index)
        one = [b.copy() for b in trainer.local_batches(0)]
        assert len(one) == n // 12 and all(len(b) == 12 for b in one)
        seen = np.concatenate(one)
        assert len(np.unique(seen)) == len(seen)  # each object at most once per epoch
        assert not np.array_equal(seen, np.concatenate(list(trainer.local_batches(1))))
        for world in (2, 3):
            shares = []
            for rank in range(world):  # what rank r of `world` would take (no process group needed)
                shares.append(list(local_batches(train_index, 12, trainer.cfg.seed, 0, rank, world)))
            assert all(len(s) == len(one) for s in shares)
            for step, batch in enumerate(one):
                together = np.concatenate([s[step] for s in shares])
                assert sorted(together) == sorted(batch), (world, step)
    finally:
        close(trainer)
