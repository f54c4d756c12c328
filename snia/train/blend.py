"""How much of another classifier's P(Ia) joins the teachers' in the student's soft targets on the
survey (``distill.survey_blend``), chosen without the survey's labels (``distill.survey_blend_from``).

The members and the forest (``snia baseline``) err apart, and which of them to trust more depends
on the survey: on PLAsTiCC's test example the forest scored 0.944 against the members' 0.919, on
the SPCC subset 0.892 against 0.903 (docs/results.md rows 55-56), and a fixed weight suits one of
them only. The survey's labels cannot be read; training objects re-observed through the survey's
schedules, flux errors and photo-z can stand in for them: they are labelled and look like the
survey. ``snia baseline`` scores each of its re-observed copies with a forest fitted without the
copy's object (reobserved_predictions.csv); here each teacher scores the same light curves (the
same re-observation stream, keyed by the file's seed and copy) of the objects of its own
validation split, which it never trained on. The weight w in 0, 0.1, ..., 1 whose blend
(1 - w) x teachers + w x forest has the highest AUC on them is used (the lowest of tied ones).
A teacher scores alone what an ensemble would score together, so the members' side is judged a
little low: the choice leans, if anything, toward the forest.
"""

from __future__ import annotations

import csv
import logging

import numpy as np
import torch

from snia.augment.reobserve import GPCurves, Schedules, reobserved_copy
from snia.checkpoints import read_checkpoint
from snia.errors import ConfigError
from snia.inference import ensemble_p_ia
from snia.metrics import auc
from snia.store import Store
from snia.taxonomy import INDEX, labels_of
from snia.train.config import split_objects

log = logging.getLogger(__name__)

WEIGHTS = tuple(k / 10 for k in range(11))
BATCH = 1024  # light curves re-observed and scored at once


def read_held_out(path) -> dict:
    """object_id, copy, seed and p_ia arrays of a reobserved_predictions.csv (its true_type is
    not read: the training store's labels are)."""
    columns = {"object_id": [], "copy": [], "seed": [], "p_ia": []}
    try:
        with open(path, newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    for name in ("object_id", "copy", "seed"):
                        columns[name].append(int(row[name]))
                    columns["p_ia"].append(float(row["p_ia"]))
                except (KeyError, TypeError, ValueError):
                    raise ConfigError(f"{path}, line {line}: needs integers in columns object_id, "
                                      "copy and seed and a number in p_ia") from None
    except OSError as exc:
        raise ConfigError(f"distill.survey_blend_from: cannot read {path}: {exc.strerror}") from None
    out = {k: np.array(v, dtype=np.float64 if k == "p_ia" else np.int64) for k, v in columns.items()}
    if not len(out["object_id"]) or len(set(out["seed"].tolist())) != 1:
        raise ConfigError(f"{path}: needs rows of one re-observation seed, found seeds "
                          f"{sorted(set(out['seed'].tolist()))}")
    return out


def store_rows(store: Store, object_id: np.ndarray, path) -> np.ndarray:
    """The training store's row of each object id, refusing an id it does not hold."""
    rows = store.rows_of(object_id)
    wrong = np.flatnonzero(rows < 0)
    if len(wrong):
        raise ConfigError(f"{path}: object {int(object_id[wrong[0]])} (and {len(wrong) - 1} more) is "
                          f"not in the training store {store.path}: copies of another training set?")
    return rows


def teachers_on_copies(store: Store, survey_path, teachers: list, rows: np.ndarray,
                       copy: np.ndarray, seed: int) -> np.ndarray:
    """Each teacher's P(Ia) on the re-observed copies (store ``rows``, ``copy``) of the objects of
    its validation split; the mean where several hold one, NaN where none does."""
    from snia.gp.file import default_path, read_fits

    curves = GPCurves.from_fits(store, read_fits(default_path(store.path), store))
    with Store(survey_path) as survey:
        schedules = Schedules.from_store(survey, seed=seed)
    wave = np.array([b.wavelength for b in store.bands.bands], dtype=np.float64)
    object_id = np.asarray(store.objects["object_id"])[rows]
    total, count = np.zeros(len(rows)), np.zeros(len(rows))
    for teacher in teachers:
        cfg = read_checkpoint(teacher.path, keys=("train_config",))["train_config"]
        held = split_objects(object_id, cfg["val_fraction"], cfg["seed"])
        for c in np.unique(copy):
            pick = np.flatnonzero(held & (copy == c))
            pick = pick[np.argsort(rows[pick], kind="stable")]
            for start in range(0, len(pick), BATCH):
                part = pick[start:start + BATCH]
                batch = reobserved_copy(store.batch(rows[part]), rows[part], int(c), seed, curves,
                                        schedules, wave)
                with torch.no_grad():
                    total[part] += ensemble_p_ia([teacher], batch).float().cpu().numpy()
                count[part] += 1
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def best_weight(y: np.ndarray, p_teachers: np.ndarray, p_other: np.ndarray) -> tuple[float, dict]:
    """The weight of WEIGHTS whose blend has the highest AUC (the lowest of tied ones), and each
    weight's AUC."""
    scores = {w: float(auc(y, (1 - w) * p_teachers + w * p_other)) for w in WEIGHTS}
    best = max(scores.values())
    return next(w for w in WEIGHTS if scores[w] == best), scores


def chosen_blend(store: Store, survey_path, teachers: list, path) -> float:
    """The blend weight chosen on the held-out re-observed copies of ``path`` (logged with each
    weight's AUC and the number of light curves and Ia among them)."""
    held = read_held_out(path)
    rows = store_rows(store, held["object_id"], path)
    types = np.asarray(store.objects["type"])[rows]
    p_teachers = teachers_on_copies(store, survey_path, teachers, rows, held["copy"],
                                    int(held["seed"][0]))
    scored = ~np.isnan(p_teachers) & ~np.isnan(held["p_ia"]) & (types != INDEX["unknown"])
    y = labels_of(types[scored])
    if y.min(initial=1) == y.max(initial=0):
        raise ConfigError(f"{path}: the teachers' validation objects among its copies are not of "
                          f"both classes ({int(scored.sum())} light curves): too few to choose "
                          "distill.survey_blend; give it instead of survey_blend_from")
    weight, scores = best_weight(y, p_teachers[scored], held["p_ia"][scored])
    log.info("survey blend %.1f of %s, chosen on %d held-out re-observed light curves (%d Ia): "
             "AUC %s", weight, path, len(y), int(y.sum()),
             ", ".join(f"{w:.1f}: {a:.4f}" for w, a in scores.items()))
    return weight
