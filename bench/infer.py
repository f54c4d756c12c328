"""Inference benchmark: store -> P(Ia) throughput on this machine's CPU, per stage, side by side.

    python bench/infer.py [--checkpoint CKPT [CKPT ...]] [--store STORE] [--objects 5000]
    python bench/infer.py --compare-with COMMIT [--rounds 5] [--compile] [--checkpoint ...] [--store ...]

Default: the model the workflow evaluates: the distilled one (results/model/student/best.pt),
else the ensemble (results/model/m*/best.pt).

On the PLAsTiCC test example (the store `make run` writes, or one ingested here). Prints light
curves per second for: reading the store; reading + rasterizing (the images the model sees); the
CNN forward pass alone on ready images; and the whole path `snia classify` takes (predict_store),
on a CPU also with the forward pass compiled (``compile=True``, the compile in the warm-up).
Then the forward pass of smaller CNNs of the same family (untrained: speed does not depend on the
weights) to show which model size a throughput target needs. Each rate is the best of 2-3 timed
runs after a warm-up (the machines here are noisy). Target (issue 4): >= 5,000 LC/s
end to end on 2 cores.

``--compare-with COMMIT``: only the whole store -> P(Ia) path, of that commit's ``snia`` package
(extracted with ``git archive``) and of this tree's, side by side: each round runs both, in
alternating order, each in a fresh process (one warm-up, then the best of ``--repeat`` runs), and
each side's rate is its best round. Interleaving is what makes the ratio fair on a shared, noisy
machine: a load that comes and goes hits both sides alike. Target (issue 23): >= 1.5x on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from stores import plasticc_store  # bench/stores.py, beside this script

REPO = Path(__file__).resolve().parents[1]
TARGET = 5000.0


def best_rate(fn, n: int, repeat: int = 2) -> float:
    import torch

    def run():
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # work on the GPU counts when done, not when enqueued

    run()  # warm-up (JIT compilation, allocator)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


# One side of --compare-with, in a fresh process with the snia package of PYTHONPATH: the models
# loaded once, one warm-up (Numba compiles, allocators; with compile, TorchInductor's compile),
# then the best of `repeat` timed runs, as JSON. compile=1: predict_store(..., compile=True).
ONE_SIDE = """
import json, sys, time
import snia
from snia.inference import load_members, predict_store
store, repeat, compile_, *checkpoints = sys.argv[1:]
members = load_members(checkpoints, "cpu")
options = {"compile": True} if compile_ == "1" else {}
start = time.perf_counter()
n = len(predict_store(members, store, **options)["p_ia"])
first = time.perf_counter() - start
best = float("inf")
for _ in range(int(repeat)):
    start = time.perf_counter()
    predict_store(members, store, **options)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"rate": n / best, "first_s": first, "objects": n, "package": snia.__file__}))
"""


def extract_package(commit: str, into: Path) -> Path:
    """The ``snia`` package of ``commit`` in a folder of its own (``git archive``)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, "snia"],
                             check=True, capture_output=True).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def one_side(root: Path, store: Path, checkpoints: list[str], repeat: int, compile: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", ONE_SIDE, str(store), str(repeat),
                           "1" if compile else "0", *checkpoints],
                          capture_output=True, text=True, env=env, cwd=root, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the run with {root}/snia failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(result["package"]).is_relative_to(root):  # the package meant, not another
        raise SystemExit(f"expected snia from {root}, the run imported {result['package']}")
    return result


def compare(commit: str, store: Path, checkpoints: list[str], rounds: int, repeat: int,
            tmp: Path, compile: bool = False) -> None:
    """Old commit vs this tree, interleaved rounds; prints each round, the best and the ratio.
    ``compile``: this tree's side compiles its models (the old side as it was); its rate is then
    the steady state, and the first (warm-up) run's time, compile included, is printed too."""
    new_name = "new (this tree)" + (", compiled" if compile else "")
    sides = {f"old {commit}": extract_package(commit, tmp / "old"), new_name: REPO}
    best = dict.fromkeys(sides, 0.0)
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            result = one_side(sides[name], store, checkpoints, repeat, compile and name == new_name)
            best[name] = max(best[name], result["rate"])
            print(f"round {r + 1}: {name:<32} {result['rate']:>9,.0f} LC/s "
                  f"(first run, warm-up: {result['first_s']:.1f} s)", flush=True)
    old, new = best.values()
    print(f"store {store.name} ({result['objects']} light curves), {len(checkpoints)} model(s), "
          f"{os.cpu_count()} CPU cores, best of {rounds} rounds x {repeat} runs each:")
    for name, rate in best.items():
        print(f"  {name:<32} {rate:>9,.0f} LC/s")
    print(f"  ratio new / old                  {new / old:>9.2f} x")


def default_checkpoints() -> list[str]:
    models = REPO / "results" / "model"
    if (models / "student" / "best.pt").exists():
        return [str(models / "student" / "best.pt")]
    return sorted(str(p) for p in models.glob("m*/best.pt"))


