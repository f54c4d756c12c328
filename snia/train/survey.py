"""What training takes from the survey the model is for (``TrainConfig.survey``), read unlabelled:
its observing schedules, flux errors and photo-z for re-observing the training objects
(``reobservation``), and its own light curves for self-training (``SurveyCurves``).

Self-training (``distill.survey_share`` > 0) extends distillation from the augmented training
images to the survey's light curves: the teachers' mean P(Ia) on each survey light curve is its
soft target, and every optimiser step adds ``survey_share`` x the batch size of them to the
labelled batch. The teachers score each survey light curve once, as the survey observed it (it is
not augmented: it already is the data the model is for). Against confirmation bias (a student
learning the teachers' mistakes with more confidence), each survey light curve's loss is weighted
by the teachers' confidence |2 P(Ia) - 1| and by a class balance from the teachers' estimate of
the survey's Ia share, so that a survey dominated by one class does not pull the student toward
it; the weights have mean 1 over the survey.

Nothing here reads the survey's labels: the batches' ``type`` is set to 'unknown' before anything
sees them (tests/test_self_training.py: shuffled labels give a bit-identical model).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from snia.augment.reobserve import GPCurves, Schedules
from snia.errors import ConfigError
from snia.inference import ensemble_p_ia
from snia.store import Store
from snia.store.resident import ResidentStore
from snia.taxonomy import INDEX
from snia.train.blend import chosen_blend

log = logging.getLogger(__name__)

# key of the survey's own permutation stream (differs from the labelled sampler's)
SURVEY_STREAM = 0x5E1F


def reobservation(store, cfg):
    """The training objects' GP curves and the survey's schedules, when the settings re-observe
    objects (``augment.reobserve_probability`` > 0), else None. The fits are the training store's
    (``snia gp fit``), refused when missing or made from another store."""
    from snia.gp.file import default_path, read_fits

    if not (cfg.augment.enabled and cfg.augment.reobserve_probability > 0):
        return None
    curves = GPCurves.from_fits(store, read_fits(default_path(store.path), store))
    with Store(cfg.survey) as survey:
        schedules = Schedules.from_store(survey, seed=cfg.seed)
    return curves, schedules


def unlabelled(batch):
    """A batch whose every ``type`` is 'unknown': what self-training may know of the survey."""
    batch.meta["type"] = np.full(len(batch.meta["type"]), INDEX["unknown"],
                                 dtype=batch.meta["type"].dtype)
    return batch


def predictions_for(path, object_id: np.ndarray, survey) -> np.ndarray:
    """P(Ia) of a predictions.csv for each survey object, by object id (its true_type column,
    where there is one, is not read); every survey object must be there."""
    import csv

    found = {}
    try:
        with open(path, newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    found[int(row["object_id"])] = float(row["p_ia"])
                except (KeyError, TypeError, ValueError):
                    raise ConfigError(f"{path}, line {line}: needs numbers in columns object_id "
                                      f"and p_ia") from None
    except OSError as exc:
        raise ConfigError(f"distill.survey_predictions: cannot read {path}: {exc.strerror}") from None
    missing = [int(i) for i in object_id if int(i) not in found]
    if missing:
        raise ConfigError(f"{path} has no P(Ia) for {len(missing)} of the {len(object_id)} light "
                          f"curves of survey {survey} (object {missing[0]}, ...): predictions of "
                          f"another data set?")
    return np.array([found[int(i)] for i in object_id], dtype=np.float64)


def survey_weights(p: np.ndarray) -> np.ndarray:
    """Per light curve: confidence |2p - 1| x the expected class weight under the soft label p,
    balanced at the teachers' Ia share of the survey; mean 1 over the survey."""
    share = float(np.clip(p.mean(), 1e-3, 1 - 1e-3))
    balance = p * 0.5 / share + (1 - p) * 0.5 / (1 - share)
    w = np.abs(2 * p - 1) * balance
    return (w / max(float(w.mean()), 1e-12)).astype(np.float32)


class SurveyCurves:
    """The survey's light curves in memory, the teachers' P(Ia) on each and its loss weight, and
    the survey objects of each optimiser step."""

    def __init__(self, path, teachers: list, band_names: tuple, cfg, batch_size: int = 512,
                 train_store: Store | None = None):
        """``train_store``: the training store, whose re-observed copies choose the blend weight when
        ``distill.survey_blend_from`` is set (``snia.train.blend``); the weight chosen is written
        into ``cfg.distill.survey_blend``, so that the checkpoint's settings name it."""
        if not teachers:
            raise ConfigError("distill.survey_share > 0 needs distill.teachers: their P(Ia) on "
                              "the survey's light curves are the soft targets")
        with Store(path) as store:
            found = tuple(b.name for b in store.bands.bands)
            if found != tuple(band_names):
                raise ConfigError(f"survey {path}: bands {list(found)} differ from the training "
                                  f"store's {list(band_names)}")
            if not len(store):
                raise ConfigError(f"survey {path}: the store holds no light curves")
            self.source = ResidentStore(store)
        self.path, self.cfg = str(path), cfg
        self.size = max(1, round(cfg.distill.survey_share * cfg.batch_size))
        with torch.no_grad():
            self.p = np.concatenate([
                ensemble_p_ia(teachers, self.batch(np.arange(a, min(a + batch_size, len(self)))))
                .float().cpu().numpy() for a in range(0, len(self), batch_size)])
        if cfg.distill.survey_blend_from:
            cfg.distill.survey_blend = chosen_blend(train_store, path, teachers,
                                                    cfg.distill.survey_blend_from)
        if cfg.distill.survey_predictions and cfg.distill.survey_blend > 0:
            other = predictions_for(cfg.distill.survey_predictions, self.source.object_id, path)
            self.p = ((1 - cfg.distill.survey_blend) * self.p
                      + cfg.distill.survey_blend * other).astype(self.p.dtype)
        self.weight = survey_weights(self.p)
        # the student's noise on survey light curves (distill.survey_augment): the augmentation
        # without moves to another redshift, which would change what the teachers scored
        self.augment_settings = replace(cfg.augment, redshift_probability=0.0,
                                        reobserve_probability=0.0)
        log.info("survey %s: %d light curves, teachers' Ia share %.3f, %d per step%s",
                 self.path, len(self), float(self.p.mean()), self.size,
                 f" (with {cfg.distill.survey_predictions} at {cfg.distill.survey_blend})"
                 if cfg.distill.survey_blend > 0 else "")

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices):
        return unlabelled(self.source.batch(indices))

    def step_batches(self, epoch: int, steps: int, rank: int, world: int):
        """This rank's survey indices for each of an epoch's steps: the global survey batch of
        step s is the next ``size`` objects of a permutation keyed by (seed, epoch, round),
        a new round whenever the survey is used up; rank r takes every world-th of them."""
        size = self.size - self.size % world or world
        order = np.empty(0, np.int64)
        rounds = 0
        while len(order) < steps * size:
            rng = np.random.default_rng([self.cfg.seed, SURVEY_STREAM, epoch, rounds])
            order = np.concatenate([order, rng.permutation(len(self))])
            rounds += 1
        for step in range(steps):
            yield order[step * size:(step + 1) * size][rank::world]
