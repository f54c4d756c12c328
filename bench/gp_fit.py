"""GP fit benchmark: light curves fitted per second (``snia gp fit``'s work), CPU and GPU side by
side in one run.

    python bench/gp_fit.py [--store STORE] [--objects 1024] [--threads N]

On the PLAsTiCC training store (the one `make run` writes, or one ingested here): ``--objects``
light curves spread over the store (every k-th), fitted with the shipped settings
(``snia.gp.fit.GPSettings``) on the CPU with ``--threads`` torch threads (default: all cores),
and on the GPU when there is one; prints objects per second for each and their ratio. Each rate is
the best of 2 timed runs after a warm-up (machines here are noisy). Also prints how many
observations the window keeps (the fit's cost grows as their cube).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from infer import best_rate  # bench/infer.py: best of 2 timed runs after a warm-up, synced
from stores import plasticc_store  # bench/stores.py, beside this script


def main() -> int:
    import torch

    from snia.gp.file import observation_wavelengths
    from snia.gp.fit import GPSettings, fit_batch, fitted_observations
    from snia.store import Store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path)
    ap.add_argument("--objects", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp, Store(plasticc_store("plasticc_train", args.store,
                                                                    Path(tmp))) as store:
        chosen = np.arange(0, len(store), max(1, len(store) // args.objects))[:args.objects]
        batch = store.batch(chosen)
        wave = observation_wavelengths(store, batch)
    settings = GPSettings()
    kept = np.add.reduceat(fitted_observations(batch, settings).astype(int), batch.offsets[:-1])
    print(f"objects {len(chosen)}, observations per object {np.median(np.diff(batch.offsets)):.0f} "
          f"(median), fitted in the window {np.median(kept):.0f} (median), {kept.max()} (most)")
    rates = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        rates[device] = best_rate(lambda device=device: fit_batch(batch, wave, settings, device),
                                  len(chosen))
        threads = f"{args.threads} threads" if device == "cpu" else torch.cuda.get_device_name()
        print(f"gp fit on {device} ({threads}): {rates[device]:.1f} objects/s")
    if "cuda" in rates:
        print(f"gp fit GPU / CPU: {rates['cuda'] / rates['cpu']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
