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
