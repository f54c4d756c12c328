"""Training: DDP ranks train exactly like one rank; a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (make test installs torch==2.13.0)")

from conftest import error_line, synthetic_plasticc  # noqa: E402

from snia.errors import ConfigError  # noqa: E402
from snia.ingest import run_ingest  # noqa: E402
from snia.train import TrainConfig, close, open_trainer, run_training, split_objects  # noqa: E402

# dropout on, as in the shipped model: N ranks and resumed runs must still take exactly the same steps
TINY = {"kind": "bands", "epochs": 3, "batch_size": 8, "val_fraction": 0.25, "patience": 10, "min_epoch_samples": 0,
        "model": {"channels": [4, 8], "groups": 2, "hidden": 8, "dropout": 0.2}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    lc, meta, _ = synthetic_plasticc(folder, 48, 21)
    run_ingest("plasticc", [lc], folder / "s.h5", [meta], progress=False)
    return folder / "s.h5"


# each architecture at a size that trains in seconds on 2 cores (dropout on, as shipped)
TINY_ARCHS = {
    "cnn": TINY["model"],
    "alexnet": {"arch": "alexnet", "channels": [4, 8, 8, 8, 8], "kernel": [3, 5], "groups": 2,
                "pool": [1, 2], "fc": [16, 16], "dropout": 0.2},
    "googlenet": {"arch": "googlenet", "stem": 4, "channels": [8, 8], "blocks": 1, "groups": 2,
                  "hidden": 8, "dropout": 0.2},
    "resnet": {"arch": "resnet", "stem": 4, "channels": [4, 8], "blocks": [1, 1], "groups": 2,
               "hidden": 8, "dropout": 0.2},
    "gru": {"arch": "gru", "hidden": 8, "layers": 1, "dropout": 0.2},
    "lstm": {"arch": "lstm", "hidden": 8, "layers": 2, "dropout": 0.2},
}


def weights(run_dir, name="checkpoint.pt"):
    state = torch.load(run_dir / name, weights_only=True)  # plain tensors and containers only
    return state


def history_rows(run_dir) -> list[dict]:
    import csv

    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def clean_env() -> dict:
    """This environment without any launcher's variables (the tests start their own ranks)."""
    launch = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "SLURM_", "PMI_", "PMIX_", "OMPI_", "MPI_LOCAL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(launch)}
    env["OMP_NUM_THREADS"] = "1"
    return env


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
    for whole, cut in zip(history_rows(tmp_path / "whole"), history_rows(tmp_path / "cut")):
        for key in ("epoch", "train_loss", "val_loss", "val_auc", "lr"):
            assert whole[key] == cut[key], key


def test_history_and_checkpoint_agree_after_a_kill_between_their_writes(store, tmp_path):
    cfg = TrainConfig.from_dict(TINY)
    run_training(store, tmp_path / "a", cfg, stop_after=1)
    # killed after epoch 2's history row was written but before its checkpoint
    history = tmp_path / "a" / "history.csv"
    lines = history.read_text().splitlines()
    history.write_text("\n".join(lines + ["2" + lines[1][1:]]) + "\n")
    assert weights(tmp_path / "a")["epoch"] == 1
    run_training(store, tmp_path / "a", cfg)
    assert [r["epoch"] for r in history_rows(tmp_path / "a")] == ["1", "2", "3"]
    # killed after epoch 2's checkpoint but before its history row: the row is not lost
    run_training(store, tmp_path / "b", cfg, stop_after=2)
    history = tmp_path / "b" / "history.csv"
    history.write_text("\n".join(history.read_text().splitlines()[:2]) + "\n")
    run_training(store, tmp_path / "b", cfg)
    rows = history_rows(tmp_path / "b")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in history_rows(tmp_path / "a")]


