"""Architecture benchmark: size and speed of each model arch, side by side in one run.

    python bench/archs.py [--store STORE] [--archs cnn resnet gru ...] [--steps 8] [--json OUT]

For each arch of ``snia.models.registry`` (the shipped CNN; the others at their registry
defaults, or ``--settings '{"resnet": {...}}'``): parameters, floating-point operations per light
curve (one forward pass: ``registry.flops_per_sample``; the recurrent models at 100 observations),
training samples/s (``--steps`` optimiser steps of batch 64 on the PLAsTiCC training store, the
whole path: gather, augmentation, images or sequences, forward, backward, step) and inference light
curves/s (``Trainer.predict`` on 2,048 objects: gather, images or sequences, forward). Quality
(AUC, purity, completeness) needs trained models: the workflow's compare target.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from stores import plasticc_store  # bench/stores.py, beside this script


def measure(store, arch: str, settings: dict, steps: int, tmp: Path) -> dict:
    import numpy as np
    import torch

    from snia.models.registry import example_inputs, flops_per_sample, parameter_count
    from snia.parallel import Dist
    from snia.train import TrainConfig, close, open_trainer

    cfg = TrainConfig.from_dict({"model": {"arch": arch, **settings}, "batch_size": 64})
    trainer = open_trainer(store, tmp / arch, cfg, dist=Dist())
    try:
        model = trainer.model
        size = (trainer.data.spec.shape[1], trainer.data.spec.shape[2])
        row = {"arch": arch, "parameters": parameter_count(model),
               "flops_per_lc": flops_per_sample(model, example_inputs(model, size)),
               "settings": cfg.to_dict()["model"]}
        batches = []
        for indices in trainer.local_batches(0):
            batches.append(indices)
            if len(batches) == steps + 1:
                break
        list(trainer.run_steps(batches[:1], 0))  # warm-up: compilation, allocator
        start = time.perf_counter()
        for _ in trainer.run_steps(batches[1:], 0):
            pass
        row["train_samples_per_s"] = 64 * steps / (time.perf_counter() - start)
        objects = np.arange(min(2048, len(trainer.data.store)))
        trainer.predict(objects[:256])  # warm-up
        start = time.perf_counter()
        trainer.predict(objects)
        row["infer_lc_per_s"] = len(objects) / (time.perf_counter() - start)
        row["device"] = str(trainer.device)
        row["torch_threads"] = torch.get_num_threads()
        return row
    finally:
        close(trainer)


def main() -> None:
    from snia.models.registry import ARCHS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--settings", default="{}", help="JSON: arch -> model settings")
    ap.add_argument("--steps", type=int, default=8, help="timed optimiser steps per arch")
    ap.add_argument("--json", type=Path, help="write the rows here too")
    args = ap.parse_args()
    settings = json.loads(args.settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = plasticc_store("plasticc_train", args.store, Path(tmp))
        for arch in args.archs:
            rows.append(measure(store, arch, settings.get(arch, {}), args.steps, Path(tmp)))
            r = rows[-1]
            print(f"{arch:<10}{r['parameters']:>12,}{r['flops_per_lc'] / 1e6:>12,.1f} MFLOP"
                  f"{r['train_samples_per_s']:>12,.0f} train/s{r['infer_lc_per_s']:>12,.0f} LC/s",
                  flush=True)
    print("\n| arch | parameters | MFLOP per light curve | training samples/s | inference LC/s |"
          "\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['parameters']:,} | {r['flops_per_lc'] / 1e6:,.1f} | "
              f"{r['train_samples_per_s']:,.0f} | {r['infer_lc_per_s']:,.0f} |")
    print(f"(on {rows[0]['device']}, {rows[0]['torch_threads']} torch threads)" if rows else "")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
