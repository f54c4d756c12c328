"""A training run's folder: checkpoint.pt, best.pt and history.csv, written by global rank 0 only,
atomically (temp file + os.replace), and read back to resume; and early stopping, whose state the
checkpoint carries.

After each epoch: best.pt (if improved), checkpoint.pt, then history.csv rewritten from the
checkpoint's rows, so a kill between any two writes resumes to the same files (a resume rewrites
history.csv too). Checkpoints load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path

import torch

from snia.checkpoints import read_checkpoint
from snia.errors import CheckpointError, ConfigError
from snia.files import atomic_path, write_text_atomic
from snia.parallel import Dist, barrier
from snia.train.config import TrainConfig, same_training

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.csv"
# what a checkpoint needs to be resumed
RESUME_KEYS = ("model", "optimizer", "scheduler", "torch_rng", "epoch", "best_auc", "best_loss",
               "stale", "train_config", "norm")



class RunFolder:
    """The files of one run on this rank (only global rank 0 writes)."""

    def __init__(self, out_dir, dist: Dist, restart_on_change: bool = False):
        self.out, self.dist, self.restart_on_change = Path(out_dir), dist, restart_on_change

    def save_epoch(self, state: dict, improved: bool, history: list[dict]) -> None:
        """best, checkpoint, history: killed after best.pt, the epoch is redone and gives the
        same best.pt; killed after checkpoint.pt, the resume writes the history."""
        if improved:
            save_state(self.out / BEST, state)
        save_state(self.out / CHECKPOINT, state)
        write_history(self.out / HISTORY, history)

    def resumable(self, cfg: TrainConfig, device):
        """(path, state) of a checkpoint of these settings, or None (no checkpoint, or one of
        other settings set aside under ``restart_on_change``; refused without it)."""
        path = self.out / CHECKPOINT
        if not path.exists():
            return None
        state = read_checkpoint(path, RESUME_KEYS, device)
        if same_training(state["train_config"], cfg, state.get("spec")):
            return path, state
        if not self.restart_on_change:
            raise ConfigError(f"{path} was written with other training settings; use a new output "
                              "folder, the same settings, or --restart to start over")
        self.start_over(f"{path} was written with other training settings")
        return None

    def unreadable(self, exc: CheckpointError) -> bool:
        """A checkpoint that cannot be read: refused, or with ``restart_on_change`` set aside."""
        if not self.restart_on_change:
            raise CheckpointError(f"{exc}; use --restart to start over (it is then kept as "
                                  f"{CHECKPOINT}.stale)") from None
        return self.start_over(str(exc))

    def start_over(self, why: str) -> bool:
        barrier(self.dist)  # every rank has read the old checkpoint before rank 0 moves it
        if self.dist.main:
            set_aside(self.out)
        log.warning("%s: starting over (the old run's files are kept as *.stale)", why)
        return False


def save_state(path: Path, state: dict) -> None:
    # Serialised in memory, then written by Python: a full disk is then an OSError naming its
    # errno (torch's own file writer says only "basic_ios::clear: iostream error").
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:  # a checkpoint that exists is complete
        Path(tmp).write_bytes(buffer.getbuffer())


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


def write_history(path: Path, rows: list[dict]) -> None:
    """history.csv: one row per epoch, rewritten whole and atomically from the checkpoint's rows."""
    if not rows:
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def resumed_history(state: dict, path: Path) -> list[dict]:
    """The history rows up to a checkpoint's epoch: its own (checkpoints since they hold them),
    else those of history.csv (older checkpoints; rows past the checkpoint dropped)."""
    if "history" in state:
        return [dict(row) for row in state["history"]]
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["epoch"]) <= int(state["epoch"])]


def set_aside(out: Path) -> None:
    """Keep an old run's files as *.stale, so a run of other settings starts over beside them."""
    for name in (CHECKPOINT, BEST, HISTORY):
        if (out / name).exists():
            os.replace(out / name, out / (name + ".stale"))
