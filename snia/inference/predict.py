"""Store -> P(Ia): ``predict_store`` streams a store through one model or an ensemble and gathers
each member's outputs where the model ran, copied to the host once at the end."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from snia.inference.compiled import compiled_for, wanted
from snia.inference.members import (
    Member,
    as_list,
    calibrated_mean,
    calibration_of,
    check_bands,
    default_device,
    load_members,
    p_ia_of,
    run_members,
)
from snia.inference.streaming import (
    default_batch_size,
    default_workers,
    keep_freed_memory,
    one_torch_thread,
    ordered_map,
    store_batches,
)
from snia.store import Store


class Predictions:
    """What predict_store gathers, batch by batch: each member's P(Ia) (and class probabilities)
    and the first member's embeddings as tensors where the model ran, so a GPU run never waits
    for the host inside the loop; copied to the host once, at the end."""

    def __init__(self, members: list[Member], embeddings: bool):
        self.members = members
        self.classes = members[0].classes
        self.embeddings = embeddings
        self.scores = [[] for _ in members]  # each member's P(Ia)
        self.class_probs = [[] for _ in members]
        self.embedded = []
        self.ids, self.types = [], []

    def of_batch(self, batch, transform=None):
        """One batch's outputs (runs in a worker thread): (batch, per-member P(Ia), per-member
        class probabilities, first member's embedding)."""
        if transform is not None:
            batch = transform(batch)
        with torch.inference_mode():
            outputs = run_members(self.members, batch)
            p_ia = [p_ia_of(logits, m.classes) for (_, logits), m in zip(outputs, self.members)]
            probs = ([torch.softmax(logits, dim=1) for _, logits in outputs] if self.classes
                     else [])
            embedded = outputs[0][0] if self.embeddings else None
        return batch, p_ia, probs, embedded

    def add(self, result) -> None:
        batch, p_ia, probs, embedded = result
        for mine, p in zip(self.scores, p_ia):
            mine.append(p)
        for mine, p in zip(self.class_probs, probs):
            mine.append(p)
        if embedded is not None:
            self.embedded.append(embedded)
        self.ids.append(batch.object_id)
        self.types.append(batch.meta["type"])

    def member_scores(self) -> list[np.ndarray]:
        return [host(s) for s in self.scores]

    def mean_class_probs(self) -> np.ndarray:
        return np.mean([host(p) for p in self.class_probs], axis=0)


def host(tensors: list) -> np.ndarray:
    """Tensors of consecutive batches as one host array (one copy from the device)."""
    return torch.cat(tensors).cpu().numpy()


def predict_store(checkpoints, store_path, batch_size: int | None = None, embeddings: bool = False,
                  allow_other_bands: bool = False, prior: float | None = None, device=None,
                  transform=None, workers: int | None = None, compile: bool | None = None):
    """P(Ia) (and optionally penultimate embeddings) for every object of a store.

    Several checkpoints (or loaded Members) make an ensemble: their probabilities are averaged
    (each model sees its own images; members that share an image spec share one rasterization).
    The embeddings are the first member's. Data of bands a model was not trained on are refused
    unless ``allow_other_bands`` (see check_bands). When every member carries a calibration,
    ``p_ia`` is calibrated (moved to an Ia share ``prior`` if given; "estimate": the share the EM
    finds in these data, ``ia_share``) and ``p_ia_uncalibrated`` holds the scores;
    ``calibration`` says which. ``device``: where the models run (default: the
    GPU when there is one, see default_device). ``transform``: applied to each batch first (e.g.
    ``snia.lightcurve.cut_after_first_detection`` for early classification).

    The store is read in large blocks of the columns the models use (``store_batches``); batches
    run on ``workers`` threads (default_workers; ``batch_size``: default_batch_size) and their
    results stay where the model ran until all are in. The results do not depend on the batch
    size or the number of workers. ``compile``: the image models' forward pass compiled
    (``snia.inference.compiled``; default: on a CPU for a store of COMPILE_MIN_OBJECTS or more);
    P(Ia) then moves by float32 rounding."""
    checkpoints = as_list(checkpoints)
    members = (checkpoints if all(isinstance(c, Member) for c in checkpoints)
               else load_members(checkpoints, device or default_device()))
    device = members[0].device
    batch_size = batch_size or default_batch_size(device)
    gathered = Predictions(members, embeddings)
    if device.type == "cpu":
        keep_freed_memory()
    with Store(store_path) as store:
        check_bands(members, store, allow_other_bands)
        compiling = wanted(compile, device, members, len(store))
        # a compiled graph runs fastest alone on all the cores (its kernels are parallel): 9,431
        # LC/s against 7,604 on two single-threaded workers (docs/measurements.md)
        workers = workers or (1 if compiling else default_workers(device))
        for m in members:
            m.spec = m.spec_for(store.bands)
            m.compiled = compiled_for(m, batch_size) if compiling and not m.sequences else None
        batches = store_batches(store, batch_size)
        with one_torch_thread(workers):
            if compiling:  # the first batch compiles, in this thread, before the workers start
                for first in itertools.islice(batches, 1):
                    gathered.add(gathered.of_batch(first, transform))
            for result in ordered_map(lambda b: gathered.of_batch(b, transform), batches, workers):
                gathered.add(result)
    scores = gathered.member_scores()
    raw = np.mean(scores, axis=0)
    calibrated, prior = calibrated_mean(scores, members, prior)
    out = {"object_id": np.concatenate(gathered.ids),
           "p_ia": (raw if calibrated is None else calibrated).astype(np.float32),
           "type": np.concatenate(gathered.types), "spec": members[0].spec,
           "calibration": calibration_of(members, prior), "ia_share": prior}
    if all(m.calibration is not None for m in members):
        out["p_ia_uncalibrated"] = raw.astype(np.float32)
    if embeddings:
        out["embedding"] = host(gathered.embedded)
    if gathered.classes:
        out["classes"] = gathered.classes
        out["class_probs"] = gathered.mean_class_probs()
    return out
