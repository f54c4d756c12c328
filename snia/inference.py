"""Inference: trained models (one, or an ensemble) -> P(Ia) for every light curve of a store.

A ``Member`` is one checkpoint ready to run: its network, the image spec it was trained on and its
input scaling. Members of an ensemble each see their own images (members that share an image spec
share one rasterization) and their probabilities are averaged. Training uses the same code for the
teachers of a distilled model, evaluation and ``snia classify`` (``snia.classify``) for their
predictions. A model runs only on data of the bands it was trained on (``check_bands``;
``--allow-other-bands`` to override), and a checkpoint that cannot be read is a CheckpointError
naming the file (``snia.checkpoints``). Inference reads stores, never raw files: the model inputs
are ``snia.models.inputs``, shared with training.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from snia.calibration import calibrate, describe, estimate_ensemble_prior
from snia.checkpoints import band_names_of, read_checkpoint, spec_of
from snia.errors import CheckpointError, ConfigError, first_line
from snia.models import SEQUENCE_ARCHS, rebuild
from snia.models.inputs import as_tensor, scalar_inputs, sequence_inputs
from snia.models.registry import DEFAULT_ARCH
from snia.raster import RasterSpec, rasterize
from snia.store import Store

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    """Where inference runs unless told: the GPU when there is one (images drawn there reach the
    model without a copy), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def p_ia_of(logits, classes: list[str]):
    """P(Ia) from a model's logits: the sigmoid of a binary model, the Ia softmax column of a
    multi-class one."""
    if not classes:
        return torch.sigmoid(logits).squeeze(1)
    return torch.softmax(logits, dim=1)[:, classes.index("Ia")]


class Member:
    """One trained model ready for inference: the network, its image spec and input scaling."""

    def __init__(self, checkpoint, device="cpu"):
        self.path = Path(checkpoint)
        state = read_checkpoint(checkpoint)
        try:
            model = rebuild(state["model_config"])
            model.load_state_dict(state["model"])
            self.arch = state["model_config"].get("arch", DEFAULT_ARCH)
            self.spec = spec_of(state)
            self.band_names = band_names_of(state)
            self.mean = np.asarray(state["norm"]["mean"], dtype=np.float64)
            self.std = np.asarray(state["norm"]["std"], dtype=np.float64)
            self.classes = list(state.get("classes") or [])
            self.backend = state["train_config"].get("backend", "auto")
            self.calibration = state.get("calibration")  # None: an uncalibrated model
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{checkpoint}: not a usable snia checkpoint "
                                  f"({first_line(exc)})") from None
        # channels-last memory: ~1.5x faster convolutions for inference on CPUs (not for
        # training, where GroupNorm's backward pass is slower in it)
        self.device = torch.device(device)
        self.sequences = self.arch in SEQUENCE_ARCHS  # reads observations, not images
        self.model = model.eval().to(self.device, memory_format=None if self.sequences
                                     else torch.channels_last)

    @property
    def trained_bands(self) -> list[str]:
        """The bands this model was trained on (their names)."""
        return [self.band_names[b] for b in self.spec.bands]

    def spec_for(self, registry) -> RasterSpec:
        """This model's image spec for data indexed by ``registry`` (a store's bands): each of
        its bands found by name (its image row) and every band at its own wavelength. The spec
        itself when the registries agree (the usual case: registries only grow at the end)."""
        names = [b.name for b in registry.bands]
        if tuple(names) == self.band_names:
            return self.spec
        wavelengths = [float(b.wavelength) for b in registry.bands]
        rows = []
        for b in self.spec.bands:
            name = self.band_names[b]
            if name not in names:  # not in the data's registry: a row no observation fills
                names.append(name)
                wavelengths.append(self.spec.wavelengths[b])
            rows.append(names.index(name))
        return replace(self.spec, bands=tuple(rows), wavelengths=tuple(wavelengths))


def load_members(checkpoints, device="cpu") -> list[Member]:
    """The models of an ensemble (one or more checkpoints), checked to predict the same classes."""
    members = [Member(c, device) for c in as_list(checkpoints)]
    classes = members[0].classes
    if any(m.classes != classes for m in members):
        raise ConfigError("ensemble members predict different classes: "
                          f"{[m.classes for m in members]}")
    return members


