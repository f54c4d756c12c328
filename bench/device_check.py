"""One check of a machine with an NVIDIA GPU, in one command and one table (run by
bench/device_check.sh, which sets PYTHONPATH to this checkout: nothing is installed).

    PYTHON=python3 bash bench/device_check.sh [--store STORE] [--objects 1000000] [--steps 100]
    bash bench/device_check.sh --smoke          # CPU only, small sizes: what CI runs

Inputs (git-ignored: give them to a device machine as extra paths beside the checkout, about
31 MB together):
  results/stores/plasticc_train.h5 and its folder plasticc_train.h5.shards/   the PLAsTiCC
      training store (written by ``make run``, or by ``snia ingest``)
  results/model/student/best.pt   a trained model for the inference row (optional)

Rows:
  versions and device   Python, NumPy, torch (CUDA), CuPy, Numba (CUDA), the GPU
  GPU tests             pytest of the Numba CUDA and CuPy kernels against the NumPy reference
                        (raster, augmentation; a forced small grid runs the grid-stride wrap) and
                        of the device pipeline against the host one; failures listed
  rasterize             light curves/s per image kind and backend on N real objects: the store's
                        objects tiled to N, read from host memory (the copy to the device counted)
  kernels               (on a GPU) bench/raster_gpu.py: the kernels on N real objects already on
                        the device, the heatmap kernel against the one before issue 11 (speed-up,
                        largest difference), and the device's copy and matmul ceilings
  train                 bench/train.py: samples/s of the shipped model, per-stage breakdown and
                        the pipeline efficiency (end to end / ready tensors); on a GPU with batches
                        made on the device, made on the host (as before issue 11), and at batch
                        1024
  infer                 (on a GPU, with a model) bench/infer.py: store -> P(Ia) light curves/s
  archs                 bench/archs.py: parameters, MFLOP per light curve, training samples/s and
                        inference light curves/s of each model arch (issue 13; smoke: cnn, gru)
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROWS: list[tuple[str, str, str]] = []


def row(section: str, item: str, value) -> None:
    ROWS.append((section, item, str(value)))
    print(f"{section:<12} {item:<34} {value}", flush=True)


def versions() -> dict:
    """What is installed, and which GPU backends run here."""
    import numba
    import torch

    row("versions", "python / numpy", f"{platform.python_version()} / {np.__version__}")
    cuda = torch.cuda.is_available()
    row("versions", "torch", f"{torch.__version__} (CUDA {'yes: ' + torch.cuda.get_device_name(0) if cuda else 'no'})")
    try:
        import cupy

        row("versions", "cupy", f"{cupy.__version__} (available: {cupy.is_available()})")
    except Exception as exc:  # noqa: BLE001 - not installed, or without its CUDA libraries
        row("versions", "cupy", f"not usable ({type(exc).__name__})")
    from numba import cuda as numba_cuda

    row("versions", "numba", f"{numba.__version__} (CUDA: {numba_cuda.is_available()})")
    from snia.raster import available_backends
    from snia.raster.cuda_sources import source_dir

    row("versions", "raster backends here", ", ".join(available_backends()))
    row("versions", "CUDA sources from", source_dir())
    return {"cuda": cuda}


GPU_TEST_FILES = ["tests/test_kernels.py", "tests/test_raster.py", "tests/test_augment.py",
                  "tests/test_device_pipeline.py"]


def gpu_tests(smoke: bool) -> None:
    """The kernels against their NumPy reference and the device pipeline against the host one
    (on the device; in the simulator without one). Failures are listed as rows."""
    files = ["tests/test_augment.py"] if smoke else GPU_TEST_FILES
    keywords = "numba_cuda" if smoke else "cupy or numba or cuda or device"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *files,
            "-k", keywords]
    try:
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=200)
    except subprocess.TimeoutExpired:
        row("GPU tests", " ".join(files), "timed out after 200 s")
        return
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    row("GPU tests", " ".join(files), f"{(lines or ['no output'])[-1]} (exit {done.returncode})")
    for line in lines:
        if line.startswith(("FAILED", "ERROR")):
            row("GPU tests", "", line[:300])
    if done.returncode not in (0, 5):  # the whole log, to read what failed
        print(done.stdout[-30000:], done.stderr[-3000:], sep="\n", flush=True)


def tiled_batches(store, n: int, batch: int):
    """The store's objects repeated to ``n``, in batches gathered from memory."""
    from snia.store.resident import ResidentStore

    resident = ResidentStore(store)
    order = np.arange(n) % len(resident)
    return [resident.batch(order[a:a + batch]) for a in range(0, n, batch)]


