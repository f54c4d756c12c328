"""The device pipeline's stream ordering is explicit (issue 20 item 11): the first batch of each
``side_stream_batches`` waits for what the main stream enqueued before (the device store's upload,
the last epoch's steps), every batch is read on the main stream only after its ready event, and a
device-resident store's batches wait for its upload's event. Checked on the CPU with recording
stand-ins for the CUDA streams (the GPU run: tests/test_device_pipeline.py)."""

from __future__ import annotations

import contextlib
import sys
import types

import numpy as np
import pytest
from conftest import synthetic_plasticc

torch = pytest.importorskip("torch", reason="PyTorch not installed")


class Stream:
    """Records its events and waits in ``log``."""

    def __init__(self, name, log):
        self.name, self.log, self.count, self.cuda_stream, self.ptr = name, log, 0, 0, 0

    def record_event(self, event=None):
        self.count += 1
        event = f"{self.name}:{self.count}"
        self.log.append(("record", self.name, event))
        return event

    def wait_event(self, event):
        self.log.append(("wait", self.name, getattr(event, "name", event)))


def test_every_batch_waits_for_the_main_stream_and_is_read_after_its_event(monkeypatch):
    from snia.train.trainer import side_stream_batches

    log = []
    main, side = Stream("main", log), Stream("side", log)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: main)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: side)
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(
        ExternalStream=lambda pointer, index: contextlib.nullcontext()))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    main.record_event()  # work enqueued before (an upload, the last epoch's steps)
    before = log[-1][2]

    def make(batch):
        log.append(("make", batch))
        return batch

    for batch, _tensors in side_stream_batches([1, 2, 3], make, torch.device("cuda", 0)):
        log.append(("read", batch))
    made = {entry[1]: k for k, entry in enumerate(log) if entry[0] == "make"}
    # the first batch is made after the side stream waited for an event of the main stream
    # recorded after the earlier work
    waits = [e for e in log[:made[1]] if e[:2] == ("wait", "side")]
    assert waits and waits[-1][2].startswith("main:") and waits[-1][2] > before
    for batch in (1, 2, 3):  # read on the main stream only after the event that the batch is ready
        ready = next(e[2] for e in log[made[batch]:] if e[:2] == ("record", "side"))
        read = log.index(("read", batch))
        assert ("wait", "main", ready) in log[made[batch]:read]


class FakeCupy:
    """NumPy with a recording ``cuda``: what ResidentStore asks of CuPy."""

    def __init__(self, log):
        current = Stream("current", log)

        class Event:
            count = 0

            def __init__(self, **kwargs):
                Event.count += 1
                self.name = f"upload:{Event.count}"

            def record(self, stream=None):
                log.append(("record", "current", self.name))

        self.cuda = types.SimpleNamespace(Event=Event, get_current_stream=lambda: current)

    def __getattr__(self, name):
        return getattr(np, name)


def test_batches_of_a_device_store_wait_for_its_upload(tmp_path):
    from snia.ingest import run_ingest
    from snia.store import Store
    from snia.store.resident import ResidentStore

    lc, meta, _ = synthetic_plasticc(tmp_path, 12, 3)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    log = []
    with Store(tmp_path / "s.h5") as store:
        resident = ResidentStore(store, xp=FakeCupy(log))
        uploaded = [e for e in log if e[0] == "record"]
        assert len(uploaded) == 1
        got = resident.batch(np.array([5, 0, 7]))
        assert log[-1] == ("wait", "current", uploaded[0][2])  # before the gather, on the GPU
        want = store.batch(np.array([5, 0, 7]))
        np.testing.assert_array_equal(got.obs["time"], want.obs["time"])


def test_an_epoch_on_the_device_reads_every_pending_augmentation_check(monkeypatch, tmp_path):
    """A device batch's count/write check is read once its kernels are done, without the host
    waiting; the epoch's last batches are read at its end, so a divergence in them is reported
    by that epoch rather than never (stand-ins: an event not yet done, a batch that diverged)."""
    from snia.augment import numba_cuda
    from snia.augment.shared import AugmentDiverged
    from snia.train import TrainConfig
    from snia.train.run import close, open_trainer

    class Pending:
        done = False  # still running: check_pending(wait=False) leaves it

        def synchronize(self):
            self.done = True

    class Host:  # a device array's .get()
        def __init__(self, values):
            self.values = np.asarray(values)

        def get(self):
            return self.values

    lc, meta, _ = synthetic_plasticc(tmp_path, 24, 5)
    from snia.ingest import run_ingest

    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    trainer = open_trainer(tmp_path / "s.h5", tmp_path / "run", TrainConfig.from_dict(
        {"epochs": 1, "batch_size": 8, "min_epoch_samples": 0,
         "model": {"channels": [4, 8], "groups": 2, "hidden": 8}}))
    try:
        monkeypatch.setattr(trainer, "run_steps", lambda batches, epoch: iter(()))
        monkeypatch.setattr(numba_cuda, "_PENDING", numba_cuda.deque())
        numba_cuda._PENDING.append((Pending(), 1, Host([3, 5]), Host([3, 4]), np.array([7, 1234])))
        numba_cuda.check_pending(wait=False)
        assert len(numba_cuda._PENDING) == 1  # not done yet: the host did not wait
        trainer.data.on_device = False
        trainer.train_epoch(0)  # a host pipeline has nothing pending to read
        assert len(numba_cuda._PENDING) == 1
        trainer.data.on_device = True
        with pytest.raises(AugmentDiverged, match="object 1234: the write pass kept 5"):
            trainer.train_epoch(0)
        assert not numba_cuda._PENDING
    finally:
        close(trainer)
