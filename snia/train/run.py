"""One rank's training run: its device (its local rank's GPU, else the CPU, sharing the cores),
the process group, the training data and the Trainer (``open_trainer``), then ``fit`` and the
teardown (``run_training``).
"""

from __future__ import annotations

import logging

import torch

from snia.errors import ConfigError
from snia.parallel import Dist, LaunchError, dist_from_env, init_distributed, share_cpu_threads
from snia.train.config import TrainConfig
from snia.train.data import TrainingData
from snia.train.trainer import Trainer

log = logging.getLogger(__name__)


def device_for(dist: Dist) -> torch.device:
    """This rank's device: its local rank's GPU (modulo the visible GPUs, since SLURM may bind one
    GPU per task, which each rank then sees as cuda:0), else the CPU. On either, the rank's
    threads are its share of the node's cores: on a GPU node they make batches on the host."""
    share_cpu_threads(dist)
    if torch.cuda.is_available():
        device = torch.device(f"cuda:{dist.local_rank % torch.cuda.device_count()}")
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def open_trainer(store_path, out_dir, cfg: TrainConfig, dist: Dist | None = None,
                 progress: bool = False, restart_on_change: bool = False) -> Trainer:
    """This rank's Trainer: device, process group, training data, model. ``close()`` it."""
    dist = dist or dist_from_env()
    device = device_for(dist)
    try:
        init_distributed(dist, device)
    except LaunchError as exc:  # what to set, in one line
        raise ConfigError(str(exc)) from None
    log.info("rank %d of %d (started by %s) on %s", dist.rank, dist.world, dist.launcher, device)
    data = TrainingData(store_path, cfg, device, dist)
    try:
        return Trainer(data, out_dir, cfg, dist, device, progress=progress,
                       restart_on_change=restart_on_change)
    except BaseException:
        data.close()
        raise


def close(trainer: Trainer) -> None:
    """Release the store and leave the process group."""
    trainer.data.close()
    if trainer.dist.world > 1:
        import torch.distributed as td

        td.destroy_process_group()


def run_training(store_path, out_dir, cfg: TrainConfig, stop_after: int | None = None,
                 progress: bool = False, restart_on_change: bool = False) -> dict:
    trainer = open_trainer(store_path, out_dir, cfg, progress=progress,
                           restart_on_change=restart_on_change)
    try:
        return trainer.fit(stop_after=stop_after)
    finally:
        close(trainer)