@pytest.mark.parametrize("arch", list(TINY_ARCHS))
def test_every_arch_trains_resumes_and_is_read_by_evaluate_and_classify(store, tmp_path, arch):
    """model: {arch: ...} is saved with the checkpoint: a resumed run ends like an uninterrupted
    one, and evaluate and classify rebuild the network from the checkpoint alone."""
    from snia.cli import main
    from snia.inference import Member, predict_store

    cfg = TrainConfig.from_dict({**TINY, "epochs": 2, "model": TINY_ARCHS[arch]})
    assert cfg.arch == arch
    run_training(store, tmp_path / "whole", cfg)
    run_training(store, tmp_path / "cut", cfg, stop_after=1)
    run_training(store, tmp_path / "cut", cfg)
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert a["model_config"]["arch"] == arch and a["train_config"]["model"]["arch"] == arch
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    best = tmp_path / "whole" / "best.pt"
    member = Member(best)
    assert member.arch == arch and type(member.model).__name__ != ""
    pred = predict_store(best, store)
    assert len(pred["p_ia"]) == 48 and np.isfinite(pred["p_ia"]).all()
    assert 0 <= pred["p_ia"].min() and pred["p_ia"].max() <= 1
    assert main(["evaluate", str(store), "--checkpoint", str(best), "-o", str(tmp_path / "e")]) == 0
    assert main(["classify", str(store), "--checkpoint", str(best), "-o",
                 str(tmp_path / "c.csv")]) == 0
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 49


def test_an_arch_refuses_settings_it_does_not_have_and_derived_ones():
    with pytest.raises(ConfigError, match="unknown setting.*'layers'.*resnet"):
        TrainConfig.from_dict({"model": {"arch": "resnet", "layers": 2}})
    with pytest.raises(ConfigError, match="unknown model arch 'vgg'"):
        TrainConfig.from_dict({"model": {"arch": "vgg"}})
    with pytest.raises(ConfigError, match="n_bands"):
        TrainConfig.from_dict({"model": {"arch": "gru", "n_bands": 6}})
    # the default is the shipped CNN; unset keys keep its values
    assert TrainConfig().arch == "cnn"
    assert TrainConfig.from_dict({"model": {"hidden": 32}}).model.channels == (8, 16, 32)


def test_checkpoint_holds_everything_to_resume(store, tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "epochs": 1})
    run_training(store, tmp_path, cfg)
    state = weights(tmp_path)
    assert set(state) >= {"model", "optimizer", "scheduler", "torch_rng", "epoch", "train_config",
                          "model_config", "spec", "norm"}
    assert state["train_config"]["batch_size"] == 8 and state["spec"]["kind"] == "bands"
    # where it trained, for the report's provenance: this process, one rank on the CPU
    hw = state["hardware"]
    assert (hw["device"], hw["ranks"], hw["launcher"], hw["cores"]) == ("cpu", 1, "none", os.cpu_count())
    assert (tmp_path / "best.pt").exists()
    with pytest.raises(ValueError, match="other training settings"):
        run_training(store, tmp_path, TrainConfig.from_dict({**TINY, "epochs": 1, "lr": 0.5}))
    # the rasterization backend is a run-time choice: a resume does not compare it
    assert run_training(store, tmp_path, TrainConfig.from_dict(
        {**TINY, "epochs": 1, "backend": "numpy"}))["epochs"] == 1


def test_the_validation_split_is_a_hash_of_the_ids_and_the_seed():
    ids = np.arange(100_000)
    val = split_objects(ids, 0.1, 0)
    assert abs(val.mean() - 0.1) < 0.01
    assert not np.array_equal(val, split_objects(ids, 0.1, 1))  # the seed matters
    np.testing.assert_array_equal(val[::-1], split_objects(ids[::-1], 0.1, 0))  # order does not


