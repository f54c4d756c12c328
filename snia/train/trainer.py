"""The training loop: optimiser steps on this rank's share of each global batch, validation over
all ranks, early stopping, and atomic rank-0 checkpoints that resume exactly.

Checkpoints hold the model, optimizer, scheduler, torch RNG state, epoch, all configs, the
normalisation statistics and the history rows (``state()``); the run folder writes them
(``snia.train.run_folder``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from snia.calibration import fit_platt
from snia.errors import CheckpointError, ConfigError, first_line
from snia.inference import p_ia_of
from snia.metrics import auc
from snia.models import SEQUENCE_ARCHS, build_model, model_spec, sample_keys
from snia.parallel import Dist, all_gather, all_reduce_sum, barrier
from snia.provenance import hardware
from snia.train.config import TrainConfig
from snia.train.data import TrainingData, local_batches
from snia.train.loss import weighted_loss
from snia.train.run_folder import HISTORY, EarlyStopping, RunFolder, resumed_history, write_history

log = logging.getLogger(__name__)


class Trainer:
    """Trains a model on ``TrainingData``; call ``fit()`` on every rank."""

    def __init__(self, data: TrainingData, out_dir, cfg: TrainConfig, dist: Dist, device,
                 progress: bool = False, restart_on_change: bool = False):
        if cfg.batch_size % dist.world:
            raise ConfigError(f"global batch {cfg.batch_size} does not split over {dist.world} ranks")
        self.data, self.cfg, self.dist, self.device = data, cfg, dist, device
        self.folder = RunFolder(out_dir, dist, restart_on_change)
        self.progress = progress
        # batches made on the GPU are enqueued in line, not from a background thread: measured
        # faster on an H200 (side_stream_batches, docs/results.md)
        self.batch_worker = False
        # where this run trains, kept with its checkpoints (the report's provenance shows it)
        self.hardware = {**hardware(), "device": str(device), "ranks": dist.world,
                         "launcher": dist.launcher}
        self.build()

    def build(self) -> None:
        """A fresh model, optimizer and scheduler at epoch 0 (the same on every rank)."""
        cfg, device = self.cfg, self.device
        torch.manual_seed(cfg.seed)
        settings = asdict(cfg.model)
        if cfg.arch in SEQUENCE_ARCHS:  # one-hot over the store's registry bands
            settings["n_bands"] = len(self.data.spec.wavelengths)
        self.model = build_model(cfg.arch, settings, in_channels=self.data.spec.channels,
                                 n_classes=max(1, len(self.data.classes))).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer,
                                                                    T_max=max(cfg.epochs, 1))
        self.ddp = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.epoch = 0
        self.calibration = None  # Platt scaling fitted on the validation split (validate)
        self.history: list[dict] = []  # one row per epoch done, kept in the checkpoint
        # a distilled model trains all epochs and keeps the last (see EarlyStopping)
        self.stopping = EarlyStopping(cfg.patience, keep_last=bool(self.data.teachers))

    def loss(self, logits, y, local_batch: int):
        """Class-weighted loss; ``y`` is the label, or (label, teachers' P(Ia)) to distil."""
        return weighted_loss(logits, y, self.data.class_weight, self.data.classes,
                             self.cfg.distill.weight, local_batch)

    def train_step(self, indices: np.ndarray, epoch: int, tensors=None) -> torch.Tensor:
        """One optimiser step on this rank's share of a global batch; returns the local loss (a
        detached tensor: reading it would make the host wait for the device).
        ``tensors``: the batch's (images, scalars, targets), when made beforehand (prefetched)."""
        x, s, y = tensors if tensors is not None else self.data.tensors(indices, epoch, train=True)
        # dropout masks keyed by (seed, epoch, object), not drawn from this rank's RNG: the same
        # masks however the global batch is split over ranks, and after a resume
        keys = sample_keys(self.cfg.seed, epoch, indices, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.device.type == "cuda"):
            logits = self.ddp(*x, s, keys)  # x: (images,) or (sequences, lengths)
        labelled = int((indices < self.data.survey_offset).sum())  # survey rows come on top
        loss = self.loss(logits.float(), y, labelled)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def local_batches(self, epoch: int):
        """This rank's store indices of each step; when self-training, each followed by its
        survey light curves (as indices from ``TrainingData.survey_offset`` on)."""
        batches = local_batches(self.data.train_index, self.cfg.batch_size, self.cfg.seed, epoch,
                                self.dist.rank, self.dist.world)
        if self.data.survey is None:
            return batches
        steps = len(self.data.train_index) // self.cfg.batch_size
        theirs = self.data.survey.step_batches(epoch, steps, self.dist.rank, self.dist.world)
        return (np.concatenate([own, survey + self.data.survey_offset])
                for own, survey in zip(batches, theirs))

    def run_steps(self, batches, epoch: int):
        """Optimiser steps over batches of store indices; yields (batch size, local loss).

        Batches made on the GPU (``TrainingData.on_device``) are made on a second CUDA stream
        while the model steps on the current one (``side_stream_batches``); batches made on the
        host, in a background thread on a GPU machine, and in line on CPUs, which measured faster:
        the model's many small ops and the drawing thread contend for the interpreter and the
        cores (docs/results.md)."""
        def make(indices):
            return self.data.tensors(indices, epoch, train=True)

        if self.data.on_device:
            pairs = side_stream_batches(batches, make, self.device, worker=self.batch_worker)
        elif self.device.type == "cuda":
            pairs = prefetched(batches, make)
        else:
            pairs = ((indices, make(indices)) for indices in batches)
        for indices, tensors in pairs:
            yield len(indices), self.train_step(indices, epoch, tensors)

    def epoch_keys(self, epoch: int) -> list[int]:
        """The keys (sampler order, augmentation, dropout) of an epoch's passes over the training
        objects: one pass, or as many as make ``min_epoch_samples`` for a small training set,
        each keyed apart so that no two passes draw alike."""
        passes = self.data.passes
        return [epoch * passes + k for k in range(passes)]

    def train_epoch(self, epoch: int) -> dict:
        self.ddp.train()
        total, count, steps, start = 0.0, 0, 0, time.perf_counter()
        for key in self.epoch_keys(epoch):
            batches = self.local_batches(key)
            if self.progress:
                from tqdm import tqdm

                batches = tqdm(batches, total=len(self.data.train_index) // self.cfg.batch_size,
                               desc=f"epoch {epoch + 1}", unit="step", leave=False)
            for size, loss in self.run_steps(batches, key):
                total = total + loss.double() * size  # summed where it is: no wait per step
                count += size
                steps += 1
        if self.data.on_device:  # the last batches' augmentation checks, read once they are done
            from snia.augment.numba_cuda import check_pending

            check_pending(wait=True)
        self.scheduler.step()
        sums = all_reduce_sum([float(total), count], self.dist, self.device)
        seconds = time.perf_counter() - start
        return {"train_loss": sums[0] / max(sums[1], 1), "samples_per_s": sums[1] / seconds,
                "steps": steps}

    def predict(self, indices: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """P(Ia) for objects (store indices), on this rank."""
        self.model.eval()
        out = []
        with torch.no_grad():
            for a in range(0, len(indices), batch_size):
                x, s, _ = self.data.tensors(indices[a:a + batch_size], 0, train=False)
                out.append(p_ia_of(self.model(*x, s).float(), self.data.classes).cpu().numpy())
        return np.concatenate(out) if out else np.empty(0, np.float32)

    def validate(self) -> dict:
        """Validation AUC and loss over all ranks' shares (gathered, identical on every rank)."""
        mine = self.data.val_index[self.dist.rank::self.dist.world]
        parts = all_gather((mine, self.predict(mine)), self.dist)
        index = np.concatenate([q[0] for q in parts])
        prob = np.concatenate([q[1] for q in parts])
        y = self.data.labels(index)
        eps = 1e-7
        loss = float(-np.mean(y * np.log(prob + eps) + (1 - y) * np.log(1 - prob + eps)))
        # the map from this epoch's scores to probabilities, kept with its checkpoints
        self.calibration = fit_platt(y, prob)
        return {"val_loss": loss, "val_auc": auc(y, prob)}

    def fit(self, stop_after: int | None = None) -> dict:
        """Train (resuming from out/checkpoint.pt if present) until ``epochs``, early stopping,
        or ``stop_after`` epochs in this call (used to test resuming)."""
        self.folder.out.mkdir(parents=True, exist_ok=True)
        self.resume()
        done_now = 0
        while self.epoch < self.cfg.epochs and not self.stopping.done:
            if stop_after is not None and done_now >= stop_after:
                break
            start = time.perf_counter()
            row = {"epoch": self.epoch + 1, **self.train_epoch(self.epoch), **self.validate(),
                   "lr": self.scheduler.get_last_lr()[0]}
            row["seconds"] = time.perf_counter() - start
            self.epoch += 1
            done_now += 1
            improved = self.stopping.update(row)
            self.history.append(row)
            if self.dist.main:
                self.folder.save_epoch(self.state(), improved, self.history)
            log.info("epoch %d: loss %.4f, val AUC %.4f, %.0f samples/s", row["epoch"],
                     row["train_loss"], row["val_auc"], row["samples_per_s"])
            barrier(self.dist)
        return {"epochs": self.epoch, "best_auc": self.stopping.best_auc}

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "epoch": self.epoch, **self.stopping.state(), "train_config": self.cfg.to_dict(),
                "model_config": model_spec(self.model), "spec": self.data.spec.to_dict(),
                "norm": self.data.norm, "class_weight": list(self.data.class_weight),
                "classes": self.data.classes, "band_names": list(self.data.band_names),
                "history": list(self.history), "calibration": self.calibration,
                "hardware": self.hardware}

    def resume(self) -> bool:
        """Continue from the run folder's checkpoint, if there is one (see RunFolder.resumable)."""
        try:
            found = self.folder.resumable(self.cfg, self.device)
            if found is not None:
                self.load(*found)
        except CheckpointError as exc:
            self.build()  # a load that failed half way may have changed the model
            return self.folder.unreadable(exc)
        if found is not None:
            log.info("resumed from %s after epoch %d", found[0], self.epoch)
        return found is not None

    def load(self, path: Path, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"].cpu())  # loaded onto the device
            self.epoch = int(state["epoch"])
            self.stopping.load(state)
            self.calibration = state.get("calibration")
            self.data.norm = state["norm"]
            self.history = resumed_history(state, self.folder.out / HISTORY)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a checkpoint of this run ({first_line(exc)})") from None
        if self.dist.main:  # rows past the checkpoint dropped, a row it has and the file lacks back
            write_history(self.folder.out / HISTORY, self.history)

def prefetched(batches, make):
    """(batch, make(batch)) for each batch, making the next one in a background thread while the
    caller works on the current one: the model steps while the next images are drawn (Numba's
    kernels and torch release the GIL). The order and the values are those of a plain loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for batch in batches:
            future = pool.submit(make, batch)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (batch, future)
        if pending is not None:
            yield pending[0], pending[1].result()


def side_stream_batches(batches, make, device, worker: bool = False):
    """(batch, make(batch)) for each batch, each made on a second CUDA stream while the model
    steps on the current one. ``make`` only enqueues work (nothing in it waits for the device),
    so while step k runs on the GPU, batch k+1 is being gathered, augmented and rasterized beside
    it. With ``worker``, batch k+1 is also enqueued from a background thread while this thread
    enqueues step k (both are bound by the host's launch work at small batches); on an H200 that
    measured slower than enqueuing in line (the two threads contend for the interpreter), so it
    is off by default (docs/results.md).

    The current stream waits for a batch's event before its step reads it; and since memory freed
    by a batch is reused by later batches made on the side stream, making batch k+1 first waits
    for step k-1, the last reader of the memory freed by then (batch k-1's); the first batch waits
    for everything enqueued on the current stream before."""
    import cupy

    index = torch.cuda.current_device() if device.index is None else device.index
    main = torch.cuda.current_stream(device)
    side = torch.cuda.Stream(device)

    def made_on_side(batch, after):
        # (streams are per thread: set them in the thread that makes the batch)
        with torch.cuda.device(index), torch.cuda.stream(side), \
                cupy.cuda.ExternalStream(side.cuda_stream, index):
            if after is not None:
                side.wait_event(after)
            tensors = make(batch)
            return batch, tensors, side.record_event()

    pool = ThreadPoolExecutor(max_workers=1) if worker else None
    try:
        # the event of the last step enqueued; for the first batch, of all the main stream has
        # enqueued so far (the last epoch's steps, whose memory the batch may reuse, and the
        # device store's upload): nothing is ordered by chance
        read = main.record_event()
        pending = None  # the batch made before: (batch, tensors, ready) or its future
        for batch in batches:
            item = pool.submit(made_on_side, batch, read) if pool else made_on_side(batch, read)
            if pending is not None:
                done, tensors, ready = pending.result() if pool else pending
                pending = None  # its memory is freed once its step is enqueued and it is let go
                main.wait_event(ready)
                yield done, tensors
                del tensors
                read = main.record_event()
            pending = item
        if pending is not None:
            done, tensors, ready = pending.result() if pool else pending
            main.wait_event(ready)
            yield done, tensors
    finally:
        if pool:
            pool.shutdown(wait=True)
