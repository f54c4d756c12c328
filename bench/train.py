"""Training throughput benchmark: samples/s of real optimiser steps on the PLAsTiCC training store,
with a per-stage breakdown and the pipeline efficiency, side by side in one run.

    python bench/train.py [--store STORE] [--steps 40] [--batch-size 64] [--config CFG]

The model and settings are the shipped defaults (``snia.train.TrainConfig()``), or a config's
``train:`` section. Stages are timed by wrapping the functions the training data module calls
(gather, augment, rasterize), on the same batches the end-to-end loop then trains on:

  end to end         the training loop (``Trainer.run_steps``) over ``--steps`` batches of one
                     epoch: everything (on a GPU the next batch is drawn while the model steps)
  ready tensors      the same optimiser steps on images and targets made beforehand
  efficiency         end to end / ready tensors (1.0: the data pipeline costs nothing)

One process (torch and numba share this machine's cores). Targets (issue 11): on 2 CPU cores, efficiency
>= 0.75 and >= 3x the samples/s of the per-step HDF5 + per-object augmentation loop it replaced.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from stores import plasticc_store  # bench/stores.py, beside this script


class Timer:
    """Wraps a function; adds up the seconds spent in it (``sync``: waits for the GPU first, so
    that work a call only enqueued is counted in its stage)."""

    def __init__(self, fn, sync=None):
        self.fn, self.sync, self.seconds, self.calls = fn, sync, 0.0, 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            result = self.fn(*args, **kwargs)
            if self.sync:
                self.sync()
            return result
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def main() -> None:

    import snia.train.data as data_module
    from snia.parallel import Dist
    from snia.train import TrainConfig, close, open_trainer, settings_from_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--config", type=Path, help="YAML whose 'train:' section sets the model")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each loop (best kept)")
    ap.add_argument("--backend", help="rasterization backend (default: the settings'; on a GPU, "
                                      "'cpu' makes the batches on the host as before issue 11)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = plasticc_store("plasticc_train", args.store, Path(tmp))
        settings = {**settings_from_file(args.config), "batch_size": args.batch_size}
        if args.backend:
            settings["backend"] = args.backend
        trainer = open_trainer(store, Path(tmp) / "run", TrainConfig.from_dict(settings), dist=Dist())
        try:
            report(trainer, args, data_module)
        finally:
            close(trainer)


def report(trainer, args, data_module) -> None:
    import torch

    import snia.raster.cupy as cupy_module

    data = trainer.data
    cuda = trainer.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    batches = []
    for indices in trainer.local_batches(0):
        batches.append(indices)
        if len(batches) == args.steps:
            break
    n = sum(len(b) for b in batches)
    list(trainer.run_steps(batches[:2], 0))  # warm-up: JIT compilation, allocator
    # stage timers: the gather (the resident store or HDF5), augmentation, rasterization (on the
    # GPU each stage waits for its kernels)
    source = data.source  # the resident store (host or device memory), or the HDF5 store
    draw = (cupy_module, "rasterize_on_device") if data.on_device else (data_module, "rasterize")
    patched = [(source, "batch"), (data_module, "augment"), draw]
    timers = {name: Timer(getattr(obj, attr), sync)
              for name, (obj, attr) in zip(("gather", "augment", "rasterize"), patched)}
    for timer, (obj, attr) in zip(timers.values(), patched):
        setattr(obj, attr, timer)
    start = time.perf_counter()
    tensors = [data.tensors(b, 0, train=True) for b in batches]
    if sync:
        sync()
    make = time.perf_counter() - start
    stages = {k: t.seconds for k, t in timers.items()}
    for timer, (obj, attr) in zip(timers.values(), patched):
        setattr(obj, attr, timer.fn)

    def ready():
        for indices, made in zip(batches, tensors):
            trainer.train_step(indices, 0, made)
        if sync:
            sync()

    def end_to_end():
        for _ in trainer.run_steps(batches, 0):
            pass
        if sync:
            sync()

    ready_rate = best(ready, n, args.repeat)
    e2e_rate = best(end_to_end, n, args.repeat)
    threaded = None
    if data.on_device:  # the same with a thread that enqueues the next batch
        trainer.batch_worker = True
        threaded = best(end_to_end, n, args.repeat)
        trainer.batch_worker = False
    where = "device" if data.on_device else "host"
    print(f"store {Path(str(data.store.path)).name} ({type(source).__name__} in {where} memory): "
          f"{len(data.train_index):,} training objects; "
          f"{len(batches)} steps of {args.batch_size}; {data.spec.kind} images "
          f"{data.spec.shape}; on {trainer.device}"
          + ("" if cuda else f", {torch.get_num_threads()} torch threads"))
    print(f"  per batch of {args.batch_size}:")
    for name, seconds in stages.items():
        print(f"    {name:<22}{1e3 * seconds / len(batches):>9.2f} ms")
    other = make - sum(stages.values())
    print(f"    {'targets, tensors':<22}{1e3 * other / len(batches):>9.2f} ms")
    print(f"    {'forward+backward+step':<22}{1e3 * args.batch_size / ready_rate:>9.2f} ms")
    print(f"    {'all-reduce':<22}{'none (one rank)':>9}")
    print(f"  ready tensors        {ready_rate:>10,.0f} samples/s")
    print(f"  end to end           {e2e_rate:>10,.0f} samples/s")
    if threaded is not None:
        print(f"  (next batch enqueued from a thread: {threaded:,.0f} samples/s)")
    print(f"  pipeline efficiency  {e2e_rate / ready_rate:>10.2f}   (end to end / ready tensors)")


def best(fn, n: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / min(times)


if __name__ == "__main__":
    main()
