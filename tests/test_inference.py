"""Inference (snia.inference, snia.checkpoints, snia.models.inputs): ensembles average their
members, models refuse data of bands they never saw, damaged checkpoints are one line naming the
file, and the per-object inputs are what training saw."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, error_line


def test_an_ensemble_averages_its_members(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    from conftest import synthetic_plasticc

    from snia.inference import predict_store
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    lc, meta, _ = synthetic_plasticc(tmp_path, 30, 33)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    runs = []
    for seed, raster in ((0, {}), (1, {}), (2, {"n_time": 45})):  # the last draws other images
        cfg = TrainConfig.from_dict({"kind": "heatmap", "epochs": 1, "batch_size": 8, "seed": seed,
                                     "min_epoch_samples": 0,
                                     "val_fraction": 0.3, "raster": raster,
                                     "model": {"channels": [4, 8], "groups": 2, "hidden": 8}})
        run_training(tmp_path / "s.h5", tmp_path / f"r{seed}", cfg)
        runs.append(tmp_path / f"r{seed}" / "best.pt")
    alone = [predict_store(r, tmp_path / "s.h5")["p_ia"] for r in runs]
    both = predict_store(runs, tmp_path / "s.h5")
    np.testing.assert_allclose(both["p_ia"], np.mean(alone, axis=0), rtol=1e-5, atol=1e-7)
    assert not np.allclose(alone[0], alone[1])  # the members do differ


def test_a_model_refuses_data_of_bands_it_was_not_trained_on(models, tmp_path, capsys):
    from snia.cli import EXIT_BAD_INPUT, main

    lsst = "['lsstu', 'lsstg', 'lsstr', 'lssti', 'lsstz', 'lssty']"
    des = "['desg', 'desr', 'desi', 'desz']"
    classify = ["classify", str(models["des"]), "--checkpoint", str(models["bands"]),
                "-o", str(tmp_path / "p.csv")]
    # DES griz into an LSST ugrizy model: it would see empty images
    assert main(classify) == EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert des in line and lsst in line and "--allow-other-bands" in line
    assert not (tmp_path / "p.csv").exists()
    assert main(["evaluate", str(models["des"]), "--checkpoint", str(models["bands"]),
                 "-o", str(tmp_path / "eval")]) == EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert des in line and lsst in line
    # asked for explicitly: it runs, with a warning naming both
    assert main(classify + ["--allow-other-bands"]) == 0
    warnings = [x for x in capsys.readouterr().err.splitlines() if " WARNING " in x]
    assert any(des in x and lsst in x for x in warnings), warnings
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 7
    # a heatmap model places observations by wavelength, yet a band it never saw is refused
    # (u and y light where it never learnt any)
    assert main(["classify", str(models["lsst"]), "--checkpoint", str(models["heatmap_griz"]),
                 "-o", str(tmp_path / "h.csv")]) == EXIT_BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "['lsstu', 'lssty']" in line and "['lsstg', 'lsstr', 'lssti', 'lsstz']" in line
    # data without some of the model's bands: runs (objects need not be seen in every band),
    # with a warning that those image rows stay empty
    assert main(["classify", str(models["griz"]), "--checkpoint", str(models["bands"]),
                 "-o", str(tmp_path / "g.csv")]) == 0
    assert "['lsstu', 'lssty']" in capsys.readouterr().err


def test_damaged_checkpoints_are_named_in_one_line(models, tmp_path, capsys):
    import torch

    from snia.cli import EXIT_BAD_INPUT, main

    good = models["bands"].read_bytes()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    damaged = {"truncated": good[:len(good) // 2], "empty": b"", "text": b"epoch 1\n",
               "other": (tmp_path / "other.pt").read_bytes()}
    bad = tmp_path / "bad.pt"
    for what, content in damaged.items():
        bad.write_bytes(content)
        for command in (["evaluate", str(models["lsst"]), "--checkpoint", str(bad), "-o", str(tmp_path / "e")],
                        ["classify", str(models["lsst"]), "--checkpoint", str(models["bands"]), str(bad),
                         "-o", str(tmp_path / "p.csv")]):
            capsys.readouterr()
            assert main(command) == EXIT_BAD_INPUT, (what, command[0])
            assert str(bad) in error_line(capsys.readouterr().err), (what, command[0])


def test_ensemble_members_of_other_classes_are_one_line_exit_2(models, tmp_path, capsys):
    from snia.cli import EXIT_BAD_INPUT, main

    assert main(["classify", str(models["lsst"]), "--checkpoint", str(models["bands"]),
                 str(models["multiclass"]), "-o", str(tmp_path / "p.csv")]) == EXIT_BAD_INPUT
    assert "ensemble members predict different classes" in error_line(capsys.readouterr().err)


def test_what_an_ensembles_p_ia_is_is_said_without_one_members_numbers():
    from types import SimpleNamespace

    from snia.inference import calibration_of

    platt = {"method": "platt", "a": 1.0, "b": 0.0, "fitted_on": "validation split", "objects": 10,
             "prior": 0.3}
    one = SimpleNamespace(path="m0/best.pt", calibration=platt)
    other = SimpleNamespace(path="m1/best.pt", calibration={**platt, "a": 2.0})
    assert calibration_of([one]).startswith("calibrated (platt scaling") and "a 1.000" in calibration_of([one])
    both = calibration_of([one, other], prior=0.6)
    assert both == ("mean of 2 members' P(Ia), each calibrated by its own platt scaling fitted on "
                    "its validation split, moved to an Ia share of 0.600")
    bare = SimpleNamespace(path="m2/best.pt", calibration=None)
    assert calibration_of([one, bare]).startswith("uncalibrated") and "m2/best.pt" in calibration_of([one, bare])


def test_scalar_inputs_are_photo_z_its_error_and_log_scale_standardised():
    """Hand-computed: missing photo-z (NaN) reads -1, the flux scale is floored at 1e-3 before
    its log10, and the forward pass's standardised tensor matches the host's statistics input."""
    import torch

    from snia.models.inputs import scalar_inputs, scalars_of

    meta = {"hostgal_photoz": np.array([0.1, np.nan, 0.5]),
            "hostgal_photoz_err": np.array([0.02, np.nan, 0.2])}
    scale = np.array([10.0, 1e-5, 1000.0])
    expected = np.array([[0.1, 0.02, 1.0], [-1.0, -1.0, -3.0], [0.5, 0.2, 3.0]])
    np.testing.assert_allclose(scalars_of(meta, scale), expected)
    mean, std = np.array([0.5, 0.1, 1.0]), np.array([2.0, 0.5, 4.0])
    scaled = scalar_inputs(meta, scale, mean, std, torch.device("cpu"))
    assert scaled.dtype == torch.float32
    np.testing.assert_allclose(scaled.numpy(), (expected - mean) / std, rtol=1e-6)


SHIPPED = REPO / "snia" / "models" / "shipped" / "snia_plasticc.pt"


def one_by_one(checkpoint, store_path) -> tuple[np.ndarray, np.ndarray]:
    """P(Ia) and embeddings the slow, independent way: each object read alone (the index path of
    Store.batch, all columns), drawn by the NumPy reference rasterizer, run through the network
    alone."""
    import torch

    from snia.inference import Member
    from snia.models.inputs import scalar_inputs
    from snia.raster import rasterize
    from snia.store import Store

    member = Member(checkpoint, "cpu")
    p_ia, embedded = [], []
    with Store(store_path) as store, torch.no_grad():
        spec = member.spec_for(store.bands)
        for i in range(len(store)):
            batch = store.batch(np.array([i]))
            images = rasterize(batch, spec, "numpy")
            x = torch.as_tensor(images.images)  # PyTorch's standard layout: the CPU's
            s = scalar_inputs(batch.meta, images.scale, member.mean, member.std, "cpu")
            e = member.model.embed(x, s)
            p_ia.append(torch.sigmoid(member.model.head(e)).item())
            embedded.append(e[0].numpy())
    return np.array(p_ia), np.array(embedded)


def test_predict_store_is_each_object_run_alone(small_store):
    """The block reads, batches cut from them and worker threads give what each object run alone
    through the reference rasterizer gives (the shipped model: a binary CNN)."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from snia.inference import predict_store

    p_ia, embedded = one_by_one(SHIPPED, small_store)
    out = predict_store(SHIPPED, small_store, embeddings=True, device="cpu")
    np.testing.assert_allclose(out["p_ia_uncalibrated"], p_ia, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["embedding"], embedded, rtol=0, atol=1e-5)


