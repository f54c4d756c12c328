"""Inference benchmark: store -> P(Ia) throughput on this machine's CPU, per stage, side by side.

    python bench/infer.py [--checkpoint CKPT [CKPT ...]] [--store STORE] [--objects 5000]

Default: the model the workflow evaluates: the distilled one (results/model/student/best.pt),
else the ensemble (results/model/m*/best.pt).

On the PLAsTiCC test example (the store `make run` writes, or one ingested here). Prints light
curves per second for: reading the store; reading + rasterizing (the images the model sees); the
CNN forward pass alone on ready images; and the whole path `snia classify` takes (predict_store).
Then the forward pass of smaller CNNs of the same family (untrained: speed does not depend on the
weights) to show which model size a throughput target needs. Each rate is the best of 2-3 timed
runs after a warm-up (the machines here are noisy). Target (issue 4): >= 5,000 LC/s
end to end on 2 cores.
"""

from __future__ import annotations

import argparse
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


def default_checkpoints() -> list[str]:
    models = REPO / "results" / "model"
    if (models / "student" / "best.pt").exists():
        return [str(models / "student" / "best.pt")]
    return sorted(str(p) for p in models.glob("m*/best.pt"))


def main() -> None:
    import torch

    from snia.checkpoints import spec_of
    from snia.inference import default_device, predict_store
    from snia.models import build_model, rebuild
    from snia.models.inputs import as_tensor
    from snia.raster import rasterize
    from snia.store import Store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="+", default=default_checkpoints(),
                    help="one model, or an ensemble (the per-stage rows use the first)")
    ap.add_argument("--store")
    ap.add_argument("--objects", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=512)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    device = default_device()  # a GPU when there is one, as predict_store takes
    with tempfile.TemporaryDirectory() as tmp:
        store_path = plasticc_store("plasticc_test", args.store, Path(tmp))
        if not args.checkpoint:
            raise SystemExit("no checkpoint: run the workflow (make run) or give --checkpoint")
        state = torch.load(args.checkpoint[0], weights_only=True, map_location="cpu")
        spec = spec_of(state)
        model = rebuild(state["model_config"]).eval()  # the checkpoint's arch and sizes
        model = model.to(device, memory_format=torch.channels_last)  # as predict_store runs it
        with Store(store_path) as store:
            n = min(args.objects, len(store))
            batches = [store.batch(slice(a, min(a + args.batch_size, n)))
                       for a in range(0, n, args.batch_size)]
            read = best_rate(lambda: [store.batch(slice(a, min(a + args.batch_size, n)))
                                      for a in range(0, n, args.batch_size)], n)
            raster = best_rate(lambda: [rasterize(b, spec, "auto") for b in batches], n)
            images = [as_tensor(rasterize(b, spec, "auto").images, device)
                      .contiguous(memory_format=torch.channels_last) for b in batches]
            scalars = [torch.zeros(len(x), model.config.n_scalars, device=device) for x in images]

            def forward(m=model, xs=images):
                with torch.inference_mode():
                    for x, s in zip(xs, scalars):
                        m(x, s)

            cnn = best_rate(forward, n)
        if n == len(Store(store_path)):
            whole = best_rate(lambda: predict_store(args.checkpoint, store_path,
                                                    batch_size=args.batch_size), n, repeat=3)
        else:
            whole = float("nan")
        print(f"store {store_path.name}: {n} light curves, {spec.kind} images "
              f"{tuple(images[0].shape[1:])}, model channels {model.config.channels}, "
              f"on {device}" + ("" if device.type == "cuda" else f", {threads} torch threads"))
        print(f"  read store                 {read:>10,.0f} LC/s")
        print(f"  rasterize (from batches)   {raster:>10,.0f} LC/s")
        print(f"  CNN forward (ready images) {cnn:>10,.0f} LC/s")
        print(f"  store -> P(Ia), end to end {whole:>10,.0f} LC/s   = {whole / TARGET:.2f} x the "
              f"{TARGET:,.0f} LC/s target ({len(args.checkpoint)} model(s))")
        print("forward pass of other sizes of the same CNN (untrained), same images:")
        for channels in ((8, 16, 32), (8, 16), (4, 8)):
            other = build_model("cnn", {"channels": channels, "groups": min(4, channels[0]),
                                        "hidden": model.config.hidden},
                                in_channels=model.config.in_channels,
                                n_classes=model.config.n_classes, n_scalars=model.config.n_scalars)
            other = other.eval().to(device, memory_format=torch.channels_last)
            rate = best_rate(lambda m=other: forward(m), n)
            print(f"  channels {str(channels):<14} {rate:>10,.0f} LC/s   = {rate / TARGET:.2f} x target")


if __name__ == "__main__":
    main()
