"""The training loop: optimiser steps on this rank's share of each global batch, validation over
all ranks, early stopping, and atomic rank-0 checkpoints that resume exactly.

Checkpoints hold the model, optimizer, scheduler, torch RNG state, epoch, all configs and the
normalisation statistics, are written by global rank 0 only, atomically (temp file + os.replace),
and load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from snia.errors import ConfigError
from snia.files import atomic_path
from snia.inference import p_ia_of
from snia.metrics import auc
from snia.models import LightCurveCNN
from snia.parallel import Dist
from snia.train.config import TrainConfig, same_training
from snia.train.data import TrainingData, local_batches

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.csv"


class Trainer:
    """Trains a model on ``TrainingData``; call ``fit()`` on every rank."""

    def __init__(self, data: TrainingData, out_dir, cfg: TrainConfig, dist: Dist, device,
                 progress: bool = False, restart_on_change: bool = False):
        if cfg.batch_size % dist.world:
            raise ConfigError(f"global batch {cfg.batch_size} does not split over {dist.world} ranks")
        self.data, self.cfg, self.dist, self.device = data, cfg, dist, device
        self.out, self.progress, self.restart_on_change = Path(out_dir), progress, restart_on_change
        torch.manual_seed(cfg.seed)
        self.model = LightCurveCNN(replace(cfg.model, in_channels=data.spec.channels,
                                           n_classes=max(1, len(data.classes)))).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer,
                                                                    T_max=max(cfg.epochs, 1))
        self.ddp = self.model
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.epoch = 0
        # a distilled model trains all epochs and keeps the last (see EarlyStopping)
        self.stopping = EarlyStopping(cfg.patience, keep_last=bool(data.teachers))

    def loss(self, logits, y, local_batch: int):
        """Class-weighted loss; ``y`` is the label, or (label, teachers' P(Ia)) to distil."""
        soft = None
        if isinstance(y, tuple):
            y, soft = y
        weight = self.data.class_weight
        if self.data.classes:
            w = logits.new_tensor(weight)[y]
            losses = F.cross_entropy(logits, y, reduction="none")
        else:
            w = y * weight[0] + (1 - y) * weight[1]
            losses = F.binary_cross_entropy_with_logits(logits.squeeze(1), y, reduction="none")
            if soft is not None:
                a = self.cfg.distill.weight
                losses = (1 - a) * losses + a * F.binary_cross_entropy_with_logits(
                    logits.squeeze(1), soft, reduction="none")
        # Sum over the local batch divided by the *local batch size*: DDP averages gradients
        # over ranks, which then equals the weighted mean over the global batch exactly.
        return (w * losses).sum() / local_batch

    def train_step(self, indices: np.ndarray, epoch: int) -> float:
        """One optimiser step on this rank's share of a global batch; returns the local loss."""
        x, s, y = self.data.tensors(indices, epoch, train=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.device.type == "cuda"):
            logits = self.ddp(x, s)
        loss = self.loss(logits.float(), y, len(indices))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def local_batches(self, epoch: int):
        return local_batches(self.data.train_index, self.cfg.batch_size, self.cfg.seed, epoch,
                             self.dist.rank, self.dist.world)

    def train_epoch(self, epoch: int) -> dict:
        self.ddp.train()
        total, count, steps, start = 0.0, 0, 0, time.perf_counter()
        batches = self.local_batches(epoch)
        if self.progress:
            from tqdm import tqdm

            batches = tqdm(batches, total=len(self.data.train_index) // self.cfg.batch_size,
                           desc=f"epoch {epoch + 1}", unit="step", leave=False)
        for indices in batches:
            total += self.train_step(indices, epoch) * len(indices)
            count += len(indices)
            steps += 1
        self.scheduler.step()
        sums = all_reduce_sum([total, count], self.dist, self.device)
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
                out.append(p_ia_of(self.model(x, s).float(), self.data.classes).cpu().numpy())
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
        return {"val_loss": loss, "val_auc": auc(y, prob)}

    def fit(self, stop_after: int | None = None) -> dict:
        """Train (resuming from out/checkpoint.pt if present) until ``epochs``, early stopping,
        or ``stop_after`` epochs in this call (used to test resuming)."""
        self.out.mkdir(parents=True, exist_ok=True)
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
            if self.dist.main:
                append_history(self.out / HISTORY, row)
                self.save(self.out / CHECKPOINT)
                if improved:
                    self.save(self.out / BEST)
            log.info("epoch %d: loss %.4f, val AUC %.4f, %.0f samples/s", row["epoch"],
                     row["train_loss"], row["val_auc"], row["samples_per_s"])
            barrier(self.dist)
        return {"epochs": self.epoch, "best_auc": self.stopping.best_auc}

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "epoch": self.epoch, **self.stopping.state(), "train_config": self.cfg.to_dict(),
                "model_config": self.model.config.to_dict(), "spec": self.data.spec.to_dict(),
                "norm": self.data.norm, "class_weight": list(self.data.class_weight),
                "classes": self.data.classes}

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:  # a checkpoint that exists is complete
            torch.save(self.state(), tmp)

    def resume(self) -> bool:
        path = self.out / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, weights_only=True, map_location=self.device)
        if not same_training(state["train_config"], self.cfg):
            if not self.restart_on_change:
                raise ConfigError(f"{path} was written with other training settings; use a new "
                                  f"output folder, the same settings, or --restart to start over")
            barrier(self.dist)  # every rank has read the old checkpoint before rank 0 moves it
            if self.dist.main:
                set_aside(self.out)
            log.warning("%s was written with other training settings: starting over (the old "
                        "run's files are kept as *.stale)", path)
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = state["epoch"]
        self.stopping.load(state)
        self.data.norm = state["norm"]
        log.info("resumed from %s after epoch %d", path, self.epoch)
        return True