def test_results_do_not_depend_on_blocks_or_workers(small_store, monkeypatch):
    """Blocks of ~50 observations on 2 threads, or the whole store read at once on the calling
    thread: the same batches (of 8), the same numbers, bit for bit. Batches of another size
    agree to float32 rounding (a convolution may sum in another order for a batch of one)."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from snia import inference

    def run(batch_size, workers):
        return inference.predict_store(SHIPPED, small_store, embeddings=True,
                                       batch_size=batch_size, workers=workers, device="cpu")

    whole = run(8, 1)
    monkeypatch.setattr(inference.streaming, "READ_BLOCK", 50)
    pieces = run(8, 2)
    for key in ("object_id", "type", "p_ia", "p_ia_uncalibrated", "embedding"):
        np.testing.assert_array_equal(pieces[key], whole[key], err_msg=key)
    np.testing.assert_allclose(run(1, 2)["p_ia"], whole["p_ia"], rtol=0, atol=1e-6)


def test_results_leave_the_device_once_not_per_batch(small_store, monkeypatch):
    """No host copy inside the loop (on a GPU each would wait for the device): the tensors that
    go to the host are as many with 13 batches as with one."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    from snia.inference import predict_store

    def counted(batch_size: int) -> int:
        calls = []
        for name in ("cpu", "numpy", "item", "tolist"):
            original = getattr(torch.Tensor, name)

            def spy(self, *a, _original=original, _name=name, **k):
                calls.append(_name)
                return _original(self, *a, **k)
            monkeypatch.setattr(torch.Tensor, name, spy)
        predict_store(SHIPPED, small_store, embeddings=True, batch_size=batch_size, workers=1,
                      device="cpu")
        monkeypatch.undo()
        return len(calls)

    assert counted(2) == counted(100) > 0