def check_bands(members: list[Member], store: Store, allow_other_bands: bool = False) -> None:
    """Refuse data with a band a model was not trained on (or, allowed, warn). A bands model has
    no image row for such a band (DES griz into an LSST ugrizy model: empty images); a heatmap
    model places observations by wavelength, but light at wavelengths of a band it never saw is
    still outside what it learnt, so that is refused too. Data lacking some of the model's
    bands run (an object need not be seen in every band), with a warning."""
    registry = store.bands
    data = [registry.bands[b].name for b in store.bands_present()]
    for m in members:
        trained = m.trained_bands
        unseen = [b for b in data if b not in trained]
        if unseen:
            how = ("a bands model has no image row for them" if m.spec.kind == "bands" else
                   "a heatmap model would see light where it never learnt any")
            message = (f"the data's bands {data} are not the bands {m.path} was trained on "
                       f"{trained}: it never saw {unseen} ({how})")
            if not allow_other_bands:
                raise ConfigError(f"{message}; use a model trained on these bands, or "
                                  "--allow-other-bands to run it anyway")
            log.warning("%s; running it anyway (--allow-other-bands): expect poor predictions",
                        message)
        absent = [b for b in trained if b not in data]
        if absent and data:
            log.warning("%s was trained on bands %s; the data have no observations in %s, so "
                        "those parts of its images stay empty", m.path, trained, absent)


def run_members(members: list[Member], batch, drawn: dict | None = None):
    """Each member's (embedding, logits) on one batch of light curves, without gradients.

    Each member sees its own images (a recurrent member, the observations); members that share an
    image spec share one rasterization. ``drawn`` (spec -> (images, scale), host or device arrays
    or tensors) passes images already rasterized for this batch, e.g. by a training step, so they
    are not drawn again. Images drawn on a GPU reach the model by DLPack, without a copy."""
    drawn = dict(drawn or {})
    inputs = {}  # spec -> image tensor on the member's device
    out = []
    with torch.no_grad():
        for m in members:
            if m.sequences:
                (features, lengths), scale = sequence_inputs(batch, m.model.config.n_bands,
                                                          m.model.config.window)
                x = (features.to(m.device), lengths)
            else:
                if m.spec not in drawn:
                    images = rasterize(batch, m.spec, m.backend)
                    drawn[m.spec] = (images.images, images.scale)
                images, scale = drawn[m.spec]
                if m.spec not in inputs:
                    inputs[m.spec] = as_tensor(images, m.device).contiguous(
                        memory_format=torch.channels_last)
                x = (inputs[m.spec],)
            s = scalar_inputs(batch.meta, scale, m.mean, m.std, m.device)
            e = m.model.embed(*x, s)
            out.append((e, m.model.head(e).float()))
    return out


def mean_probabilities(outputs, classes: list[str]):
    """The members' mean P(Ia) (their scores, before any calibration) and, for multi-class
    members, mean class probabilities (else None), from run_members' outputs."""
    p_ia = np.mean([p_ia_of(logits, classes).cpu().numpy() for _, logits in outputs], axis=0)
    if not classes:
        return p_ia, None
    return p_ia, np.mean([torch.softmax(logits, dim=1).cpu().numpy() for _, logits in outputs],
                         axis=0)


def calibrated_mean(scores: list, members: list[Member], prior=None):
    """The members' mean calibrated P(Ia) of their scores (one array per member; each member's
    own calibration, moved to an Ia share ``prior`` if given, or to the share the EM estimates
    from these scores if ``prior`` is "estimate"), with that share; None when a member carries no
    calibration."""
    if any(m.calibration is None for m in members):
        return None, None  # scores, not probabilities: no share to move them to
    calibrations = [m.calibration for m in members]
    if prior == "estimate":
        prior = estimate_ensemble_prior(scores, calibrations)
    return np.mean([calibrate(s, c, prior) for s, c in zip(scores, calibrations)], axis=0), prior


def calibration_of(members: list[Member], prior: float | None = None) -> str:
    """What the P(Ia) of these members is: calibrated (how) or not."""
    missing = [str(m.path) for m in members if m.calibration is None]
    if missing:
        return describe(None) + (f": {', '.join(missing)}" if len(members) > 1 else "")
    if len(members) == 1:
        return describe(members[0].calibration, prior)
    methods = sorted({m.calibration["method"] for m in members})
    moved = "" if prior is None else f", moved to an Ia share of {prior:.3f}"
    return (f"mean of {len(members)} members' P(Ia), each calibrated by its own "
            f"{'/'.join(methods)} scaling fitted on its validation split{moved}")


def ensemble_p_ia(members: list[Member], batch, drawn: dict | None = None) -> torch.Tensor:
    """The members' mean P(Ia) for each light curve of a batch, a tensor on their device (a
    distilled model's training targets stay there; ``drawn``: see run_members)."""
    outputs = run_members(members, batch, drawn)
    return torch.stack([p_ia_of(logits, m.classes) for (_, logits), m in zip(outputs, members)]
                       ).mean(dim=0)


