"""Eager vs torch.compile forward pass of the shipped CNN on this machine's CPU, side by side.

    python bench/compile_forward.py [THREADS]

Batch 512 of random heatmap images (2 x 16 x 60, the shipped geometry) and scalars; the forward
pass alone in inference mode, best of 3 timed runs of 10 after a warm-up, eager and then
compiled (TorchInductor, which needs a C++ compiler), and the one-off compile time. An
experiment for issue 23 (docs/results.md row 41): predict_store does not compile yet.
"""

from __future__ import annotations

import sys
import time

import torch

from snia.shipped import shipped_checkpoint


def best_seconds(forward, x, s, reps: int = 10) -> float:
    with torch.inference_mode():
        for _ in range(3):
            forward(x, s)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                forward(x, s)
            best = min(best, (time.perf_counter() - start) / reps)
    return best


def main() -> None:
    from snia.inference.members import Member

    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    model = Member(shipped_checkpoint()).model
    x, s = torch.randn(512, 2, 16, 60), torch.randn(512, 3)
    eager = best_seconds(model, x, s)
    start = time.perf_counter()
    compiled = torch.compile(model)
    with torch.inference_mode():
        compiled(x, s)
    compile_s = time.perf_counter() - start
    fast = best_seconds(compiled, x, s)
    print(f"{torch.get_num_threads()} thread(s): eager {512 / eager:,.0f} LC/s, compiled "
          f"{512 / fast:,.0f} LC/s, ratio {eager / fast:.2f}; compile {compile_s:.1f} s")


if __name__ == "__main__":
    main()