def test_ordered_map_keeps_order_and_bounds_what_is_in_flight():
    """Results in the order of the items, errors raised where the result is taken, and never
    more than two items per worker drawn ahead of the results taken (memory bounded)."""
    import time

    from snia.inference import ordered_map

    drawn = []

    def items():
        for i in range(40):
            drawn.append(i)
            yield i

    def slow_square(i):
        time.sleep(0.001 * (i % 3))  # finish out of order
        return i * i

    out = []
    for result in ordered_map(slow_square, items(), workers=3):
        assert len(drawn) - len(out) <= 6
        out.append(result)
    assert out == [i * i for i in range(40)]

    def fails_at_5(i):
        if i == 5:
            raise ValueError("object 5")
        return i

    with pytest.raises(ValueError, match="object 5"):
        list(ordered_map(fails_at_5, range(40), workers=2))


def test_prefetched_reads_ahead_in_order_and_stops_with_its_consumer():
    """The read-ahead thread yields every item in order, raises the producer's error in the
    consumer, and stops (no thread left behind) when the consumer stops early."""
    import threading

    from snia.inference import prefetched

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def fails_after_3():
        yield from range(3)
        raise OSError("block 3 unreadable")

    got = []
    with pytest.raises(OSError, match="block 3 unreadable"):
        for item in prefetched(fails_after_3()):
            got.append(item)
    assert got == [0, 1, 2]
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    reader = prefetched(endless())
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    assert len(produced) <= 6  # bounded: one in the queue, one being offered
    assert not any(t.name == "snia-read-ahead" for t in threading.enumerate())


FAULTS_PER_PASS = """
import resource, sys, torch
from snia.inference import Member, keep_freed_memory
keep_freed_memory()
torch.set_num_threads(1)  # one thread, one arena: what is measured is the main heap
model = Member(sys.argv[1], "cpu").model
images, scalars = torch.rand(512, 2, 16, 60), torch.zeros(512, 3)
def faults_of_one_pass():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with torch.inference_mode():
        model.embed(images, scalars)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(*[faults_of_one_pass() for _ in range(10)])
"""


def test_batches_reuse_freed_memory_instead_of_faulting_it_in_again():
    """After keep_freed_memory, forward passes over a CPU batch whose activations total ~80 MiB
    fault no pages in once the heap has grown: the median pass of ten. glibc's default unmaps
    the large blocks when they are freed and faults them in again on (almost) every pass: 5-21 k
    faults a pass here, ~2 k in some processes, by its moving threshold. With the setting, the
    heap still grows now and then (a few k faults in one pass of ten) while its free blocks
    settle: the median, not the sum. A fresh process (malloc's settings are process-wide)."""
    import ctypes.util
    import resource
    import statistics
    import subprocess
    import sys

    pytest.importorskip("torch", reason="PyTorch not installed")
    if not sys.platform.startswith("linux") or "libc.so.6" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("glibc's malloc only")
    done = subprocess.run([sys.executable, "-c", FAULTS_PER_PASS, str(SHIPPED)],
                          capture_output=True, text=True, check=True, cwd=REPO)
    faults = [int(n) for n in done.stdout.split()]
    pages = 80 * 2**20 // resource.getpagesize()
    assert statistics.median(faults[2:]) < pages // 100, faults  # the first passes grow the heap


