"""Stage 3: train the CNN on light-curve images, data-parallel over ranks (DDP).

"Is this a DDP run?" comes from the environment (``snia.parallel.dist_from_env``: torchrun, srun
or mpiexec). NCCL on GPUs, gloo on CPUs. Images are rasterized on the fly for every batch (the GPU
kernels on a GPU, the Numba CPU backend otherwise), so augmentations are fresh every epoch.

The rooms: ``config`` (the typed settings), ``data`` (what training reads, built once: split,
targets, class weights, input scaling, teachers; batches as tensors), ``trainer`` (the loop and
its checkpoints), ``run_folder`` (checkpoints, history, early stopping), ``run`` (``open_trainer``,
``run_training``: them wired for one rank). This file only names what the package offers.

Reproducible by construction: a run on N ranks with global batch B takes exactly the same steps as
one rank with batch B, and a run resumed from a checkpoint ends exactly where an uninterrupted run
does (see ``snia.train.data``).
"""

from snia.parallel import barrier
from snia.train.config import TASKS, DistillConfig, TrainConfig, settings_from_file
from snia.train.data import TrainingData, local_batches, split_objects
from snia.train.run import close, open_trainer, run_training
from snia.train.run_folder import BEST, CHECKPOINT, HISTORY
from snia.train.trainer import Trainer

__all__ = ["BEST", "CHECKPOINT", "HISTORY", "TASKS", "DistillConfig", "TrainConfig", "Trainer",
           "TrainingData", "barrier", "close", "local_batches", "open_trainer", "run_training",
           "settings_from_file", "split_objects"]
