"""Stage 3: train the CNN on light-curve images, data-parallel over ranks (DDP).

"Is this a DDP run?" comes from the environment (``snia.parallel.dist_from_env``: torchrun, srun
or mpiexec). NCCL on GPUs, gloo on CPUs. Images are rasterized on the fly for every batch (the GPU
kernels on a GPU, the Numba CPU backend otherwise), so augmentations are fresh every epoch.

The rooms: ``config`` (the typed settings), ``data`` (what training reads, built once: split,
targets, class weights, input scaling, teachers; batches as tensors), ``trainer`` (the loop and
its checkpoints). ``open_trainer`` wires them for one rank.

Reproducible by construction: a run on N ranks with global batch B takes exactly the same steps as
one rank with batch B, and a run resumed from a checkpoint ends exactly where an uninterrupted run
does (see ``snia.train.data``).
"""

from __future__ import annotations

import logging

import torch

from snia.errors import ConfigError
from snia.parallel import Dist, LaunchError, barrier, dist_from_env, init_distributed, share_cpu_threads
from snia.train.config import TASKS, DistillConfig, TrainConfig, settings_from_file
from snia.train.data import TrainingData, local_batches, split_objects
from snia.train.run_folder import BEST, CHECKPOINT, HISTORY
from snia.train.trainer import Trainer

__all__ = ["BEST", "CHECKPOINT", "HISTORY", "TASKS", "DistillConfig", "TrainConfig", "Trainer",
           "TrainingData", "barrier", "close", "local_batches", "open_trainer", "run_training",
           "settings_from_file", "split_objects"]

log = logging.getLogger(__name__)


def device_for(dist: Dist) -> torch.device:
    """This rank's device: its local rank's GPU (modulo the visible GPUs, since SLURM may bind one
    GPU per task, which each rank then sees as cuda:0), else the CPU (sharing the cores)."""
    if torch.cuda.is_available():
        device = torch.device(f"cuda:{dist.local_rank % torch.cuda.device_count()}")
        torch.cuda.set_device(device)
        return device
    share_cpu_threads()
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
    data = TrainingData(store_path, cfg, device)
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
