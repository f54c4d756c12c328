"""Self-training on the survey's unlabelled light curves (snia.train.survey): the loss weights
against hand-computed values, the survey's batches, the settings' refusals, and the proof that the
survey's labels are never read (shuffled labels give a bit-identical model, while the survey's
light curves do change it)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="PyTorch not installed")

import torch  # noqa: E402
from conftest import TINY_MODEL, synthetic_plasticc  # noqa: E402

from snia.errors import ConfigError  # noqa: E402
from snia.train import TrainConfig, run_training  # noqa: E402
from snia.train.loss import weighted_loss  # noqa: E402
from snia.train.survey import survey_weights  # noqa: E402


def test_survey_weights_are_confidence_times_balance_with_mean_one():
    p = np.array([0.9, 0.1, 0.5, 0.7])
    share = 0.55  # mean of p
    raw = [0.8 * (0.9 * 0.5 / share + 0.1 * 0.5 / 0.45),
           0.8 * (0.1 * 0.5 / share + 0.9 * 0.5 / 0.45),
           0.0,
           0.4 * (0.7 * 0.5 / share + 0.3 * 0.5 / 0.45)]
    expected = np.array(raw) / np.mean(raw)
    assert np.allclose(survey_weights(p), expected, rtol=1e-6)
    # a survey the teachers call all-Ia at 0.9 gets no more pull toward Ia than one at 0.1 toward
    # the rest: the balance undoes the share
    assert np.allclose(survey_weights(np.full(5, 0.9)), survey_weights(np.full(5, 0.1)))


def test_the_loss_of_survey_rows_is_their_weight_times_the_loss_on_the_soft_target():
    logits = torch.tensor([[0.3], [-1.0], [2.0]])
    label = torch.tensor([1.0, 0.0, 0.0])  # the last row's label is a placeholder
    soft = torch.tensor([0.8, 0.2, 0.6])
    survey = torch.tensor([float("nan"), float("nan"), 1.5])
    got = weighted_loss(logits, (label, soft, survey), (2.0, 0.5), [], 0.25, 2)

    def bce(z, t):
        return -(t * np.log(1 / (1 + np.exp(-z))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-z))))

    rows = [2.0 * (0.75 * bce(0.3, 1) + 0.25 * bce(0.3, 0.8)),
            0.5 * (0.75 * bce(-1.0, 0) + 0.25 * bce(-1.0, 0.2)),
            1.5 * bce(2.0, 0.6)]
    assert float(got) == pytest.approx(sum(rows) / 2, rel=1e-5)


def test_self_training_settings_are_refused_without_what_they_need():
    with pytest.raises(ConfigError, match="needs 'survey'"):
        TrainConfig.from_dict({"distill": {"teachers": ["t.pt"], "weight": 1.0, "survey_share": 0.5}})
    with pytest.raises(ConfigError, match="needs 'survey'"):
        TrainConfig.from_dict({"survey": "s.h5", "distill": {"survey_share": 0.5}})
    with pytest.raises(ConfigError, match="survey_share must be in"):
        TrainConfig.from_dict({"survey": "s.h5", "distill": {"teachers": ["t.pt"], "survey_share": -1}})
    with pytest.raises(ConfigError, match="recurrent"):
        TrainConfig.from_dict({"survey": "s.h5", "model": {"arch": "gru"},
                               "distill": {"teachers": ["t.pt"], "survey_share": 0.5}})


def shuffled_types(meta, out, seed):
    """A copy of a PLAsTiCC metadata file with its `target` column permuted."""
    lines = meta.read_text().splitlines()
    rows = [r.split(",") for r in lines[1:]]
    targets = [r[-1] for r in rows]
    order = np.random.default_rng(seed).permutation(len(targets))
    out.write_text("\n".join([lines[0]] + [",".join(r[:-1] + [targets[k]])
                                           for r, k in zip(rows, order)]) + "\n")
    assert [r[-1] for r in rows] != [targets[k] for k in order]
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A training store, a teacher trained on it, and one survey ingested twice: with its labels
    and with them shuffled (the same light curves)."""
    from snia.ingest import run_ingest

    folder = tmp_path_factory.mktemp("self_training")
    lc, meta, _ = synthetic_plasticc(folder, 40, 35)
    run_ingest("plasticc", [lc], folder / "train.h5", [meta], progress=False)
    (folder / "survey").mkdir()
    lc, meta, _ = synthetic_plasticc(folder / "survey", 30, 36, first_id=5000)
    run_ingest("plasticc", [lc], folder / "survey.h5", [meta], progress=False, split="test")
    run_ingest("plasticc", [lc], folder / "shuffled.h5",
               [shuffled_types(meta, folder / "meta_shuffled.csv", 1)], progress=False, split="test")
    run_training(folder / "train.h5", folder / "teacher", TrainConfig.from_dict(TINY_MODEL))
    return folder


