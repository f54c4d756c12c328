"""A training run's folder (snia.train.run_folder): early stopping, history.csv, the checkpoint a
run resumes from or sets aside. The files are written and read here directly, without training."""

from __future__ import annotations

import csv
import math

import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (make test installs torch==2.13.0)")

from snia.errors import CheckpointError, ConfigError  # noqa: E402
from snia.parallel import Dist  # noqa: E402
from snia.raster import RasterSpec  # noqa: E402
from snia.train import TrainConfig  # noqa: E402
from snia.train.run_folder import (  # noqa: E402
    BEST,
    CHECKPOINT,
    HISTORY,
    RESUME_KEYS,
    EarlyStopping,
    RunFolder,
    resumed_history,
    set_aside,
    write_history,
)


def row(epoch, auc, loss=1.0):
    return {"epoch": epoch, "val_auc": auc, "val_loss": loss}


def test_early_stopping_counts_epochs_without_a_better_auc():
    stop = EarlyStopping(patience=2)
    assert [stop.update(row(e, auc)) for e, auc in enumerate([0.6, 0.7, 0.65, 0.7])] == \
        [True, True, False, False]  # an equal AUC is no improvement
    assert stop.done and stop.state() == {"best_auc": 0.7, "best_loss": math.inf, "stale": 2}
    again = EarlyStopping(patience=2)
    again.load({"best_auc": 0.7, "best_loss": math.inf, "stale": 1})  # resumed mid-run
    assert not again.done and not again.update(row(4, 0.69)) and again.done


def test_without_an_auc_the_validation_loss_decides_and_a_distilled_model_keeps_the_last():
    stop = EarlyStopping(patience=5)
    nan = float("nan")  # a validation set of one class
    assert [stop.update(row(e, nan, loss)) for e, loss in enumerate([0.9, 0.8, 0.85, 0.7])] == \
        [True, True, False, True]
    assert stop.best_loss == 0.7 and stop.stale == 0
    last = EarlyStopping(patience=1, keep_last=True)
    assert all(last.update(row(e, auc)) for e, auc in enumerate([0.9, 0.5, 0.4]))
    assert last.best_auc == 0.4 and not last.done


def test_history_is_rewritten_whole_and_read_back_to_the_checkpoints_epoch(tmp_path):
    path = tmp_path / HISTORY
    rows = [{"epoch": 0, "val_auc": 0.5}, {"epoch": 1, "val_auc": 0.75}, {"epoch": 2, "val_auc": 0.8}]
    write_history(path, rows)
    assert path.read_text() == "epoch,val_auc\n0,0.5\n1,0.75\n2,0.8\n"
    write_history(path, [])  # nothing to write: the file stays
    assert path.read_text().count("\n") == 4
    # an older checkpoint without rows: history.csv's rows up to its epoch
    assert resumed_history({"epoch": 1}, path) == [{"epoch": "0", "val_auc": "0.5"},
                                                   {"epoch": "1", "val_auc": "0.75"}]
    assert resumed_history({"epoch": 1, "history": rows[:1]}, path) == rows[:1]  # its own
    assert resumed_history({"epoch": 1}, tmp_path / "none.csv") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [HISTORY]  # no temporaries left


def checkpoint_state(cfg: TrainConfig, epoch: int = 3) -> dict:
    """What a checkpoint holds to be resumed (plain containers: weights_only loads them)."""
    state = {k: {} for k in RESUME_KEYS}
    state.update(epoch=epoch, best_auc=0.8, best_loss=0.4, stale=0, train_config=cfg.to_dict(),
                 norm={"mean": [0.0, 0.0, 1.0], "std": [1.0, 1.0, 1.0]},
                 spec=RasterSpec(kind=cfg.kind).to_dict(), history=[{"epoch": epoch}])
    return state


def test_each_epoch_writes_best_only_when_improved_then_the_checkpoint_and_history(tmp_path):
    folder = RunFolder(tmp_path, Dist())
    cfg = TrainConfig()
    folder.save_epoch(checkpoint_state(cfg, 0), improved=True, history=[{"epoch": 0}])
    folder.save_epoch(checkpoint_state(cfg, 1), improved=False, history=[{"epoch": 0}, {"epoch": 1}])
    best, last = (torch.load(tmp_path / name, weights_only=True) for name in (BEST, CHECKPOINT))
    assert (best["epoch"], last["epoch"]) == (0, 1)
    with open(tmp_path / HISTORY, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]


def test_a_checkpoint_of_these_settings_resumes_one_of_others_is_refused_or_set_aside(tmp_path):
    cfg = TrainConfig()
    assert RunFolder(tmp_path, Dist()).resumable(cfg, "cpu") is None  # nothing to resume
    RunFolder(tmp_path, Dist()).save_epoch(checkpoint_state(cfg), True, [{"epoch": 3}])
    path, state = RunFolder(tmp_path, Dist()).resumable(TrainConfig(backend="numpy"), "cpu")
    assert path == tmp_path / CHECKPOINT and state["epoch"] == 3  # the backend is a run-time choice
    other = TrainConfig(lr=0.1)
    with pytest.raises(ConfigError, match="written with other training settings.*--restart"):
        RunFolder(tmp_path, Dist()).resumable(other, "cpu")
    assert RunFolder(tmp_path, Dist(), restart_on_change=True).resumable(other, "cpu") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n + ".stale" for n in (BEST, CHECKPOINT, HISTORY))


def test_an_unreadable_checkpoint_is_named_and_set_aside_only_when_asked(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as caught:
        RunFolder(tmp_path, Dist()).resumable(TrainConfig(), "cpu")
    with pytest.raises(CheckpointError, match=f"{tmp_path / CHECKPOINT}: .*use --restart"):
        RunFolder(tmp_path, Dist()).unreadable(caught.value)
    assert RunFolder(tmp_path, Dist(), restart_on_change=True).unreadable(caught.value) is False
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT + ".stale"]


def test_set_aside_keeps_the_old_files_beside_the_new_run(tmp_path):
    (tmp_path / BEST).write_text("b")
    (tmp_path / HISTORY).write_text("h")
    set_aside(tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {BEST + ".stale": "b",
                                                                  HISTORY + ".stale": "h"}