def rasterize_rates(store_path: Path, n: int, smoke: bool) -> None:
    from snia.raster import available_backends, rasterize, spec_for_store
    from snia.store import Store

    backends = [b for b in available_backends() if b != "numpy"]
    with Store(store_path) as store:
        batch = 4096 if smoke else 65536
        batches = tiled_batches(store, n, batch)
        for kind in ("bands", "heatmap"):
            spec = spec_for_store(store, kind)  # the shipped model's geometry
            for backend in backends:
                m = n if backend != "cpu" or smoke else min(n, 200_000)  # the CPU, on fewer
                use = batches[:max(1, m // batch)]
                count = sum(len(b) for b in use)
                rasterize(use[0], spec, backend)  # warm-up: compilation
                start = time.perf_counter()
                for b in use:
                    images = rasterize(b, spec, backend)
                sync(images.images)
                rate = count / (time.perf_counter() - start)
                row("rasterize", f"{kind} {spec.shape[1]}x{spec.shape[2]}, {backend}",
                    f"{rate:,.0f} LC/s ({count:,} objects)")


def sync(a) -> None:
    if hasattr(a, "copy_to_host"):  # Numba device array
        from numba import cuda

        cuda.synchronize()
    elif type(a).__module__.startswith("cupy"):
        import cupy

        cupy.cuda.Device().synchronize()


def script_rows(section: str, script: str, *args, timeout: int = 200) -> None:
    """Another benchmark's output lines as rows of this table."""
    try:
        done = subprocess.run([sys.executable, str(REPO / "bench" / script), *map(str, args)],
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row(section, script, f"timed out after {timeout} s")
        return
    if done.returncode:
        row(section, script, f"failed (exit {done.returncode}): {done.stderr[-600:]}")
        return
    for line in done.stdout.splitlines():
        if line.strip() and not line.startswith("|"):  # its own table repeats its lines
            row(section, "", line.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=REPO / "results" / "stores" / "plasticc_train.h5")
    ap.add_argument("--objects", type=int, help="light curves to rasterize (default 1,000,000; "
                                                "smoke 2,000)")
    ap.add_argument("--steps", type=int, help="training steps timed (default 100; smoke 3)")
    ap.add_argument("--batch-size", type=int, default=64, help="global batch (the shipped 64)")
    ap.add_argument("--smoke", action="store_true", help="CPU, small sizes (CI)")
    ap.add_argument("--checkpoint", type=Path,
                    default=REPO / "results" / "model" / "student" / "best.pt",
                    help="a model for the inference row (on a GPU; skipped when missing)")
    args = ap.parse_args()
    if not args.store.exists():
        sys.exit(f"{args.store}: no training store here; run make run (or snia ingest) and bring "
                 f"it and its .shards folder along")
    start = time.perf_counter()
    device = versions()
    gpu_tests(args.smoke)
    rasterize_rates(args.store, args.objects or (2_000 if args.smoke else 1_000_000), args.smoke)
    steps = args.steps or (3 if args.smoke else 100)
    train = ("train.py", "--store", args.store, "--steps", steps)
    if device["cuda"] and not args.smoke:
        script_rows("kernels", "raster_gpu.py", "--store", args.store, "--objects",
                    args.objects or 1_000_000)
        # batches made on the device (the pipeline of issue 11), then on the host as before it,
        # then a larger batch (the small default model is launch-bound at 64)
        script_rows("train", *train, "--batch-size", args.batch_size, "--repeat", 1)
        script_rows("train", *train, "--batch-size", args.batch_size, "--repeat", 1,
                    "--backend", "cpu")
        script_rows("train", *train, "--batch-size", 1024, "--repeat", 1)
        if args.checkpoint.exists():
            script_rows("infer", "infer.py", "--store", args.store, "--checkpoint",
                        args.checkpoint, "--objects", 7848)
        # issue 22's GP fits: objects fitted per second, CPU and GPU side by side
        script_rows("gp", "gp_fit.py", "--store", args.store, "--objects", 4096, timeout=300)
        # issue 13's architecture table on the device: parameters, MFLOP, samples/s, LC/s
        script_rows("archs", "archs.py", "--store", args.store, "--steps", 20, timeout=400)
    else:
        script_rows("train", *train, "--batch-size", args.batch_size)
        script_rows("gp", "gp_fit.py", "--store", args.store, "--objects", 64 if args.smoke else 1024)
        script_rows("archs", "archs.py", "--store", args.store, "--steps", steps,
                    *(("--archs", "cnn", "gru") if args.smoke else ()))
    row("total", "seconds", f"{time.perf_counter() - start:.0f}")
    print("\n| section | item | value |\n|---|---|---|")
    for section, item, value in ROWS:
        print(f"| {section} | {item} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
