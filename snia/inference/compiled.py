"""An image model's forward pass compiled by ``torch.compile`` (TorchInductor) for a CPU.

On a CPU the CNN's forward pass is about three quarters of inference's time, and compiled it
runs about 1.7x faster at one thread (docs/results.md row 41). A compile costs seconds per
process (3.5-13 s on 2 cores), more than the 5,000-object test example takes to classify, so
``predict_store`` compiles only where it pays: on a CPU, for a store of at least
COMPILE_MIN_OBJECTS objects, or when asked (``compile=True``). The compiled graph is for one
batch shape: a shorter last batch is padded with zeros (every layer works on each object alone,
so the padding changes no other object's output) and the padding's outputs dropped.
predict_store runs the first batch in its own thread, which compiles (Dynamo's compilation is not
meant to run in several threads at once), and by default the rest there too, on all the cores:
the compiled graph's kernels are parallel themselves, and ran slower on two single-threaded
worker threads. Where it cannot compile (no C++ compiler, an unsupported layer), the model runs
eagerly, with one warning saying why.
"""

from __future__ import annotations

import logging

import torch

from snia.errors import first_line

log = logging.getLogger(__name__)

# A store at least this large is classified with compiled members on a CPU (``compile=None``).
# On 2 cores compiling saved ~16 us per light curve (8,170 -> 9,431 LC/s) for a one-off 3.5 s
# (Inductor's cache warm) to 13 s (cold): repaid from ~0.2-0.8 M objects (docs/measurements.md).
COMPILE_MIN_OBJECTS = 1_000_000


def wanted(compile: bool | None, device, members, n_objects: int) -> bool:
    """Whether predict_store compiles: as told (``compile`` True or False), else for a store of at
    least COMPILE_MIN_OBJECTS objects. Only on a CPU (on a GPU, per-launch costs are the CUDA
    graph's to remove: issue 23) and only where some member draws images."""
    if torch.device(device).type != "cpu" or all(m.sequences for m in members):
        return False
    return n_objects >= COMPILE_MIN_OBJECTS if compile is None else bool(compile)


class CompiledForward:
    """``model.embed`` then ``model.head``, (images, scalars) -> (embedding, logits), compiled for
    batches of ``batch_size`` on the first call; shorter batches padded to it."""

    def __init__(self, model, batch_size: int, name: str = "model"):
        self.model = model
        self.batch_size = batch_size
        self.name = name
        self.fn = torch.compile(self.eager, dynamic=False)
        self.state = "new"  # -> "compiled", or "eager" where compiling failed

    def eager(self, images, scalars):
        embedded = self.model.embed(images, scalars)
        return embedded, self.model.head(embedded)

    def __call__(self, images, scalars):
        n = len(images)
        if self.state == "eager" or n > self.batch_size:  # larger: never from predict_store
            return self.eager(images, scalars)
        if n < self.batch_size:
            embedded, logits = self(pad(images, self.batch_size), pad(scalars, self.batch_size))
            return embedded[:n], logits[:n]
        if self.state == "compiled":
            return self.fn(images, scalars)
        try:  # the first call compiles
            out = self.fn(images, scalars)
        except Exception as exc:  # noqa: BLE001 - a compiler's failure: the eager model still works
            log.warning("%s: torch.compile failed, so it runs uncompiled (%s)", self.name,
                        first_line(exc))
            self.state = "eager"
            return self.eager(images, scalars)
        self.state = "compiled"
        return out


def pad(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows``."""
    return torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])


def compiled_for(member, batch_size: int) -> CompiledForward:
    """The member's CompiledForward for ``batch_size``: the one it has (compiled already) when
    that is for the same batch size, else a new one."""
    have = getattr(member, "compiled", None)
    if have is not None and have.batch_size == batch_size:
        return have
    return CompiledForward(member.model, batch_size, str(member.path))