def as_list(checkpoints) -> list:
    return [checkpoints] if isinstance(checkpoints, (str, Path, Member)) else list(checkpoints)


# Reading: observations per contiguous read (~70 MiB of the four columns a model reads), so that
# memory is bounded by the block, not by the store, and HDF5 is called a few times per million
# light curves instead of once per batch.
READ_BLOCK = 1 << 22
# Batches: on a CPU the size snia has always used (the same batches give the same numbers, to the
# bit; each worker thread runs whole batches single-threaded); on a GPU large enough to fill it.
CPU_BATCH = 512
GPU_BATCH = 1 << 14
MODEL_COLUMNS = ("time", "band", "flux", "flux_err")  # what images, sequences and cuts read


def default_batch_size(device) -> int:
    return GPU_BATCH if torch.device(device).type == "cuda" else CPU_BATCH


def default_workers(device) -> int:
    """Threads that run batches: on a CPU one per torch thread (each worker single-threaded, so
    no per-operator barriers between cores; a loaded machine costs a worker a core, not every
    operator a barrier wait); on a GPU one, the device does the parallel work."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else 1


def store_batches(store: Store, batch_size: int, block: int | None = None):
    """The store's objects in order, in batches of ``batch_size`` (the last one smaller), cut
    from large block reads (about ``block`` observations, default READ_BLOCK, whole batches) of
    the columns the models read: views into the block, no copy per batch. The batches are those
    of reading batch by batch: a convolution may take another path for a batch of a few objects
    (last bits of its sums), so the same batches keep the same numbers."""
    for _, objects in prefetched(store.blocks(block or READ_BLOCK, MODEL_COLUMNS, batch_size)):
        for a in range(0, len(objects), batch_size):
            yield objects.objects(a, min(a + batch_size, len(objects)))


def prefetched(items, depth: int = 1):
    """``items`` (block reads) produced in a background thread, up to ``depth`` ahead of the
    consumer: the next block is read while this one is computed on (h5py's I/O overlaps torch's
    and Numba's, which release the GIL). An error while producing is raised here; stopping
    early stops the producer after the item it is on."""
    entries: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(entry) -> bool:
        while not stop.is_set():
            try:
                entries.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            offer((done, exc))

    producer = threading.Thread(target=produce, name="snia-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = entries.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        producer.join()


def _one_numba_thread() -> None:
    import numba  # the rasterization kernels' dependency, already imported by them

    numba.set_num_threads(1)  # thread-local: this worker's kernels run in it alone


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed blocks of up to 32 MiB for reuse instead of returning them
    to the kernel. Each CPU batch allocates the same few activation tensors of several MiB; by
    default glibc unmaps such a block when it is freed (or trims the heap above it), so every
    batch page-faults its activations in again (~75 k faults per 5,120 light curves, ~30 % of
    the forward pass on this machine). Process-wide, and kept: memory stays bounded by the
    batches in flight, it is only not handed back between them. No-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library (musl): its own policy stands
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)  # the largest threshold glibc accepts
    mallopt(m_trim_threshold, 1 << 30)


@contextmanager
def one_torch_thread(workers: int):
    """Torch's intra-op threads set to one while ``workers`` threads each run whole batches
    (the setting is process-wide: restored after). The CNNs' results do not depend on it (each
    sample's convolutions and norms are summed alike on any number of threads: test_inference
    checks); a recurrent model's matrix products may round an embedding's last bit otherwise."""
    if workers <= 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ordered_map(fn, items, workers: int):
    """``map(fn, items)`` on ``workers`` threads, results in order, at most two batches per
    worker in flight (memory bounded by them, not by the store). Torch's operators and the
    Numba kernels release the GIL, so the threads use the cores while the calling thread reads
    the next block."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, initializer=_one_numba_thread) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # an error or an early stop: drop what has not started
                future.cancel()


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
                  transform=None, workers: int | None = None):
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
    size or the number of workers."""
    checkpoints = as_list(checkpoints)
    members = (checkpoints if all(isinstance(c, Member) for c in checkpoints)
               else load_members(checkpoints, device or default_device()))
    device = members[0].device
    batch_size = batch_size or default_batch_size(device)
    workers = workers or default_workers(device)
    gathered = Predictions(members, embeddings)
    if device.type == "cpu":
        keep_freed_memory()
    with Store(store_path) as store:
        check_bands(members, store, allow_other_bands)
        for m in members:
            m.spec = m.spec_for(store.bands)
        with one_torch_thread(workers):
            for result in ordered_map(lambda b: gathered.of_batch(b, transform),
                                      store_batches(store, batch_size), workers):
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