def student(stores, name, survey, share=1.0):
    settings = {**TINY_MODEL, "epochs": 2, "seed": 3, "survey": str(stores / survey),
                "distill": {"teachers": [str(stores / "teacher" / "best.pt")], "weight": 1.0,
                            "survey_share": share}}
    run_training(stores / "train.h5", stores / name, TrainConfig.from_dict(settings))
    return torch.load(stores / name / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def test_the_surveys_labels_are_never_read(stores):
    with_labels = student(stores, "labels", "survey.h5")
    shuffled = student(stores, "shuffled", "shuffled.h5")
    assert with_labels.keys() == shuffled.keys()
    for key in with_labels:
        assert torch.equal(with_labels[key], shuffled[key]), key
    # and the survey's light curves do reach the model: without them it differs
    alone = student(stores, "alone", "survey.h5", share=0.0)
    assert any(not torch.equal(with_labels[k], alone[k]) for k in with_labels)
    # the provenance says which survey the model saw, and how (the report shows it)
    from snia.provenance import describe_checkpoint

    described = describe_checkpoint(stores / "labels" / "best.pt")["survey"]
    assert described["store"] == str(stores / "survey.h5")
    assert described["uses"] == ["its light curves (self-training, 1.0 per labelled one)"]
    assert describe_checkpoint(stores / "alone" / "best.pt")["survey"] is None


def test_each_step_adds_the_survey_share_and_an_epoch_draws_every_survey_curve(stores):
    from snia.train.data import TrainingData

    settings = {**TINY_MODEL, "batch_size": 8, "survey": str(stores / "survey.h5"),
                "distill": {"teachers": [str(stores / "teacher" / "best.pt")], "weight": 1.0,
                            "survey_share": 0.5}}
    data = TrainingData(stores / "train.h5", TrainConfig.from_dict(settings), torch.device("cpu"))
    try:
        survey = data.survey
        assert survey.size == 4 and len(survey) == 30
        assert (survey.p >= 0).all() and (survey.p <= 1).all()
        steps = list(survey.step_batches(epoch=0, steps=10, rank=0, world=1))  # 40 > 30 curves
        assert all(len(s) == 4 for s in steps)
        drawn = np.concatenate(steps)
        assert set(drawn[:30]) == set(range(30))  # a permutation first, then the next round
        halves = [list(survey.step_batches(0, 10, r, 2)) for r in (0, 1)]
        for s, a, b in zip(steps, *halves):  # two ranks split each global survey batch
            assert sorted(np.r_[a, b]) == sorted(s)
        x, s, (label, soft, weight) = data.tensors(
            np.r_[data.train_index[:8], steps[0] + data.survey_offset], 0, train=True)
        assert x[0].shape[0] == 12 and s.shape[0] == 12
        assert torch.isnan(weight[:8]).all()
        assert np.allclose(soft[8:].numpy(), survey.p[steps[0]])
        assert np.allclose(weight[8:].numpy(), survey.weight[steps[0]])
    finally:
        data.close()
    # Noisy Student: the survey's light curves augmented (no redshift move), the targets as before
    settings["distill"]["survey_augment"] = True
    noisy = TrainingData(stores / "train.h5", TrainConfig.from_dict(settings), torch.device("cpu"))
    try:
        indices = np.r_[noisy.train_index[:8], steps[0] + noisy.survey_offset]
        xn, _, (_, soft_n, _) = noisy.tensors(indices, 0, train=True)
        assert torch.equal(xn[0][:8], x[0][:8])  # the labelled part is the same
        assert not torch.equal(xn[0][8:], x[0][8:])
        assert torch.equal(soft_n, soft)
        assert noisy.survey.augment_settings.redshift_probability == 0
    finally:
        noisy.close()


def test_a_small_training_set_is_passed_over_until_an_epoch_has_min_epoch_samples(stores):
    """About 28 training objects, batch 8: 3 steps a pass; min_epoch_samples 50 makes 2 passes,
    each keyed apart so their draws differ."""
    from snia.train.data import passes_per_epoch
    from snia.train.run import close, open_trainer

    cfg = TrainConfig.from_dict({**TINY_MODEL, "min_epoch_samples": 50})
    assert passes_per_epoch(28, cfg) == 2 and passes_per_epoch(100, cfg) == 1
    assert passes_per_epoch(28, TrainConfig.from_dict(TINY_MODEL)) == 1  # the default: one pass
    trainer = open_trainer(stores / "train.h5", stores / "passes", cfg)
    try:
        n = len(trainer.data.train_index)
        assert trainer.data.passes == -(-50 // n)
        assert trainer.epoch_keys(3) == [3 * trainer.data.passes + k for k in range(trainer.data.passes)]
        row = trainer.train_epoch(0)
        assert row["steps"] == trainer.data.passes * (n // 8)
        orders = [np.concatenate(list(trainer.local_batches(k))) for k in trainer.epoch_keys(0)]
        assert not np.array_equal(orders[0], orders[1])
    finally:
        close(trainer)
    with pytest.raises(ConfigError, match="min_epoch_samples must be at least 0"):
        TrainConfig.from_dict({"min_epoch_samples": -1})
    from snia.train.data import passes_per_epoch

    assert passes_per_epoch(7_063, TrainConfig()) == 1  # PLAsTiCC's training split: one, as ever
    assert passes_per_epoch(93, TrainConfig()) == 69  # the SPCC subset's typed objects, less 10


def test_another_classifiers_p_ia_joins_the_teachers_on_the_survey(stores, tmp_path):
    """distill.survey_predictions: its P(Ia) for each survey light curve, found by object id
    whatever the file's order, is blended at survey_blend into the teachers' soft targets; a
    file that lacks a survey object is refused naming it."""
    from snia.store import Store
    from snia.train.data import TrainingData

    with Store(stores / "survey.h5") as survey:
        ids = survey.objects["object_id"]
    forest = np.linspace(0.05, 0.95, len(ids))
    rows = [f"{i},{p},Ia" for i, p in zip(ids, forest)][::-1]  # reversed: joined by id
    path = tmp_path / "forest.csv"
    path.write_text("object_id,p_ia,true_type\n" + "\n".join(rows) + "\n")
    base = {**TINY_MODEL, "batch_size": 8, "survey": str(stores / "survey.h5"),
            "distill": {"teachers": [str(stores / "teacher" / "best.pt")], "weight": 1.0,
                        "survey_share": 0.5}}
    blended = {**base, "distill": {**base["distill"], "survey_predictions": str(path),
                                   "survey_blend": 0.3}}
    found = []
    for settings in (base, blended):
        data = TrainingData(stores / "train.h5", TrainConfig.from_dict(settings), torch.device("cpu"))
        try:
            found.append((data.survey.p.copy(), data.survey.weight.copy()))
        finally:
            data.close()
    (teachers, _), (p, weight) = found
    np.testing.assert_allclose(p, 0.7 * teachers + 0.3 * forest, rtol=1e-6)
    from snia.train.survey import survey_weights

    np.testing.assert_allclose(weight, survey_weights(p), rtol=1e-6)  # weights of the blend
    path.write_text("object_id,p_ia\n" + "\n".join(rows[1:]).replace(",Ia", "") + "\n")
    with pytest.raises(ConfigError, match=f"no P\\(Ia\\) for 1 of the 30 light curves .*object {ids[-1]}"):
        TrainingData(stores / "train.h5", TrainConfig.from_dict(blended), torch.device("cpu"))
    with pytest.raises(ConfigError, match="survey_blend > 0 or survey_blend_from needs distill"):
        TrainConfig.from_dict({**base, "distill": {**base["distill"], "survey_blend": 0.3}})


def test_the_blend_weight_is_the_best_of_a_hand_computed_case():
    """y 0 1 0 1; teachers 0.2 0.4 0.6 0.8 (AUC 0.75: 0.4 < 0.6); the other 0.1 0.9 0.3 0.7
    (AUC 1). The blend ranks the second Ia (0.4 + 0.5 w) over the second other (0.6 - 0.3 w)
    from w > 0.25: 0.3 is the lowest weight of AUC 1."""
    from snia.train.blend import best_weight

    weight, scores = best_weight(np.array([0, 1, 0, 1]), np.array([0.2, 0.4, 0.6, 0.8]),
                                 np.array([0.1, 0.9, 0.3, 0.7]))
    assert weight == 0.3
    assert scores[0.0] == scores[0.2] == 0.75 and scores[0.3] == scores[1.0] == 1.0


def test_the_blend_weight_is_chosen_on_the_teachers_held_out_objects_re_observed(stores, tmp_path):
    """distill.survey_blend_from: each teacher scores the copies (the baseline's: the whole
    store re-observed at once, copy 0 of seed 0) of its own validation objects; the weight is
    best_weight's on them against the file's P(Ia), and the settings the checkpoint keeps name it."""
    from snia.augment.reobserve import GPCurves, Schedules, reobserved_copy
    from snia.gp.file import default_path, fit_store, read_fits
    from snia.gp.fit import GPSettings
    from snia.inference import ensemble_p_ia, load_members
    from snia.store import Store
    from snia.taxonomy import INDEX
    from snia.train.blend import best_weight
    from snia.train.config import split_objects
    from snia.train.data import TrainingData

    fit_store(stores / "train.h5", settings=GPSettings(steps=2), progress=False)
    teacher = tmp_path / "teacher"  # half its objects held out: both classes among them
    run_training(stores / "train.h5", teacher, TrainConfig.from_dict({**TINY_MODEL, "val_fraction": 0.5}))
    with Store(stores / "train.h5") as train, Store(stores / "survey.h5") as survey:
        ids, types = train.objects["object_id"], train.objects["type"]
        index = np.arange(len(train))
        copy = reobserved_copy(train.batch(index), index, 0, 0,
                               GPCurves.from_fits(train, read_fits(default_path(train.path), train)),
                               Schedules.from_store(survey, seed=0),
                               [b.wavelength for b in train.bands.bands])
    with torch.no_grad():
        p_teacher = ensemble_p_ia(load_members([teacher / "best.pt"]), copy).numpy()
    y = (types == INDEX["Ia"]).astype(int)
    other = np.where(y == 1, 0.6, 0.4) + np.linspace(-0.3, 0.3, len(y))  # a fair classifier
    path = tmp_path / "reobserved_predictions.csv"
    path.write_text("object_id,p_ia,true_type,copy,seed\n" + "".join(
        f"{i},{p:.6f},Ia,0,0\n" for i, p in zip(ids, other)))
    mine = split_objects(ids, 0.5, TINY_MODEL.get("seed", 0))
    want, _ = best_weight(y[mine], p_teacher[mine], np.round(other, 6)[mine])
    forest = tmp_path / "forest.csv"
    forest.write_text("object_id,p_ia\n" + "".join(f"{i},0.5\n" for i in range(5000, 5030)))
    settings = {**TINY_MODEL, "batch_size": 8, "survey": str(stores / "survey.h5"),
                "distill": {"teachers": [str(teacher / "best.pt")], "weight": 1.0,
                            "survey_share": 0.5, "survey_predictions": str(forest),
                            "survey_blend_from": str(path)}}
    cfg = TrainConfig.from_dict(settings)
    data = TrainingData(stores / "train.h5", cfg, torch.device("cpu"))
    data.close()
    assert cfg.distill.survey_blend == want and 0 < want  # not the setting left at 0
    from snia.provenance import survey_use

    assert survey_use(cfg.to_dict())["uses"][1].endswith(
        f"{want} of the soft targets, chosen on {path})")
    # a file of another training set's objects is refused, naming it
    path.write_text("object_id,p_ia,true_type,copy,seed\n77,0.5,Ia,0,0\n")
    with pytest.raises(ConfigError, match="object 77 .*is not in the training store"):
        TrainingData(stores / "train.h5", TrainConfig.from_dict(settings), torch.device("cpu"))
    path.write_text("object_id,p_ia,true_type,copy,seed\n77,x,Ia,0,0\n")
    with pytest.raises(ConfigError, match="reobserved_predictions.csv, line 2: needs"):
        TrainingData(stores / "train.h5", TrainConfig.from_dict(settings), torch.device("cpu"))
    # copies of two re-observation streams cannot be re-drawn as one
    path.write_text(f"object_id,p_ia,true_type,copy,seed\n{ids[0]},0.5,Ia,0,0\n{ids[1]},0.5,Ia,0,1\n")
    with pytest.raises(ConfigError, match=r"one re-observation seed, found seeds \[0, 1\]"):
        TrainingData(stores / "train.h5", TrainConfig.from_dict(settings), torch.device("cpu"))
    path.unlink()
    with pytest.raises(ConfigError, match="survey_blend_from: cannot read .*reobserved_predictions"):
        TrainingData(stores / "train.h5", TrainConfig.from_dict(settings), torch.device("cpu"))