def test_a_member_maps_each_store_s_bands_from_its_trained_spec():
    """Run on data of another band registry, then of another still, a Member maps each from
    the bands it was trained on (not from the previous data's mapping)."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from snia.bands import DEFAULT_BANDS, BandRegistry
    from snia.inference import Member

    member = Member(SHIPPED, "cpu")
    trained = member.trained_bands
    reordered = BandRegistry(DEFAULT_BANDS[6:] + DEFAULT_BANDS[:6])  # DES first, then LSST
    member.spec = member.spec_for(reordered)  # what predict_store does
    assert [reordered.bands[b].name for b in member.spec.bands] == trained
    member.spec = member.spec_for(BandRegistry())
    assert member.spec == member.trained_spec and member.trained_bands == trained
    again = member.spec_for(reordered)
    assert [reordered.bands[b].name for b in again.bands] == trained
    assert again.wavelengths[again.bands[0]] == reordered.bands[again.bands[0]].wavelength


def test_a_compiled_model_gives_each_object_run_alone(small_store, caplog):
    """predict_store with the forward pass compiled (TorchInductor): each object's P(Ia) and
    embedding as the eager model run on it alone gives, to float32 rounding, with batches of 8 on
    2 threads (25 objects: the last batch of 1 padded to 8, so one graph and no recompile), and a
    Member compiled once serves the next call without compiling again."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    import torch._dynamo

    from snia.inference import load_members, predict_store

    p_ia, embedded = one_by_one(SHIPPED, small_store)
    members = load_members([SHIPPED], "cpu")
    with torch._dynamo.config.patch(error_on_recompile=True):
        first = predict_store(members, small_store, embeddings=True, batch_size=8, workers=2,
                              compile=True)
        assert members[0].compiled.state == "compiled" and "failed" not in caplog.text
        compiled = members[0].compiled
        again = predict_store(members, small_store, embeddings=True, batch_size=8, workers=2,
                              compile=True)
    assert members[0].compiled is compiled
    for out in (first, again):
        np.testing.assert_allclose(out["p_ia_uncalibrated"], p_ia, rtol=0, atol=1e-5)
        np.testing.assert_allclose(out["embedding"], embedded, rtol=0, atol=1e-4)
    # below the size threshold and not asked: not compiled
    predict_store(members, small_store, batch_size=8, device="cpu")
    assert members[0].compiled is None


def test_a_model_that_cannot_be_compiled_runs_eagerly_with_one_warning(small_store, monkeypatch,
                                                                       caplog):
    """No C++ compiler, an unsupported layer: the first call's compiler error becomes one warning
    naming the model, and the eager model's P(Ia), bit for bit."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from snia.inference import compiled, predict_store

    def broken_compile(fn, **_):
        def fails(*_a):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore")
        return fails
    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    eager = predict_store(SHIPPED, small_store, batch_size=8, workers=1, device="cpu")
    out = predict_store(SHIPPED, small_store, batch_size=8, workers=2, device="cpu", compile=True)
    np.testing.assert_array_equal(out["p_ia"], eager["p_ia"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0] == (f"{SHIPPED}: torch.compile failed, so it runs uncompiled "
                           "(RuntimeError: InvalidCxxCompiler: No working C++ compiler found)")


def test_compiling_is_for_large_stores_on_a_cpu_unless_told():
    """compile=None: only a store of COMPILE_MIN_OBJECTS or more, on a CPU, with an image model;
    True/False as told, but never on a GPU or for recurrent models alone."""
    from types import SimpleNamespace

    from snia.inference.compiled import COMPILE_MIN_OBJECTS, wanted

    cnn, gru = SimpleNamespace(sequences=False), SimpleNamespace(sequences=True)
    assert not wanted(None, "cpu", [cnn], COMPILE_MIN_OBJECTS - 1)
    assert wanted(None, "cpu", [cnn], COMPILE_MIN_OBJECTS)
    assert wanted(True, "cpu", [gru, cnn], 10) and not wanted(False, "cpu", [cnn], 10**7)
    assert not wanted(True, "cuda", [cnn], 10**7) and not wanted(True, "cpu", [gru], 10**7)
