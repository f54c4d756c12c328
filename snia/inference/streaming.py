"""A store streamed through the models: large block reads of the columns they use, read ahead
in a background thread, batches cut from the blocks without copies and run on worker threads in
order, with memory bounded by the blocks and batches in flight, never by the store."""

from __future__ import annotations

import ctypes
import queue
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

from snia.store import Store

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
