"""Scaling runs: training throughput (samples/s) against the number of data-parallel ranks.

Strong scaling keeps the global batch fixed and splits it over more ranks; weak scaling keeps the
batch per rank fixed, so the global batch grows with the ranks. Each measurement is a fixed number
of steps of the training loop itself (``Trainer.run_steps``: batches made as in training, on a
side stream, prefetched or in line, then the DDP step) after a few warm-up steps, timed between
barriers once every rank's GPU has finished its work (``synced``): a clock stopped while the GPU
still runs would time the launches, not the steps. Parallel efficiency = throughput(N) /
(N x throughput(1)).

Measuring trains (torch, ``snia.train``: imported by ``measure``); summarizing reads JSON rows and
plots. So the command line, which takes its choices from ``MODES``, and ``summarize`` need no
torch.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import time
from pathlib import Path

from snia.errors import ConfigError
from snia.files import write_text_atomic
from snia.parallel import barrier, dist_from_env
from snia.plots import pyplot, save

log = logging.getLogger(__name__)

MODES = ("strong", "weak")
FIELDS = ["mode", "world_size", "global_batch", "steps", "seconds", "samples_per_s", "speedup",
          "efficiency", "device", "threads_per_rank"]


def production_steps(trainer):
    """The training loop's steps, epoch after epoch without end: (batch size, local loss) of each
    (``Trainer.run_steps`` over ``Trainer.local_batches``, as ``train_epoch`` runs them)."""
    for key in itertools.count():
        yield from trainer.run_steps(trainer.local_batches(key), key)


def synced(trainer) -> None:
    """Wait until this rank's GPU has done what was enqueued, then for every rank."""
    if trainer.device.type == "cuda":
        import torch

        torch.cuda.synchronize(trainer.device)
    barrier(trainer.dist)


def time_steps(trainer, steps: int, warmup: int) -> float:
    """Seconds that ``steps`` steps of the training loop take on all ranks, after ``warmup``."""
    trainer.ddp.train()
    loop = production_steps(trainer)
    for _ in itertools.islice(loop, warmup):
        pass
    synced(trainer)
    start = time.perf_counter()
    total = 0.0
    for size, loss in itertools.islice(loop, steps):
        total = total + loss.double() * size  # as train_epoch sums: on the device, no wait
    synced(trainer)
    seconds = time.perf_counter() - start
    loop.close()  # a batch prefetched ahead is dropped, its thread joined
    return seconds


def measure(store, out_json, mode: str, steps: int, batch_size: int, warmup: int = 2,
            train_settings: dict | None = None) -> dict | None:
    """Time ``steps`` training steps on every rank; global rank 0 writes and returns the row."""
    import torch

    from snia.train import TrainConfig, close, open_trainer  # training needs torch

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, not {mode!r}")
    dist = dist_from_env()
    global_batch = batch_size * dist.world if mode == "weak" else batch_size
    settings = {**(train_settings or {}), "batch_size": global_batch, "epochs": 1}
    out_json = Path(out_json)
    trainer = open_trainer(store, out_json.parent, TrainConfig.from_dict(settings), dist=dist)
    try:
        n_train = len(trainer.data.train_index)
        if n_train < global_batch:
            raise ConfigError(f"{store}: {n_train} training objects, fewer than one global batch "
                              f"of {global_batch}")
        seconds = time_steps(trainer, steps, warmup)
    finally:
        close(trainer)
    if not dist.main:
        return None
    row = {"mode": mode, "world_size": dist.world, "global_batch": global_batch, "steps": steps,
           "seconds": round(seconds, 4), "samples_per_s": round(steps * global_batch / seconds, 2),
           "device": trainer.device.type, "threads_per_rank": torch.get_num_threads()}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_json, json.dumps(row, indent=2))
    log.info("%s scaling, %d rank(s): %.1f samples/s", mode, dist.world, row["samples_per_s"])
    return row


def summarize(json_files, out_csv, plot=None) -> list[dict]:
    """Rows of all measurements with speedup and efficiency against the 1-rank run of the same
    mode, as a CSV (and a plot of throughput and efficiency)."""
    rows = [json.loads(Path(p).read_text()) for p in json_files]
    rows.sort(key=lambda r: (r["mode"], r["world_size"]))
    for row in rows:
        base = [r for r in rows if r["mode"] == row["mode"] and r["world_size"] == 1]
        if base:
            per_rank = base[0]["samples_per_s"]
            row["speedup"] = round(row["samples_per_s"] / per_rank, 4)
            row["efficiency"] = round(row["speedup"] / row["world_size"], 4)
        else:  # no 1-rank reference: say so rather than invent one
            row["speedup"] = row["efficiency"] = float("nan")
    with open(out_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    if plot:
        _plot(rows, plot)
    return rows


def _plot(rows, path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        n = [r["world_size"] for r in mine]
        left.plot(n, [r["samples_per_s"] for r in mine], "o-", label=f"{mode} scaling")
        right.plot(n, [r["efficiency"] for r in mine], "o-", label=f"{mode} scaling")
    ideal = sorted({r["world_size"] for r in rows})
    right.plot(ideal, [1.0] * len(ideal), ls=":", c="grey", label="ideal")
    left.set(xlabel="ranks", ylabel="samples / s", title="training throughput", xticks=ideal)
    right.set(xlabel="ranks", ylabel="parallel efficiency", ylim=(0, 1.2),
              title="throughput(N) / (N x throughput(1))", xticks=ideal)
    left.legend()
    right.legend()
    save(fig, path)