def main() -> None:
    import torch

    from snia.checkpoints import spec_of
    from snia.inference import (
        default_batch_size,
        default_device,
        image_layout,
        load_members,
        predict_store,
        store_batches,
    )
    from snia.inference.compiled import COMPILE_MIN_OBJECTS
    from snia.models import build_model, rebuild
    from snia.models.inputs import as_tensor
    from snia.raster import rasterize
    from snia.store import Store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="+", default=default_checkpoints(),
                    help="one model, or an ensemble (the per-stage rows use the first)")
    ap.add_argument("--store")
    ap.add_argument("--objects", type=int, default=5000)
    ap.add_argument("--batch-size", type=int,
                    help="objects per batch (default: predict_store's for the device)")
    ap.add_argument("--compare-with", metavar="COMMIT",
                    help="time only store -> P(Ia), that commit's snia vs this tree's, interleaved")
    ap.add_argument("--rounds", type=int, default=5, help="--compare-with: rounds of both sides")
    ap.add_argument("--repeat", type=int, default=3, help="--compare-with: timed runs per side")
    ap.add_argument("--compile", action="store_true",
                    help="--compare-with: this tree's side compiles its models (torch.compile)")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    device = default_device()  # a GPU when there is one, as predict_store takes
    with tempfile.TemporaryDirectory() as tmp:
        store_path = plasticc_store("plasticc_test", args.store, Path(tmp))
        if not args.checkpoint:
            raise SystemExit("no checkpoint: run the workflow (make run) or give --checkpoint")
        if args.compare_with:
            compare(args.compare_with, store_path.resolve(), [str(Path(c).resolve()) for c in args.checkpoint],
                    args.rounds, args.repeat, Path(tmp), args.compile)
            return
        state = torch.load(args.checkpoint[0], weights_only=True, map_location="cpu")
        spec = spec_of(state)
        model = rebuild(state["model_config"]).eval()  # the checkpoint's arch and sizes
        model = model.to(device, memory_format=image_layout(device))  # as predict_store runs it
        with Store(store_path) as store:
            n = min(args.objects, len(store))
            size = args.batch_size or default_batch_size(device)
            batches = [store.batch(slice(a, min(a + size, n))) for a in range(0, n, size)]
            read = best_rate(lambda: [store.batch(slice(a, min(a + size, n)))
                                      for a in range(0, n, size)], n)
            blocks = best_rate(lambda: list(store_batches(store, size)), len(store))
            raster = best_rate(lambda: [rasterize(b, spec, "auto") for b in batches], n)
            images = [as_tensor(rasterize(b, spec, "auto").images, device)
                      .contiguous(memory_format=image_layout(device)) for b in batches]
            scalars = [torch.zeros(len(x), model.config.n_scalars, device=device) for x in images]

            def forward(m=model, xs=images):
                with torch.inference_mode():
                    for x, s in zip(xs, scalars):
                        m(x, s)

            cnn = best_rate(forward, n)
        whole = compiled = float("nan")
        if n == len(Store(store_path)):
            whole = best_rate(lambda: predict_store(args.checkpoint, store_path,
                                                    batch_size=args.batch_size), n, repeat=3)
            if device.type == "cpu":  # loaded once: the warm-up compiles, the timed runs reuse it
                members = load_members(args.checkpoint, device)
                compiled = best_rate(lambda: predict_store(members, store_path, compile=True,
                                                           batch_size=args.batch_size), n, repeat=3)
        print(f"store {store_path.name}: {n} light curves, {spec.kind} images "
              f"{tuple(images[0].shape[1:])}, model channels {model.config.channels}, "
              f"on {device}" + ("" if device.type == "cuda" else f", {threads} torch threads"))
        print(f"  read store, batch by batch {read:>10,.0f} LC/s")
        print(f"  read store, large blocks   {blocks:>10,.0f} LC/s   (the model's columns only)")
        print(f"  rasterize (from batches)   {raster:>10,.0f} LC/s")
        print(f"  CNN forward (ready images) {cnn:>10,.0f} LC/s")
        print(f"  store -> P(Ia), end to end {whole:>10,.0f} LC/s   = {whole / TARGET:.2f} x the "
              f"{TARGET:,.0f} LC/s target ({len(args.checkpoint)} model(s))")
        if device.type == "cpu":
            print(f"  the same, compiled          {compiled:>10,.0f} LC/s   (torch.compile, "
                  f"compile=True; by itself from {COMPILE_MIN_OBJECTS:,} objects)")
        print("forward pass of other sizes of the same CNN (untrained), same images:")
        for channels in ((8, 16, 32), (8, 16), (4, 8)):
            other = build_model("cnn", {"channels": channels, "groups": min(4, channels[0]),
                                        "hidden": model.config.hidden},
                                in_channels=model.config.in_channels,
                                n_classes=model.config.n_classes, n_scalars=model.config.n_scalars)
            other = other.eval().to(device, memory_format=image_layout(device))
            rate = best_rate(lambda m=other: forward(m), n)
            print(f"  channels {str(channels):<14} {rate:>10,.0f} LC/s   = {rate / TARGET:.2f} x target")


if __name__ == "__main__":
    main()