# ----------------------------------------------------------------------------- the run's files


class EarlyStopping:
    """Stop after ``patience`` epochs without a better validation AUC (the validation loss where
    the AUC is undefined: a validation set of one class).

    ``keep_last`` (a distilled model): every epoch counts as improved, so the model trains all
    epochs and keeps the last. Its loss is on the teachers' P(Ia) (on augmented, test-like
    images), so the validation AUC against the labels of the unaugmented, low-redshift validation
    objects says little about it (measured: docs/results.md)."""

    def __init__(self, patience: int, keep_last: bool = False):
        self.patience, self.keep_last = patience, keep_last
        self.best_auc, self.best_loss, self.stale = -1.0, math.inf, 0

    @property
    def done(self) -> bool:
        return self.stale >= self.patience

    def update(self, row: dict) -> bool:
        """Whether this epoch is the best so far (then it is the one to keep)."""
        improved = self.keep_last
        if self.keep_last:
            self.best_auc = row["val_auc"]
        elif math.isfinite(row["val_auc"]):
            improved = row["val_auc"] > self.best_auc
            self.best_auc = max(self.best_auc, row["val_auc"])
        elif row["val_loss"] < self.best_loss:
            improved, self.best_loss = True, row["val_loss"]
        self.stale = 0 if improved else self.stale + 1
        return improved

    def state(self) -> dict:
        return {"best_auc": self.best_auc, "best_loss": self.best_loss, "stale": self.stale}

    def load(self, state: dict) -> None:
        self.best_auc, self.best_loss, self.stale = (state["best_auc"], state["best_loss"],
                                                     state["stale"])


def append_history(path: Path, row: dict) -> None:
    """One row of history.csv per epoch (the header with the first)."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def set_aside(out: Path) -> None:
    """Keep an old run's files as *.stale, so a run of other settings starts over beside them."""
    for name in (CHECKPOINT, BEST, HISTORY):
        if (out / name).exists():
            os.replace(out / name, out / (name + ".stale"))


# ----------------------------------------------------------------------------- collectives


def all_reduce_sum(values: list, dist: Dist, device) -> list:
    """Sums over ranks (of sums and counts: never average per-rank averages)."""
    if dist.world == 1:
        return values
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def all_gather(obj, dist: Dist) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if dist.world == 1:
        return [obj]
    import torch.distributed as td

    parts = [None] * dist.world
    td.all_gather_object(parts, obj)
    return parts


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as td

        td.barrier()
