"""Stage 3: train the CNN on light-curve images, data-parallel over ranks (DDP).

"Is this a DDP run?" comes from the environment: torchrun (RANK/WORLD_SIZE/LOCAL_RANK), srun
(SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID) or mpiexec (OMPI_COMM_WORLD_* / PMI_*). NCCL on GPUs,
gloo on CPUs. Images are rasterized on the fly for every batch (the GPU kernels on a GPU, the Numba
CPU backend otherwise), so augmentations are fresh every epoch.

Reproducible by construction: the split into training and validation objects depends only on the
object ids and the seed; the order of objects is torch's DistributedSampler permutation of
(seed, epoch); each object's augmentation draws from an RNG keyed by (seed, epoch, object index).
So a run on N ranks with global batch B takes exactly the same steps as one rank with batch B,
and a run resumed from a checkpoint ends exactly where an uninterrupted run does.

Checkpoints are written by global rank 0 only, atomically (temp file + os.replace), with the
model, optimizer, scheduler, torch RNG state, epoch, all configs and the normalisation statistics,
and load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TASKS = ("binary", "multiclass")
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.csv"


@dataclass
class TrainConfig:
    kind: str = "heatmap"  # image kind (snia.raster)
    # binary: one Ia-vs-rest logit; multiclass: softmax over `types` (all labelled classes when
    # empty), P(Ia) = the Ia column
    task: str = "binary"
    epochs: int = 20
    batch_size: int = 128  # global batch, split evenly over ranks
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.1
    patience: int = 5  # early stopping: epochs without a better validation AUC
    augment: bool = True
    time_shift: float = 5.0  # days: uniform shift of the reference time
    drop_fraction: float = 0.3  # up to this fraction of observations dropped per object
    # extra Gaussian flux noise of up to this many sigma per object (errors grow to match)
    flux_noise: float = 0.0
    redshift_probability: float = 0.5  # chance to move an object to a higher redshift
    redshift_max: float = 1.2
    # keep only redshift moves the survey would detect (two points at S/N >= 5), trying up to
    # redshift_tries draws. Off by default: on the PLAsTiCC test example it lowered the AUC from
    # 0.83 to 0.75 (SN types, 30 epochs), though physically motivated (see augment()).
    detection_trigger: bool = False
    redshift_tries: int = 5
    backend: str = "auto"  # rasterization backend
    # true types to train and validate on (names of snia.taxonomy.CLASSES); empty: every labelled
    # object. E.g. the supernova types only, for "SN Ia vs other supernovae".
    types: list = field(default_factory=list)
    model: dict = field(default_factory=dict)  # CNNConfig overrides
    # RasterSpec overrides (image geometry), e.g. {n_time: 90, n_wave: 16} for 4x smaller,
    # faster heatmaps; saved with the model, so inference draws the same images
    raster: dict = field(default_factory=dict)
    # Knowledge distillation (Hinton et al. 2015): checkpoints, e.g. an ensemble, whose mean P(Ia)
    # on each augmented training image is a soft target. The loss is (1 - distill_weight) x the
    # loss on the true label + distill_weight x the loss on the teachers' P(Ia): one model learns
    # to score like the ensemble and runs at the speed of one model. Binary task only.
    teachers: list = field(default_factory=list)
    distill_weight: float = 0.5

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        from snia.taxonomy import CLASSES

        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(known)}")
        cfg = cls(**values)
        if cfg.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {cfg.task!r}")
        wrong = [t for t in cfg.types if t not in CLASSES or t == "unknown"]
        if wrong:
            raise ValueError(f"unknown type(s) {wrong} in 'types'; known: {list(CLASSES[:-1])}")
        cfg.types = list(cfg.types)
        cfg.teachers = [str(t) for t in cfg.teachers]
        if cfg.teachers and cfg.task != "binary":
            raise ValueError("teachers (distillation) need task 'binary': the soft target is P(Ia)")
        if not 0 <= cfg.distill_weight <= 1:
            raise ValueError(f"distill_weight must be in [0, 1], not {cfg.distill_weight}")
        return cfg


# ----------------------------------------------------------------------------- distributed setup


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launcher: str = "none"  # who started the ranks: torchrun, srun, mpiexec or none

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_from_env(env=os.environ) -> Dist:
    """Rank, world size and local rank from torchrun, mpiexec or srun variables (else 1 rank).

    MPI's variables come before SLURM's: an mpiexec inside a batch job inherits the job's
    SLURM_PROCID=0 for every rank it starts, while srun (with PMI) sets both consistently."""
    for launcher, rank, world, local in (
            ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
            ("mpiexec", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
            ("mpiexec", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
            ("srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")):
        if rank in env and world in env:
            if launcher == "mpiexec" and env.get("SLURM_PROCID") == env[rank] and "SLURM_STEP_ID" in env:
                launcher = "srun"  # srun --mpi=pmi2 sets PMI_* too
                local = "SLURM_LOCALID"
            return Dist(int(env[rank]), int(env[world]), int(env.get(local, 0)), launcher)
    return Dist()


def local_ranks(env=os.environ) -> int:
    """Ranks on this node, from torchrun, srun or mpiexec (1 when none says)."""
    for key in ("LOCAL_WORLD_SIZE", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
                "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"):
        value = env.get(key, "").split("(")[0]  # SLURM writes e.g. "2(x3)" for 3 nodes of 2
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def share_cpu_threads(env=os.environ) -> int:
    """On CPUs, give each rank its share of the cores (torch and numba threads), so N ranks on
    one node do not oversubscribe it. The cores are this process's CPU affinity, capped by
    OMP_NUM_THREADS when set: the budget of the node's ranks together (Snakemake sets it to a
    job's threads; torchrun sets 1)."""
    import numba
    import torch

    cores = len(os.sched_getaffinity(0))
    if env.get("OMP_NUM_THREADS", "").isdigit():
        cores = min(cores, int(env["OMP_NUM_THREADS"]))
    threads = max(1, cores // local_ranks(env))
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def init_distributed(dist: Dist, device) -> None:
    """Join the process group (no-op for one rank). MASTER_ADDR/PORT default to values every rank
    derives alike: the SLURM launch node and a port from the job id, else localhost:29500."""
    if dist.world == 1:
        return
    import torch.distributed as td

    os.environ.setdefault("MASTER_ADDR", os.environ.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1"))
    job = os.environ.get("SLURM_JOB_ID")
    os.environ.setdefault("MASTER_PORT", str(20000 + int(job) % 20000) if job else "29500")
    td.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=dist.rank,
                          world_size=dist.world)


# ----------------------------------------------------------------------------- data


def split_objects(object_id: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation objects: a hash of (id, seed), independent of order and ranks."""
    # the seed's mixing constant is wrapped to 64 bits in Python (exact, and no numpy overflow
    # warning); the uint64 arithmetic below wraps by design
    x = object_id.astype(np.uint64) + np.uint64(seed * 0x9E3779B97F4A7C15 % 2 ** 64)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    return (x % np.uint64(10_000)) < np.uint64(round(val_fraction * 10_000))


def augment(batch, indices: np.ndarray, epoch: int, cfg: TrainConfig, bands_wavelengths,
            noise_floor=None):
    """A fresh, reproducible variant of each light curve (new arrays; the batch is not changed).

    Per object, from an RNG keyed by (seed, epoch, object index):
    - drop a random fraction of the observations (at least one is kept); deep-drilling-field
      objects lose more (50-90 %), since the wide survey they must stand in for is far sparser;
    - shift all times by up to ``time_shift`` days;
    - add Gaussian flux noise of k sigma, k uniform in [0, ``flux_noise``], errors grown to
      sqrt(1 + k^2) sigma so they still describe the scatter;
    - with probability ``redshift_probability``, move an extragalactic object (photo-z > 0) from z
      to a higher z': times dilate by (1+z')/(1+z), fluxes dim by the luminosity-distance ratio
      squared (flat LCDM), while the errors do not shrink (sky noise dominates in a fainter
      survey; they even grow by up to 50 %): noise is added to reach them. Its photo-z becomes z',
      and each observation's effective wavelength becomes its band's x (1+z')/(1+z) (``obs["wave"]``,
      used by the heatmap images: the same rest-frame light lands in redder bands).
    - with ``detection_trigger``, a moved object must pass PLAsTiCC's detection trigger (two
      points at S/N >= 5): up to ``redshift_tries`` draws of z', else it stays at z. Without it
      the training set holds undetectable, noise-only copies at high z that the survey would
      never have found (yet, measured, the test AUC is better without it).
    - ``noise_floor`` (per band; the wide survey's typical flux error, see ``wide_survey_noise``):
      deep-drilling objects and moved objects get errors of at least this floor (x 0.7-1.3 per
      object) and the matching added noise: a deep field is 2-5x less noisy than the wide survey
      it must stand in for, and a fainter object does not get a quieter sky.
    """
    from snia.store import Batch

    times, bands, fluxes, errors, waves, lengths = [], [], [], [], [], []
    band_wave = np.asarray(bands_wavelengths, dtype=np.float64)
    meta = {k: np.array(v, copy=True) for k, v in batch.meta.items()}
    z_all = meta["hostgal_photoz"].astype(np.float64)
    ddf = meta["ddf"] if "ddf" in meta else np.zeros(len(indices), np.int8)
    for j, index in enumerate(indices):
        rng = np.random.default_rng([cfg.seed, epoch, int(index)])
        lc = batch.lightcurve(j)
        t = lc["time"].astype(np.float64)
        f, e = lc["flux"].astype(np.float64), lc["flux_err"].astype(np.float64)
        drop = rng.uniform(0.5, 0.9) if ddf[j] == 1 else rng.uniform(0, cfg.drop_fraction)
        keep = rng.random(len(t)) >= drop
        if len(t) and not keep.any():
            keep[rng.integers(len(t))] = True
        t, f, e, b = t[keep], f[keep], e[keep], lc["band"][keep]
        t = t + rng.uniform(-cfg.time_shift, cfg.time_shift)
        if cfg.flux_noise > 0:
            k = rng.uniform(0, cfg.flux_noise)
            f, e = _add_noise(f, e, e * np.sqrt(1 + k * k), 1.0, rng)
        z = z_all[j]
        floor = None if noise_floor is None else np.asarray(noise_floor)[b]
        stretch = 1.0
        moved = None
        if rng.random() < cfg.redshift_probability and np.isfinite(z) and 0 < z < cfg.redshift_max:
            # with the detection trigger, retry lower redshifts until the moved object is one
            # the survey would have found, else leave it where it is
            for _ in range(cfg.redshift_tries):
                z_new = rng.uniform(z, cfg.redshift_max)
                candidate = _move(t, f, e, z, z_new, floor, rng)
                if not cfg.detection_trigger or _detected(candidate[1], candidate[2]):
                    moved = candidate
                    break
        if moved is not None:
            t, f, e = moved
            meta["hostgal_photoz"][j] = z_new
            meta["hostgal_photoz_err"][j] *= (1 + z_new) / (1 + z)
            stretch = (1 + z_new) / (1 + z)
        elif floor is not None and ddf[j] == 1:
            f, e = _add_noise(f, e, np.maximum(e, floor * rng.uniform(0.7, 1.3)), 1.0, rng)
        times.append(t), bands.append(b), fluxes.append(f), errors.append(e), lengths.append(len(t))
        waves.append(band_wave[b] * stretch)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    obs = {"time": np.concatenate(times) if times else np.empty(0),
           "band": np.concatenate(bands).astype(np.int8) if bands else np.empty(0, np.int8),
           "flux": np.concatenate(fluxes).astype(np.float32) if fluxes else np.empty(0, np.float32),
           "flux_err": np.concatenate(errors).astype(np.float32) if errors else np.empty(0, np.float32)}
    obs["flag"] = np.zeros(len(obs["time"]), np.int32)
    obs["wave"] = np.concatenate(waves).astype(np.float32) if waves else np.empty(0, np.float32)
    return Batch(batch.object_id, offsets, obs, meta)


DETECTION_SNR = 5.0  # PLAsTiCC's trigger: at least two detections at S/N >= 5
DETECTIONS = 2


def _detected(flux: np.ndarray, err: np.ndarray) -> bool:
    return int(np.sum(flux >= DETECTION_SNR * err)) >= DETECTIONS


def _add_noise(f, e, e_new, dim, rng):
    """Flux dimmed by ``dim`` keeps its own (scaled) noise; top it up to the errors ``e_new``."""
    extra = np.sqrt(np.maximum(e_new ** 2 - (e * dim) ** 2, 0))
    return f * dim + rng.normal(0, 1, len(f)) * extra, e_new


def _move(t, f, e, z, z_new, floor, rng):
    """Times, fluxes and errors of a light curve seen from redshift z_new instead of z."""
    t0 = t.min() if len(t) else 0.0
    t = t0 + (t - t0) * (1 + z_new) / (1 + z)
    dim = (_distance(z) / _distance(z_new)) ** 2
    e_new = e * rng.uniform(1.0, 1.5)
    if floor is not None:
        e_new = np.maximum(e_new, floor * rng.uniform(0.7, 1.3))
    f, e = _add_noise(f, e, e_new, dim, rng)
    return t, f, e


def wide_survey_noise(store, indices: np.ndarray, n_bands: int, sample: int = 2000):
    """Median flux error per band of the wide-survey (non-deep-drilling) training objects: the
    noise level augmented objects are brought to. None when the store has no such objects or no
    ``ddf`` flag (then augmentation only scales errors)."""
    objects = store.objects
    if "ddf" not in objects:
        return None
    wide = np.asarray(indices)[objects["ddf"][indices] == 0]
    if len(wide) == 0:
        return None
    batch = store.batch(np.sort(wide[:: max(1, len(wide) // sample)]))
    floor = np.zeros(n_bands)
    for band in range(n_bands):
        errors = batch.obs["flux_err"][batch.obs["band"] == band]
        floor[band] = np.median(errors) if len(errors) else 0.0
    return floor


def _distance(z: float) -> float:
    """Luminosity distance in units of c/H0 for flat LCDM (Om = 0.3), by a simple integral."""
    zs = np.linspace(0, z, 64)
    integrand = 1 / np.sqrt(0.3 * (1 + zs) ** 3 + 0.7)
    return (1 + z) * float(np.trapezoid(integrand, zs))


def scalars_of(meta: dict, scale) -> np.ndarray:
    """Per-object scalar inputs: host photo-z, its error (NaN -> -1), log10 of the flux scale."""
    z = np.nan_to_num(np.asarray(meta["hostgal_photoz"], np.float64), nan=-1.0)
    ze = np.nan_to_num(np.asarray(meta["hostgal_photoz_err"], np.float64), nan=-1.0)
    return np.stack([z, ze, np.log10(np.maximum(np.asarray(scale, np.float64), 1e-3))], axis=1)


def labels_of(types: np.ndarray) -> np.ndarray:
    from snia.taxonomy import INDEX

    return (np.asarray(types) == INDEX["Ia"]).astype(np.float32)


def class_list(cfg: TrainConfig) -> list[str]:
    """The classes a multi-class model predicts (in this order); [] for a binary model."""
    from snia.taxonomy import CLASSES

    if cfg.task == "binary":
        return []
    classes = list(cfg.types) if cfg.types else [c for c in CLASSES if c != "unknown"]
    if "Ia" not in classes:
        raise ValueError(f"multiclass 'types' {classes} must include Ia (P(Ia) is the product)")
    return classes


def p_ia_of(logits, classes: list[str]):
    """P(Ia) from a model's logits: the sigmoid of a binary model, the Ia softmax column of a
    multi-class one."""
    import torch

    if not classes:
        return torch.sigmoid(logits).squeeze(1)
    return torch.softmax(logits, dim=1)[:, classes.index("Ia")]


def class_targets(types: np.ndarray, classes: list[str]) -> np.ndarray:
    """Column index of each object's true type among ``classes`` (-1: not one of them)."""
    from snia.taxonomy import INDEX

    lookup = np.full(len(INDEX), -1, np.int64)
    lookup[[INDEX[c] for c in classes]] = np.arange(len(classes))
    return lookup[np.asarray(types, np.int64)]


# ----------------------------------------------------------------------------- training


class Trainer:
    """Trains on a store's objects; call ``fit()`` on every rank."""

    def __init__(self, store_path, out_dir, cfg: TrainConfig, dist: Dist | None = None,
                 progress: bool = False, restart_on_change: bool = False):
        import torch

        from snia.models import CNNConfig, LightCurveCNN
        from snia.raster import spec_for_store
        from snia.store import Store
        from snia.taxonomy import INDEX

        self.cfg = cfg
        self.progress = progress
        self.restart_on_change = restart_on_change
        self.dist = dist or dist_from_env()
        self.out = Path(out_dir)
        # local rank -> GPU; modulo the visible GPUs, since SLURM may bind one GPU per task
        # (--ntasks-per-gpu), which each rank then sees as cuda:0
        self.device = (torch.device(f"cuda:{self.dist.local_rank % torch.cuda.device_count()}")
                       if torch.cuda.is_available() else torch.device("cpu"))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        else:
            share_cpu_threads()
        init_distributed(self.dist, self.device)
        log.info("rank %d of %d (started by %s) on %s", self.dist.rank, self.dist.world,
                 self.dist.launcher, self.device)
        if cfg.batch_size % self.dist.world:
            raise ValueError(f"global batch {cfg.batch_size} does not split over {self.dist.world} ranks")
        self.teachers = self._load_teachers()  # before opening the store: fail without leaks
        self.store = Store(store_path)
        self.spec = spec_for_store(self.store, cfg.kind, **cfg.raster)
        objects = self.store.objects
        known = objects["type"] != INDEX["unknown"]  # 'unknown' has no label to learn
        if cfg.types:
            known &= np.isin(objects["type"], [INDEX[t] for t in cfg.types])
        val = split_objects(objects["object_id"], cfg.val_fraction, cfg.seed)
        self.train_index = np.flatnonzero(known & ~val)
        self.val_index = np.flatnonzero(known & val)
        self.classes = class_list(cfg)
        # balanced class weights with mean 1 over the training set: a weighted mean loss that is
        # the same however the global batch is split over ranks (see _loss)
        if self.classes:
            counts = np.bincount(class_targets(objects["type"][self.train_index], self.classes),
                                 minlength=len(self.classes)).astype(float)
            self.class_weight = tuple(float(w) for w in np.where(
                counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1)), 0.0))
        else:
            y = labels_of(objects["type"][self.train_index])
            positive = max(float(y.mean()), 1e-6)
            self.class_weight = (0.5 / positive, 0.5 / max(1 - positive, 1e-6))
        model_cfg = CNNConfig(**{"in_channels": self.spec.channels,
                                 "n_classes": max(1, len(self.classes)), **cfg.model})
        torch.manual_seed(cfg.seed)
        self.model = LightCurveCNN(model_cfg).to(self.device)
        self.norm = self._scalar_norm()
        self.noise_floor = wide_survey_noise(self.store, self.train_index, len(self.spec.wavelengths))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer,
                                                                    T_max=max(cfg.epochs, 1))
        self.ddp = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.epoch, self.best_auc, self.best_loss, self.stale = 0, -1.0, math.inf, 0

    # -- data ------------------------------------------------------------------------------

    def _load_teachers(self) -> list:
        from snia.evaluate import load_members

        missing = [t for t in self.cfg.teachers if not Path(t).is_file()]
        if missing:
            raise FileNotFoundError(f"teacher checkpoint(s) not found: {missing}")
        teachers = load_members(self.cfg.teachers, self.device) if self.cfg.teachers else []
        if teachers and teachers[0].classes:
            raise ValueError(f"teachers {self.cfg.teachers} are multi-class models; distillation "
                             "takes binary (Ia vs rest) teachers")
        return teachers

    def _scalar_norm(self) -> dict:
        objs = self.store.objects
        sample = self.train_index[:: max(1, len(self.train_index) // 4096)]
        from snia.raster import rasterize

        scale = rasterize(self.store.batch(np.sort(sample)), self.spec, "numpy" if len(sample) < 2
                          else "cpu").scale
        s = scalars_of({k: objs[k][np.sort(sample)] for k in ("hostgal_photoz", "hostgal_photoz_err")},
                       scale)
        return {"mean": s.mean(axis=0).tolist(), "std": (s.std(axis=0) + 1e-6).tolist()}

    def _tensors(self, indices: np.ndarray, epoch: int, train: bool):
        """Images, scalars and targets of a batch, in the order of ``indices``. The target is
        the label, or with teachers in training (label, teachers' P(Ia)) on the same images."""
        import torch

        from snia.raster import _host, rasterize

        order = np.argsort(indices)  # sorted reads from the store, then back to sampler order
        batch = self.store.batch(indices[order])
        inverse = np.argsort(order)
        if train and self.cfg.augment:
            batch = augment(batch, indices[order], epoch, self.cfg, self.spec.wavelengths,
                            self.noise_floor)
        images = rasterize(batch, self.spec, self.cfg.backend)
        pixels, scale = _host(images.images), _host(images.scale)
        x = torch.as_tensor(pixels)[inverse].to(self.device)
        s = (scalars_of(batch.meta, scale) - self.norm["mean"]) / self.norm["std"]
        s = torch.as_tensor(s[inverse], dtype=torch.float32, device=self.device)
        y = (class_targets(batch.meta["type"], self.classes) if self.classes
             else labels_of(batch.meta["type"]))
        y = torch.as_tensor(y[inverse], device=self.device)
        if train and self.teachers:
            from snia.evaluate import ensemble_p_ia

            # teachers of this model's image spec reuse its images instead of drawing them again
            soft = ensemble_p_ia(self.teachers, batch, {self.spec: (pixels, scale)})[inverse]
            y = (y, torch.as_tensor(soft, dtype=torch.float32, device=self.device))
        return x, s, y

    # -- steps -----------------------------------------------------------------------------

    def _loss(self, logits, y, local_batch: int):
        """Class-weighted loss; ``y`` is the label, or (label, teachers' P(Ia)) to distil."""
        import torch.nn.functional as F

        soft = None
        if isinstance(y, tuple):
            y, soft = y
        if self.classes:
            w = logits.new_tensor(self.class_weight)[y]
            losses = F.cross_entropy(logits, y, reduction="none")
        else:
            w = y * self.class_weight[0] + (1 - y) * self.class_weight[1]
            losses = F.binary_cross_entropy_with_logits(logits.squeeze(1), y, reduction="none")
            if soft is not None:
                a = self.cfg.distill_weight
                losses = (1 - a) * losses + a * F.binary_cross_entropy_with_logits(
                    logits.squeeze(1), soft, reduction="none")
        # Sum over the local batch divided by the *local batch size*: DDP averages gradients
        # over ranks, which then equals the weighted mean over the global batch exactly.
        return (w * losses).sum() / local_batch

    def train_step(self, indices: np.ndarray, epoch: int) -> float:
        """One optimiser step on this rank's share of a global batch; returns the local loss."""
        import torch

        x, s, y = self._tensors(indices, epoch, train=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.device.type == "cuda"):
            logits = self.ddp(x, s)
        loss = self._loss(logits.float(), y, len(indices))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def local_batches(self, epoch: int):
        """This rank's store indices for each step of an epoch, from torch's DistributedSampler.

        The sampler shuffles with (seed, epoch) (``set_epoch``) and gives rank r perm[r::world];
        so step s of all ranks together covers perm[s*B:(s+1)*B], the same objects one rank with
        global batch B uses at step s. The last, incomplete global batch is dropped."""
        from torch.utils.data import DistributedSampler

        local = self.cfg.batch_size // self.dist.world
        sampler = DistributedSampler(self.train_index, num_replicas=self.dist.world,
                                     rank=self.dist.rank, shuffle=True, seed=self.cfg.seed,
                                     drop_last=True)
        sampler.set_epoch(epoch)
        mine = np.fromiter(iter(sampler), dtype=np.int64, count=len(sampler))
        for step in range(len(self.train_index) // self.cfg.batch_size):
            yield self.train_index[mine[step * local:(step + 1) * local]]

    def train_epoch(self, epoch: int) -> dict:
        self.ddp.train()
        total, count, steps, start = 0.0, 0, 0, time.perf_counter()
        batches = self.local_batches(epoch)
        if self.progress:
            from tqdm import tqdm

            batches = tqdm(batches, total=len(self.train_index) // self.cfg.batch_size,
                           desc=f"epoch {epoch + 1}", unit="step", leave=False)
        for indices in batches:
            total += self.train_step(indices, epoch) * len(indices)
            count += len(indices)
            steps += 1
        self.scheduler.step()
        sums = self._all_reduce([total, count])
        seconds = time.perf_counter() - start
        return {"train_loss": sums[0] / max(sums[1], 1), "samples_per_s": sums[1] / seconds,
                "steps": steps}

    def predict(self, indices: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """P(Ia) for objects (store indices), on this rank."""
        import torch

        self.model.eval()
        out = []
        with torch.no_grad():
            for a in range(0, len(indices), batch_size):
                x, s, _ = self._tensors(indices[a:a + batch_size], 0, train=False)
                out.append(p_ia_of(self.model(x, s).float(), self.classes).cpu().numpy())
        return np.concatenate(out) if out else np.empty(0, np.float32)

    def validate(self) -> dict:
        """Validation AUC and loss over all ranks' shares (gathered, identical on every rank)."""
        from sklearn.metrics import roc_auc_score

        mine = self.val_index[self.dist.rank::self.dist.world]
        p = self.predict(mine)
        parts = self._all_gather((mine, p))
        index = np.concatenate([q[0] for q in parts])
        prob = np.concatenate([q[1] for q in parts])
        y = labels_of(self.store.objects["type"][index])
        eps = 1e-7
        loss = float(-np.mean(y * np.log(prob + eps) + (1 - y) * np.log(1 - prob + eps)))
        auc = float(roc_auc_score(y, prob)) if 0 < y.sum() < len(y) else float("nan")
        return {"val_loss": loss, "val_auc": auc}

    # -- run -------------------------------------------------------------------------------

    def fit(self, stop_after: int | None = None) -> dict:
        """Train (resuming from out/checkpoint.pt if present) until ``epochs``, early stopping,
        or ``stop_after`` epochs in this call (used to test resuming)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.resume()
        done_now = 0
        while self.epoch < self.cfg.epochs and self.stale < self.cfg.patience:
            if stop_after is not None and done_now >= stop_after:
                break
            start = time.perf_counter()
            row = {"epoch": self.epoch + 1, **self.train_epoch(self.epoch), **self.validate(),
                   "lr": self.scheduler.get_last_lr()[0]}
            row["seconds"] = time.perf_counter() - start
            self.epoch += 1
            done_now += 1
            improved = self._improved(row)
            self.stale = 0 if improved else self.stale + 1
            if self.dist.main:
                self._log(row)
                self.save(self.out / CHECKPOINT)
                if improved:
                    self.save(self.out / BEST)
            log.info("epoch %d: loss %.4f, val AUC %.4f, %.0f samples/s", row["epoch"],
                     row["train_loss"], row["val_auc"], row["samples_per_s"])
            self._barrier()
        return {"epochs": self.epoch, "best_auc": self.best_auc}

    def _improved(self, row: dict) -> bool:
        """Early-stopping criterion: a better validation AUC; the validation loss where the AUC is
        undefined (a validation set of one class).

        A distilled model always counts as improved: it trains all epochs and keeps the last.
        Its loss is on the teachers' P(Ia) (on augmented, test-like images), so the validation
        AUC against the labels of the unaugmented, low-redshift validation objects says little
        about it (measured on the PLAsTiCC test example: stopping on it cut the default student
        to 13 of 20 epochs, test AUC 0.894; trained to the end, the same student scores 0.907)."""
        if self.teachers:
            self.best_auc = row["val_auc"]
            return True
        if math.isfinite(row["val_auc"]):
            if row["val_auc"] > self.best_auc:
                self.best_auc = row["val_auc"]
                return True
            return False
        if row["val_loss"] < self.best_loss:
            self.best_loss = row["val_loss"]
            return True
        return False

    def state(self) -> dict:
        import torch

        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "epoch": self.epoch, "best_auc": self.best_auc, "best_loss": self.best_loss,
                "stale": self.stale,
                "train_config": asdict(self.cfg), "model_config": self.model.config.to_dict(),
                "spec": self.spec.to_dict(), "norm": self.norm, "class_weight": list(self.class_weight),
                "classes": self.classes}

    def save(self, path: Path) -> None:
        import torch

        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)  # a checkpoint that exists is complete

    def resume(self) -> bool:
        import torch

        path = self.out / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, weights_only=True, map_location=self.device)
        if state["train_config"] != asdict(self.cfg):
            if not self.restart_on_change:
                raise ValueError(f"{path} was written with other training settings; use a new "
                                 f"output folder, the same settings, or --restart to start over")
            self._barrier()  # every rank has read the old checkpoint before rank 0 moves it
            if self.dist.main:
                for name in (CHECKPOINT, BEST, HISTORY):
                    if (self.out / name).exists():
                        os.replace(self.out / name, self.out / (name + ".stale"))
            log.warning("%s was written with other training settings: starting over (the old "
                        "run's files are kept as *.stale)", path)
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.best_auc, self.stale = state["epoch"], state["best_auc"], state["stale"]
        self.best_loss = state["best_loss"]
        self.norm = state["norm"]
        log.info("resumed from %s after epoch %d", path, self.epoch)
        return True

    def _log(self, row: dict) -> None:
        path = self.out / HISTORY
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _all_reduce(self, values):
        if self.dist.world == 1:
            return values
        import torch
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        td.all_reduce(t)  # sums and counts, never averages of averages
        return t.tolist()

    def _all_gather(self, obj):
        if self.dist.world == 1:
            return [obj]
        import torch.distributed as td

        parts = [None] * self.dist.world
        td.all_gather_object(parts, obj)
        return parts

    def _barrier(self):
        if self.dist.world > 1:
            import torch.distributed as td

            td.barrier()

    def close(self):
        self.store.close()
        if self.dist.world > 1:
            import torch.distributed as td

            td.destroy_process_group()


def run_training(store_path, out_dir, cfg: TrainConfig, stop_after: int | None = None,
                 progress: bool = False, restart_on_change: bool = False) -> dict:
    trainer = Trainer(store_path, out_dir, cfg, progress=progress,
                      restart_on_change=restart_on_change)
    try:
        return trainer.fit(stop_after=stop_after)
    finally:
        trainer.close()


if __name__ == "__main__":  # pragma: no cover - use `snia train`
    sys.exit("use: snia train STORE -o RUN_DIR")
