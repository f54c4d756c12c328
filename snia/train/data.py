"""What training reads, built once before the Trainer: the store's labelled objects split into
training and validation, their targets and class weights, the scaling of the per-object inputs,
the wide-survey noise floor of the augmentation and the teachers of a distilled model; and how a
list of store indices becomes tensors (augmented, rasterized, with targets).

Reproducible by construction: the split depends only on the object ids and the seed (a hash, not
an order); the order of objects is torch's DistributedSampler permutation of (seed, epoch); each
object's augmentation draws from an RNG keyed by (seed, epoch, object); its dropout masks are
keyed by (seed, epoch, store index) (``snia.models.KeyedDropout``, keys from ``sample_keys``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from snia.augment import augment, wide_survey_noise
from snia.augment.reobserve import reobserve
from snia.errors import ConfigError
from snia.inference import ensemble_p_ia, load_members
from snia.models import SEQUENCE_ARCHS
from snia.models.inputs import scalar_inputs, scalars_of, sequence_inputs
from snia.parallel import Dist, local_ranks
from snia.raster import rasterize, spec_for_store, to_host
from snia.store import Store
from snia.store.resident import ResidentStore, fits, resident_bytes
from snia.store.shared import node_shared_columns
from snia.taxonomy import CLASSES, INDEX, class_list, class_targets, labels_of
from snia.train.config import TrainConfig, split_objects
from snia.train.survey import SurveyCurves, reobservation

log = logging.getLogger(__name__)


def local_batches(train_index: np.ndarray, batch_size: int, seed: int, epoch: int, rank: int,
                  world: int):
    """This rank's store indices for each step of an epoch, from torch's DistributedSampler.

    The sampler shuffles with (seed, epoch) (``set_epoch``) and gives rank r perm[r::world]; so
    step s of all ranks together covers perm[s*B:(s+1)*B], the same objects one rank with global
    batch B uses at step s. The last, incomplete global batch is dropped."""
    from torch.utils.data import DistributedSampler

    local = batch_size // world
    sampler = DistributedSampler(train_index, num_replicas=world, rank=rank, shuffle=True,
                                 seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    mine = np.fromiter(iter(sampler), dtype=np.int64, count=len(sampler))
    for step in range(len(train_index) // batch_size):
        yield train_index[mine[step * local:(step + 1) * local]]


def load_teachers(checkpoints: list, device) -> list:
    """The ensemble a model is distilled from (binary models only)."""
    missing = [t for t in checkpoints if not Path(t).is_file()]
    if missing:
        raise FileNotFoundError(f"teacher checkpoint(s) not found: {missing}")
    teachers = load_members(checkpoints, device) if checkpoints else []
    if teachers and teachers[0].classes:
        raise ConfigError(f"teachers {checkpoints} are multi-class models; distillation takes "
                          "binary (Ia vs rest) teachers")
    return teachers


def resident_or_store(store, share: float = 0.5, shared: dict | None = None):
    """The store's observations in memory: ``shared`` by the node's ranks when given
    (``node_shared_columns``), else this rank's own copy when it takes at most ``share`` of the
    memory available to each of this node's ranks (a batch is then a vectorised gather), else the
    store itself (each batch read from HDF5: slower, any size)."""
    if shared is not None:
        return ResidentStore(store, obs=shared)
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / local_ranks()
    if not fits(store, share * available):
        log.warning("%s: %.1f GB of observations do not fit in memory beside the other ranks: "
                    "reading each batch from the store (slower)", store.path,
                    resident_bytes(store) / 1e9)
        return store
    return ResidentStore(store)


def on_device_pipeline(device, backend: str) -> bool:
    """Whether batches are made on the GPU end to end (gather, augmentation, images): a CUDA
    device with CuPy (the images) and Numba CUDA (the augmentation), and the rasterization
    backend ``auto`` or ``cupy``."""
    if torch.device(device).type != "cuda" or backend not in ("auto", "cupy"):
        return False
    from snia.raster import available_backends

    return "cupy" in available_backends() and "numba-cuda" in available_backends()


def device_resident_or_none(store, device, share: float = 0.5, shared: dict | None = None):
    """The store's observations in this rank's GPU memory when they take at most ``share`` of
    what is free there, else None (then the host pipeline is used); uploaded from the node's
    ``shared`` copy when given, else read from the store."""
    import cupy

    with cupy.cuda.Device(torch.device(device).index or 0):
        free, _ = cupy.cuda.Device().mem_info
        if not fits(store, share * free):
            log.warning("%s: %.1f GB of observations do not fit in GPU memory: batches are made "
                        "on the host", store.path, resident_bytes(store) / 1e9)
            return None
        return ResidentStore(store, xp=cupy, obs=shared)


class TrainingData:
    """A store's training and validation objects and everything derived from them (see the
    module docstring); ``tensors()`` makes a batch."""

    def __init__(self, store_path, cfg: TrainConfig, device, dist: Dist | None = None):
        """``dist``: the ranks of a DDP run, which then read the store once per node (every
        rank must construct its TrainingData)."""
        self.cfg, self.device = cfg, device
        self.teachers = load_teachers(cfg.distill.teachers, device)  # before opening the store
        self.store = Store(store_path)
        shared = node_shared_columns(self.store, dist) if dist is not None else None
        # where batches are gathered from: GPU memory (then made there end to end), host
        # memory, or the store itself
        self.source = None
        # a recurrent model reads the (augmented) observations, not images
        self.sequences = cfg.arch in SEQUENCE_ARCHS
        self.reobserved = reobservation(self.store, cfg)
        # names of the registry bands the spec's wavelengths list (kept with the model, so that
        # inference can tell data of other bands)
        self.band_names = tuple(b.name for b in self.store.bands.bands)
        # self-training: the survey's light curves with the teachers' P(Ia) (snia.train.survey);
        # in a batch, survey object i is index len(store) + i
        self.survey = None
        if cfg.distill.survey_share > 0:
            self.survey = SurveyCurves(cfg.survey, self.teachers, self.band_names, cfg,
                                       train_store=self.store)
        self.survey_offset = len(self.store)
        # re-observation and self-training run on the host: batches are then made there
        if (on_device_pipeline(device, cfg.backend) and not self.sequences
                and not self.reobserved and self.survey is None):
            self.source = device_resident_or_none(self.store, device, shared=shared)
        self.on_device = self.source is not None
        if self.source is None:
            self.source = resident_or_store(self.store, shared=shared)
        self.spec = spec_for_store(self.store, cfg.kind, **cfg.raster)
        objects = self.store.objects
        known = objects["type"] != INDEX["unknown"]  # 'unknown' has no label to learn
        if cfg.types:
            known &= np.isin(objects["type"], [INDEX[t] for t in cfg.types])
        val = split_objects(objects["object_id"], cfg.val_fraction, cfg.seed)
        self.train_index = np.flatnonzero(known & ~val)
        self.val_index = np.flatnonzero(known & val)
        self.classes = class_list(cfg.task, cfg.types)
        check_classes(self.store, self.train_index, cfg, self.classes)
        # passes over a small training set per epoch (each keyed apart: Trainer.epoch_keys)
        self.passes = passes_per_epoch(len(self.train_index), cfg)
        self.class_weight = self._class_weight()
        self.norm = self._scalar_norm()
        self.noise_floor = wide_survey_noise(self.store, self.train_index, len(self.spec.wavelengths))

    def _class_weight(self) -> tuple:
        """Balanced class weights with mean 1 over the training set: a weighted mean loss that is
        the same however the global batch is split over ranks (see Trainer.loss)."""
        types = self.store.objects["type"][self.train_index]
        if self.classes:
            counts = np.bincount(class_targets(types, self.classes),
                                 minlength=len(self.classes)).astype(float)
            return tuple(float(w) for w in np.where(
                counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1)), 0.0))
        positive = max(float(labels_of(types).mean()), 1e-6)
        return (0.5 / positive, 0.5 / max(1 - positive, 1e-6))

    def _scalar_norm(self) -> dict:
        """Mean and spread of the per-object inputs over a sample of the training objects."""
        sample = np.sort(self.train_index[:: max(1, len(self.train_index) // 4096)])
        scale = rasterize(self.store.batch(sample), self.spec,
                          "numpy" if len(sample) < 2 else "cpu").scale
        objects = self.store.objects
        s = scalars_of({k: objects[k][sample] for k in ("hostgal_photoz", "hostgal_photoz_err")},
                       scale)
        return {"mean": s.mean(axis=0).tolist(), "std": (s.std(axis=0) + 1e-6).tolist()}

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """Ia (1) or not (0) for store indices."""
        return labels_of(self.store.objects["type"][indices])

    def tensors(self, indices: np.ndarray, epoch: int, train: bool):
        """The model's inputs ((images,), or (sequences, lengths) for a recurrent arch), scalars
        and targets of a batch, in the order of ``indices``. The target is the label, or with
        teachers in training (label, teachers' P(Ia)) on the same augmented light curves; with
        survey light curves in the batch (self-training: indices from ``survey_offset`` on, after
        the labelled ones), (label, soft target, survey weight: NaN on labelled rows)."""
        if self.on_device:
            return self._device_tensors(indices, epoch, train)
        theirs = indices >= self.survey_offset
        if train and theirs.any():
            return self._with_survey(indices[~theirs], indices[theirs] - self.survey_offset,
                                     epoch)
        order = np.argsort(indices)  # sorted reads from the store, then back to sampler order
        batch = self.source.batch(indices[order])
        inverse = np.argsort(order)
        if train and self.cfg.augment.enabled:
            batch = augment(batch, epoch, self.cfg.seed, self.cfg.augment, self.spec.wavelengths,
                            self.noise_floor)
            if self.reobserved:
                batch = reobserve(batch, indices[order], epoch, self.cfg.seed, self.cfg.augment,
                                  *self.reobserved, self.spec.wavelengths)
        back = torch.as_tensor(inverse).to(self.device, non_blocking=True)  # to sampler order
        if self.sequences:
            return self._sequence_tensors(batch, train, inverse, back)
        x, s, drawn = self._image_inputs(batch, inverse, back)
        return x, s, self._targets(batch, train, drawn, inverse)

    def _image_inputs(self, batch, inverse, back):
        """A batch's images and scalars in sampler order (``inverse``, ``back``: see tensors),
        with the images drawn (for teachers of the same spec)."""
        images = rasterize(batch, self.spec, self.cfg.backend)
        pixels, scale = to_host(images.images), to_host(images.scale)
        x = torch.as_tensor(pixels)[inverse].to(self.device)
        s = scalar_inputs(batch.meta, scale, self.norm["mean"], self.norm["std"], self.device)
        return (x,), s[back], {self.spec: (pixels, scale)}

    def _with_survey(self, own: np.ndarray, theirs: np.ndarray, epoch: int):
        """A labelled batch followed by survey light curves (as observed, not augmented) whose
        targets are the teachers' P(Ia), weighted by ``SurveyCurves.weight``."""
        (x, ), s, (y, soft) = self.tensors(own, epoch, train=True)
        order = np.argsort(theirs)
        inverse = np.argsort(order)
        back = torch.as_tensor(inverse).to(self.device)
        survey = self.survey.batch(theirs[order])
        if self.cfg.distill.survey_augment and self.cfg.augment.enabled:
            survey = augment(survey, epoch, self.cfg.seed, self.survey.augment_settings,
                             self.spec.wavelengths, self.noise_floor)
        (xs, ), ss, _ = self._image_inputs(survey, inverse, back)

        def on_device(values):
            return torch.as_tensor(values).to(self.device)

        weight = torch.cat([torch.full((len(own),), float("nan"), device=self.device),
                            on_device(self.survey.weight[theirs])])
        return ((torch.cat([x, xs]),), torch.cat([s, ss]),
                (torch.cat([y, torch.zeros(len(theirs), dtype=y.dtype, device=self.device)]),
                 torch.cat([soft, on_device(self.survey.p[theirs])]), weight))

    def _sequence_tensors(self, batch, train: bool, inverse, back):
        """A recurrent model's inputs: per-observation features padded to the batch's longest
        light curve, with the lengths (kept on the CPU, where packing reads them)."""
        (features, lengths), scale = sequence_inputs(batch, len(self.spec.wavelengths),
                                                      self.cfg.model.window)
        s = scalar_inputs(batch.meta, scale, self.norm["mean"], self.norm["std"], self.device)
        host_back = torch.as_tensor(inverse)
        x = (features[host_back].to(self.device, non_blocking=True), lengths[host_back])
        return x, s[back], self._targets(batch, train, {}, inverse)

    def _device_tensors(self, indices: np.ndarray, epoch: int, train: bool):
        """The same on the GPU end to end: gathered from the resident observations, augmented
        (Numba CUDA) and rasterized (CuPy) there, handed to torch by DLPack; nothing waits for
        the device (run on a side stream, see ``snia.train.trainer.side_stream_batches``)."""
        from snia.raster.cupy import rasterize_on_device

        batch = self.source.batch(indices)  # the gather keeps the sampler's order
        longest = int(self.source.length[indices].max()) if len(indices) else 0
        if train and self.cfg.augment.enabled:
            batch = augment(batch, epoch, self.cfg.seed, self.cfg.augment, self.spec.wavelengths,
                            self.noise_floor, backend="numba-cuda")
        images = rasterize_on_device(batch, self.spec, longest)
        x = torch.from_dlpack(images.images)
        s = scalar_inputs(batch.meta, images.scale, self.norm["mean"], self.norm["std"],
                          self.device)
        return (x,), s, self._targets(batch, train, {self.spec: (x, images.scale)})

    def _targets(self, batch, train: bool, drawn: dict, inverse=None):
        """Labels (host types, sent to the device), with the teachers' P(Ia) when distilling;
        ``inverse`` puts a batch read in sorted order back in the sampler's order."""
        types = np.asarray(batch.meta["type"])
        y = class_targets(types, self.classes) if self.classes else labels_of(types)
        order = None if inverse is None else torch.as_tensor(inverse).to(self.device,
                                                                         non_blocking=True)
        y = torch.as_tensor(y if inverse is None else y[inverse]).to(self.device,
                                                                     non_blocking=True)
        if train and self.teachers:
            # teachers of this model's image spec reuse its images instead of drawing them again
            soft = ensemble_p_ia(self.teachers, batch, drawn).float()
            y = (y, soft if order is None else soft[order])
        return y

    def close(self) -> None:
        self.store.close()


def passes_per_epoch(n_train: int, cfg: TrainConfig) -> int:
    """Passes over ``n_train`` training objects that make an epoch of at least
    ``cfg.min_epoch_samples`` (one for a large set, and by default)."""
    return max(1, -(-cfg.min_epoch_samples // max(n_train, 1)))


def check_classes(store, train_index: np.ndarray, cfg: TrainConfig, classes: list[str]) -> None:
    """Refuse, before any work, a training set with fewer than two classes to learn (none, or
    e.g. ``types: [II, Ibc]`` for an Ia-vs-rest model), naming the types found."""
    types = store.objects["type"][train_index]
    found = {CLASSES[t]: int(n) for t, n in enumerate(np.bincount(types, minlength=len(CLASSES))) if n}
    chosen = f" of types {cfg.types}" if cfg.types else " with a known type"
    if not found:
        raise ConfigError(f"{store.path}: no training objects{chosen} (the store holds "
                          f"{len(store)} objects): nothing to train on")
    targets = class_targets(types, classes) if classes else labels_of(types)
    learnt = np.unique(targets[targets >= 0])
    if len(learnt) < 2:
        what = f"classes {classes}" if classes else "Ia and not Ia (task binary)"
        raise ConfigError(f"{store.path}: the training objects{chosen} are of one class only "
                          f"(found {found}); a {cfg.task} model needs at least two of {what}")
