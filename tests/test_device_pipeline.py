"""Training batches made on the GPU end to end (gather from device memory, Numba CUDA augmentation,
CuPy images, DLPack to torch, a side stream): the same tensors as the host pipeline, the same
batches as a plain loop, and no torch operation that makes the host wait inside the steps.

Needs an NVIDIA GPU with CuPy and Numba CUDA (run by bench/device_check.sh); skipped elsewhere.
The pieces have CPU tests of their own: the device's row search with NumPy (test_store), the
augmentation wrapper in Numba's CUDA simulator (test_augment), raster.cu's logic built for the
CPU (test_kernels).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed")

from conftest import synthetic_plasticc  # noqa: E402

from snia.ingest import run_ingest  # noqa: E402
from snia.parallel import Dist  # noqa: E402
from snia.raster import available_backends  # noqa: E402
from snia.train import TrainConfig, close, open_trainer  # noqa: E402
from snia.train.data import TrainingData  # noqa: E402
from snia.train.trainer import side_stream_batches  # noqa: E402

GPU = torch.cuda.is_available() and {"cupy", "numba-cuda"} <= set(available_backends())
pytestmark = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU with CuPy and Numba CUDA")

SETTINGS = {"batch_size": 16, "epochs": 1, "val_fraction": 0.25, "min_epoch_samples": 0,
            "augment": {"flux_noise": 1.0, "redshift_probability": 0.5}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("device")
    lc, meta, _ = synthetic_plasticc(folder, 96, 4)
    run_ingest("plasticc", [lc], folder / "s.h5", [meta], progress=False)
    return folder / "s.h5"


def pipelines(store):
    cuda = torch.device("cuda", 0)
    on_device = TrainingData(store, TrainConfig.from_dict(SETTINGS), cuda)
    on_host = TrainingData(store, TrainConfig.from_dict({**SETTINGS, "backend": "cpu"}), cuda)
    assert on_device.on_device and not on_host.on_device
    return on_device, on_host


def rel_l2(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp_min(1e-300))


@pytest.mark.parametrize("train", [True, False], ids=["augmented", "as observed"])
def test_device_batches_equal_host_batches(store, train):
    on_device, on_host = pipelines(store)
    indices = on_device.train_index[[5, 0, 17, 3, 9, 30, 2, 11]]  # sampler order, not sorted
    x, s, y = on_device.tensors(indices, epoch=2, train=train)
    hx, hs, hy = on_host.tensors(indices, epoch=2, train=train)
    assert x.device.type == "cuda" and x.shape == hx.shape
    assert rel_l2(x, hx) < 1e-5
    torch.testing.assert_close(s.cpu(), hs.cpu(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y.cpu(), hy.cpu())
    on_device.close()
    on_host.close()


@pytest.mark.parametrize("worker", [True, False], ids=["thread", "in line"])
def test_side_stream_gives_the_batches_of_a_plain_loop(store, worker):
    data, _ = pipelines(store)
    batches = [data.train_index[a:a + 8] for a in range(0, 48, 8)]

    def make(indices):
        return data.tensors(indices, 1, train=True)

    plain = [make(b) for b in batches]
    overlapped = [(b, t) for b, t in side_stream_batches(iter(batches), make, torch.device("cuda", 0),
                                                         worker=worker)]
    torch.cuda.synchronize()
    for (b, (x, s, y)), (px, ps, py), want in zip(overlapped, plain, batches):
        np.testing.assert_array_equal(b, want)
        torch.testing.assert_close(x, px)
        torch.testing.assert_close(s, ps)
        torch.testing.assert_close(y, py)
    data.close()


def test_training_steps_make_the_host_wait_for_nothing(store, tmp_path):
    """torch's sync debug mode names any torch operation that waits for the device (e.g. a
    .item() or a blocking copy) inside the steps; CuPy and Numba launches are checked by
    reading the code (nothing there copies to the host)."""
    trainer = open_trainer(store, tmp_path / "run", TrainConfig.from_dict(SETTINGS), dist=Dist())
    try:
        assert trainer.data.on_device
        batches = list(trainer.local_batches(0))
        list(trainer.run_steps(batches[:2], 0))  # warm-up: compilation, allocator
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                losses = [loss for _, loss in trainer.run_steps(batches, 0)]
            finally:
                torch.cuda.set_sync_debug_mode("default")
        # (the mode's own notice that it is a prototype is not a synchronisation)
        syncs = [str(w.message).splitlines()[0] for w in caught
                 if "called a synchronizing" in str(w.message)]
        assert not syncs, syncs
        assert all(torch.isfinite(loss) for loss in losses)
        row = trainer.fit()
        assert row["epochs"] == 1
    finally:
        close(trainer)