@pytest.mark.mpi
@pytest.mark.parametrize("arch", ["cnn", "resnet", "gru"])
def test_two_gloo_ranks_train_like_one_rank(store, tmp_path, arch):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found next to this Python")
    import yaml

    cfg = tmp_path / "cfg.yaml"
    settings = {**TINY, "epochs": 2, "model": TINY_ARCHS[arch]}  # with dropout 0.2
    cfg.write_text(yaml.safe_dump({"train": settings}))
    assert settings["model"]["dropout"] > 0
    env = clean_env()
    one = subprocess.run([sys.executable, "-m", "snia", "train", str(store), "-o", str(tmp_path / "one"),
                          "--config", str(cfg)], capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    node_memory = set(Path("/dev/shm").glob("snia-*"))
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "snia", "train",
                          str(store), "-o", str(tmp_path / "two"), "--config", str(cfg)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr
    # the store read once for the node's two ranks (snia.store.shared), nothing left behind
    assert "read once for this node's 2 ranks" in two.stderr
    assert set(Path("/dev/shm").glob("snia-*")) <= node_memory
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for name, value in a["model"].items():
        np.testing.assert_allclose(b["model"][name].numpy(), value.numpy(), rtol=0, atol=1e-6,
                                   err_msg=name)
    rows = [(tmp_path / d / "history.csv").read_text().splitlines()[1:] for d in ("one", "two")]
    auc = [[float(r.split(",")[4]) for r in rs] for rs in rows]
    np.testing.assert_allclose(auc[0], auc[1], atol=1e-6)  # validation gathered over ranks


def test_dropout_masks_depend_on_the_sample_not_the_batch_or_the_rank():
    from snia.models import KeyedDropout, sample_keys

    index = np.array([5, 17, 2, 40, 3])
    keys = sample_keys(3, 1, index)  # (seed, epoch, store index of each object)
    drop = KeyedDropout(0.2).train()
    x = torch.ones(5, 2000)
    whole = drop(x, keys)
    # the mask of a sample is the same however the batch is split (over ranks) or ordered
    assert torch.equal(whole, torch.cat([drop(x[:2], keys[:2]), drop(x[2:], keys[2:])]))
    assert torch.equal(whole[[4, 0]], drop(x[[4, 0]], keys[[4, 0]]))
    # an independent NumPy oracle of the documented hash: splitmix64's finalizer of
    # key + (unit + 1) * golden ratio, kept where its top 24 bits are >= p * 2**24
    z = keys.numpy().view(np.uint64)[:, None] + np.uint64(0x9E3779B97F4A7C15) * np.arange(
        1, 2001, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    np.testing.assert_array_equal((whole != 0).numpy(), (z >> np.uint64(40)) >= round(0.2 * 2 ** 24))
    assert abs(float((whole == 0).float().mean()) - 0.2) < 0.01
    assert torch.allclose(whole[whole != 0], torch.tensor(1 / 0.8))
    # fresh masks for another epoch, seed or object; none in evaluation
    assert not torch.equal(whole, drop(x, sample_keys(3, 2, index)))
    assert not torch.equal(whole, drop(x, sample_keys(4, 1, index)))
    assert not torch.equal(whole[0], whole[1])
    assert torch.equal(drop.eval()(x, keys), x) and torch.equal(drop(x), x)
    with pytest.raises(ValueError, match="per-sample keys"):  # never rank-dependent masks
        drop.train()(x)


@pytest.mark.mpi
def test_two_trainings_on_one_node_at_once_each_find_their_own_port(store, tmp_path):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        pytest.skip("mpiexec not found next to this Python (pip install mpich)")
    pytest.importorskip("mpi4py")
    import yaml

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"train": {**TINY, "epochs": 1}}))
    env = clean_env()
    jobs = [subprocess.Popen([mpiexec, "-n", "2", sys.executable, "-m", "snia", "train", str(store),
                              "-o", str(tmp_path / f"run{k}"), "--config", str(cfg), "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for k in range(2)]
    try:
        results = [(job.communicate(timeout=240), job.returncode) for job in jobs]
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.communicate()
    for (_, err), code in results:
        assert code == 0, err
    a, b = weights(tmp_path / "run0"), weights(tmp_path / "run1")
    for name, value in a["model"].items():  # the same settings: the same model
        assert torch.equal(value, b["model"][name]), name


def test_a_damaged_checkpoint_is_named_and_restart_starts_over(store, tmp_path, capsys):
    import yaml

    from snia import cli

    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"train": {**TINY, "epochs": 1}}))
    run = tmp_path / "run"
    args = ["train", str(store), "-o", str(run), "--config", str(settings), "--no-progress"]
    assert cli.main(args) == 0
    good = (run / "checkpoint.pt").read_bytes()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")  # a torch file, not ours
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    damaged = {"truncated": good[:len(good) // 2], "empty": b"", "text": b"epoch 1\n",
               "other": (tmp_path / "other.pt").read_bytes(), "tensor": (tmp_path / "tensor.pt").read_bytes()}
    for what, content in damaged.items():
        (run / "checkpoint.pt").write_bytes(content)
        capsys.readouterr()
        assert cli.main(args) == cli.EXIT_BAD_INPUT, what
        line = error_line(capsys.readouterr().err)
        assert str(run / "checkpoint.pt") in line and "--restart" in line, (what, line)
    assert cli.main(args + ["--restart"]) == 0  # starts over, keeping the damaged file aside
    assert weights(run)["epoch"] == 1 and (run / "checkpoint.pt.stale").read_bytes() == damaged["tensor"]
    assert [r["epoch"] for r in history_rows(run)] == ["1"]
    # a damaged teacher
    for what, content in damaged.items():
        (tmp_path / "teacher.pt").write_bytes(content)
        capsys.readouterr()
        assert cli.main(["train", str(store), "-o", str(tmp_path / "student"), "--config", str(settings),
                         "--teachers", str(tmp_path / "teacher.pt")]) == cli.EXIT_BAD_INPUT, what
        assert str(tmp_path / "teacher.pt") in error_line(capsys.readouterr().err), what


def test_training_folder_of_other_settings_is_one_line_exit_2(store, tmp_path, capsys):
    from snia import cli

    one_pass = tmp_path / "one_pass.yaml"  # a tiny store: one pass an epoch
    one_pass.write_text("train:\n  min_epoch_samples: 0\n")
    args = ["train", str(store), "-o", str(tmp_path / "run"), "--config", str(one_pass), "--epochs",
            "1", "--batch-size", "8", "--kind", "bands", "--no-progress"]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(args + ["--seed", "7"]) == cli.EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "other training settings" in line and "--restart" in line


def test_image_geometry_is_a_training_setting_kept_with_the_model(store, tmp_path):
    from snia.inference import predict_store

    cfg = TrainConfig.from_dict({**TINY, "kind": "heatmap", "epochs": 1,
                                 "raster": {"n_time": 45, "n_wave": 8}})
    run_training(store, tmp_path, cfg)
    state = weights(tmp_path, "best.pt")
    assert (state["spec"]["n_time"], state["spec"]["n_wave"]) == (45, 8)
    pred = predict_store(tmp_path / "best.pt", store)  # inference draws the same 8 x 45 images
    assert len(pred["p_ia"]) == 48 and np.all((pred["p_ia"] >= 0) & (pred["p_ia"] <= 1))




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
    with pytest.raises(ConfigError, match=r"under 'model' \['n_scalars'\] follow from"):
        TrainConfig.from_dict({"model": {"arch": "gru", "n_scalars": 4}})  # the per-object inputs
    with pytest.raises(ValueError, match=r"unknown image setting\(s\) \['n_pixels'\]"):
        TrainConfig.from_dict({"raster": {"n_pixels": 3}})
    from snia.scaling import measure

    with pytest.raises(ValueError, match="fewer than one global batch of 4096"):
        measure(store, tmp_path / "row.json", "strong", 1, 4096, train_settings=TINY)
    with pytest.raises(ValueError, match="mode must be one of"):
        measure(store, tmp_path / "row.json", "diagonal", 1, 8, train_settings=TINY)
    assert not (tmp_path / "row.json").exists()


@pytest.mark.parametrize("teacher, student", [("gru", "resnet"), ("cnn", "lstm")])
def test_any_arch_distils_from_any_other(store, tmp_path, teacher, student):
    """The soft targets are the teachers' P(Ia) on the student's augmented light curves, whatever
    either reads (images or observations)."""
    from snia.inference import predict_store

    run_training(store, tmp_path / "t", TrainConfig.from_dict(
        {**TINY, "epochs": 1, "model": TINY_ARCHS[teacher]}))
    teachers = [str(tmp_path / "t" / "best.pt")]
    cfg = TrainConfig.from_dict({**TINY, "epochs": 1, "model": TINY_ARCHS[student],
                                 "augment": {"enabled": False},
                                 "distill": {"teachers": teachers, "weight": 0.5}})
    trainer = open_trainer(store, tmp_path / "s", cfg)
    try:
        indices = trainer.data.train_index[[4, 1, 7]]
        _, _, (_, soft) = trainer.data.tensors(indices, 0, train=True)
        np.testing.assert_allclose(soft.numpy(), predict_store(teachers, store)["p_ia"][indices],
                                   atol=1e-6)
        trainer.fit()
    finally:
        close(trainer)
    state = weights(tmp_path / "s")
    assert state["model_config"]["arch"] == student
    assert state["train_config"]["distill"]["teachers"] == teachers


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


def test_rasterize_without_a_config_draws_what_train_without_one_trains_on(store, tmp_path):
    """One source for the image geometry (RasterSpec's defaults, the shipped model's 60 x 16):
    `snia rasterize` with no config writes exactly the images `snia train` with no config trains
    on (before augmentation)."""
    import json

    import h5py

    from snia.cli import main
    from snia.raster import RasterSpec, rasterize
    from snia.train import settings_from_file
    from snia.train.data import TrainingData

    out = tmp_path / "images.h5"
    assert main(["rasterize", str(store), "-o", str(out), "--backend", "cpu", "--no-progress"]) == 0
    data = TrainingData(store, TrainConfig.from_dict(settings_from_file(None)), torch.device("cpu"))
    try:
        with h5py.File(out, "r") as f:
            drawn = RasterSpec.from_dict(json.loads(f.attrs["spec"]))
            images = f["images"][...]
        assert drawn == data.spec and data.spec.shape == (2, 16, 60)
        ref = rasterize(data.store.batch(slice(0, len(data.store))), data.spec, "numpy")
        np.testing.assert_allclose(images, ref.images, rtol=1e-5, atol=1e-6)
    finally:
        data.close()


def test_a_checkpoint_resumes_when_it_was_trained_on_the_images_these_settings_draw():
    """The geometry is compared as drawn (the checkpoint's spec), however the settings spelled
    it: a run saved with the shipped geometry written out resumes under settings that leave it
    to RasterSpec's defaults, and one trained on other images does not."""
    from snia.raster import RasterSpec
    from snia.train.config import same_training

    cfg = TrainConfig()
    saved = {**cfg.to_dict(), "raster": {"n_time": 60, "n_wave": 16}}
    shipped = RasterSpec(kind=cfg.kind).to_dict()
    assert same_training(saved, cfg, shipped)
    assert same_training(saved, cfg)  # no spec: the saved settings', resolved
    assert same_training({**saved, "backend": "numpy"}, cfg, shipped)  # a run-time choice
    assert not same_training(saved, cfg, RasterSpec(kind=cfg.kind, n_time=180, n_wave=32).to_dict())
    assert not same_training({**saved, "raster": {"n_time": 180}}, cfg)
    assert not same_training({**saved, "lr": 1.0}, cfg, shipped)


def recorded_steps(trainer) -> list:
    """What each optimiser step of ``trainer`` is given, recorded as it goes: (store indices,
    epoch key, the batch's images)."""
    steps, step = [], trainer.train_step

    def recording(indices, epoch, tensors=None):
        made = tensors if tensors is not None else trainer.data.tensors(indices, epoch, train=True)
        steps.append((indices.copy(), epoch, made[0][0].clone()))
        return step(indices, epoch, tensors)

    trainer.train_step = recording
    return steps


def test_scaling_times_the_training_loops_own_steps(store, tmp_path):
    """The timed steps are the steps training takes: the same batches, made the same way
    (augmented per epoch key), across an epoch's end, warm-up first."""
    from snia.scaling import time_steps

    cfg = TrainConfig.from_dict({**TINY, "epochs": 2})
    trained, timed = (open_trainer(store, tmp_path / name, cfg) for name in ("train", "time"))
    try:
        expected = recorded_steps(trained)
        trained.train_epoch(0)
        trained.train_epoch(1)
        per_epoch = len(trained.data.train_index) // cfg.batch_size
        assert len(expected) == 2 * per_epoch >= 4
        got = recorded_steps(timed)
        assert time_steps(timed, steps=2 * per_epoch - 1, warmup=1) > 0
    finally:
        close(trained)
        close(timed)
    assert len(got) == len(expected)
    for (index, key, images), (index2, key2, images2) in zip(got, expected):
        np.testing.assert_array_equal(index, index2)
        assert key == key2
        assert torch.equal(images, images2)
    assert got[per_epoch][1] == 1  # the second epoch's augmentation, not the first's again


def test_scaling_stops_the_clock_once_the_gpu_is_done(monkeypatch):
    from types import SimpleNamespace

    from snia.parallel import Dist
    from snia.scaling import synced

    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    synced(SimpleNamespace(device=torch.device("cuda:1"), dist=Dist()))
    assert waited == [torch.device("cuda:1")]
    synced(SimpleNamespace(device=torch.device("cpu"), dist=Dist()))
    assert len(waited) == 1  # nothing to wait for on the CPU
