"""Provenance: what a result was computed from and where, so that a number in a report can be
traced and cited.

``environment()``: the date, the snia version and git commit (or "not a git checkout"), the command,
the Python version and the hardware (CPU model, cores, GPUs named by ``nvidia-smi``).
``describe_store``: a store's path, object count, class mix and inputs (from the store's own
ingestion provenance): their number, bytes and one digest (the manifest beside the store,
``snia.store.manifest``), and their names only when there are few (``LISTED_INPUTS``).
``describe_checkpoint``: which trained model a checkpoint is (run folder, sha256, epoch, seed,
task, distillation teachers) and what its training cost (history.csv beside it).
``snia evaluate`` and ``snia baseline`` put these under ``provenance`` in metrics.json; the report
shows them. Nothing here fails for want of git, a GPU or a history file: it says what is missing.
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from snia import __version__
from snia.files import sha256_of
from snia.store import Store, manifest_path, manifest_summary
from snia.taxonomy import CLASSES

NOT_GIT = "not a git checkout"
LISTED_INPUTS = 10  # a data set of more input files is its manifest's count and digest


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit(where=None) -> str:
    """The commit of the git checkout snia runs from (``where``: another folder), with
    " + uncommitted changes" when tracked files differ from it; "not a git checkout" otherwise."""
    where = Path(where) if where is not None else Path(__file__).resolve().parent

    def git(*args):
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                              timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return NOT_GIT
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return NOT_GIT
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def command_line(argv=None) -> str:
    """The command as typed (``snia ...`` for the console script or ``python -m snia``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("snia", "__main__.py"):
        argv[0] = "snia"
    return shlex.join(argv)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpus() -> list[str]:
    """Names of the NVIDIA GPUs visible here (``nvidia-smi``; none without it)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def hardware() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": gpus(),
            "system": f"{platform.system()} {platform.release()}"}


def environment(command: str | None = None) -> dict:
    """Date, snia version, git commit, command, Python and hardware of this process."""
    return {"date": now(), "snia_version": __version__, "git_commit": git_commit(),
            "command": command if command is not None else command_line(),
            "python": platform.python_version(), "hardware": hardware()}


def class_mix(types) -> dict:
    """Objects per true type (taxonomy class name -> count), most common first."""
    counts = Counter(int(t) for t in np.asarray(types))
    return {CLASSES[t]: n for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def describe_store(path) -> dict:
    """A store as a data set: path, objects, class mix, and the files it was ingested from:
    ``manifest`` (files, bytes, sha256 of the manifest, and ``file``: the manifest beside the
    store, None where there is none, e.g. a store ingested before manifests, whose digest is
    computed from its provenance alike), and ``inputs`` (name, sha256) when there are at most
    ``LISTED_INPUTS``."""
    with Store(path) as store:
        types = store.objects["type"]
        out = {"path": str(path), "name": Path(path).stem, "objects": len(store),
               "observations": store.n_observations, "class_mix": class_mix(types)}
        try:
            ingested = store.provenance
        except (KeyError, ValueError):
            return out
    inputs = ingested.get("inputs", [])
    beside = manifest_path(path)
    out["manifest"] = {**(ingested.get("manifest") or manifest_summary(inputs)),
                       "file": str(beside) if beside.is_file() else None}
    if len(inputs) <= LISTED_INPUTS:
        out["inputs"] = [{"file": Path(i["path"]).name, "sha256": i.get("sha256")} for i in inputs]
    out["ingested"] = ingested.get("created")
    out["split"] = ingested.get("split")
    return out


def inputs_text(described: dict) -> str | None:
    """A described store's inputs in words (None when unrecorded): each file with the start of
    its sha256 when they are listed, else their number and size, the manifest's digest and
    where it is."""
    if described.get("inputs"):
        return ", ".join(f"{i['file']} (sha256 {str(i.get('sha256'))[:12]})"
                         for i in described["inputs"])
    m = described.get("manifest")
    if not m or not m.get("files"):
        return None
    where = (f"listed in {Path(m['file']).name} beside the store" if m.get("file")
             else "no manifest beside the store")
    return f"{m['files']:,} files ({size_text(m['bytes'])}; {where}, sha256 {m['sha256'][:12]})"


def size_text(n: int) -> str:
    """Bytes in words: ``"812 B"``, ``"3.4 kB"``, ``"56.7 MB"``, ``"1.23 GB"``."""
    for limit, unit, digits in ((1e9, "GB", 2), (1e6, "MB", 1), (1e3, "kB", 1)):
        if n >= limit:
            return f"{n / limit:.{digits}f} {unit}"
    return f"{n} B"


def training_summary(history) -> dict | None:
    """Epochs, wall time, median throughput and best validation AUC of one training run, from its
    history.csv (None when there is none)."""
    history = Path(history)
    if not history.is_file():
        return None
    with open(history, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    auc = [float(r["val_auc"]) for r in rows if r.get("val_auc") not in (None, "", "nan")]
    return {"run": history.parent.name, "epochs": len(rows),
            "wall_s": sum(float(r["seconds"]) for r in rows),
            "samples_per_s": float(np.median([float(r["samples_per_s"]) for r in rows])),
            "best_val_auc": max(auc) if auc else float("nan")}


def plain(value):
    """A JSON-safe copy of a checkpoint's entry (tensors and arrays as lists, other objects as
    text)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def describe_checkpoint(path) -> dict:
    """Which model a checkpoint is: its run folder, sha256, epoch, seed, task, image kind, the
    teachers it was distilled from, the hardware it was trained on and its calibration (when the
    checkpoint records them: ``hardware``, ``calibration``), and the training summary of the
    history.csv beside it."""
    import torch

    path = Path(path)
    state = torch.load(path, weights_only=True, map_location="cpu")
    cfg = state.get("train_config", {})
    distill = cfg.get("distill") or {}
    teachers = [Path(t).parent.name + "/" + Path(t).name for t in distill.get("teachers", [])]
    out = {"path": str(path), "run": path.parent.name, "sha256": sha256_of(path),
           "epoch": state.get("epoch"), "seed": cfg.get("seed"), "task": cfg.get("task"),
           "kind": cfg.get("kind"), "classes": list(state.get("classes") or []),
           "distilled_from": teachers, "distill_weight": distill.get("weight") if teachers else None,
           "hardware": plain(state.get("hardware")), "calibration": plain(state.get("calibration")),
           "train_config": plain(cfg), "survey": survey_use(cfg),
           "training": training_summary(path.parent / "history.csv")}
    return out


def survey_use(cfg: dict) -> dict | None:
    """What a model read, unlabelled, of the survey it was trained for (a model that saw a
    survey's light curves is only claimed for that survey), or None."""
    uses = []
    if float((cfg.get("distill") or {}).get("survey_share") or 0) > 0:
        uses.append(f"its light curves (self-training, {cfg['distill']['survey_share']} per "
                    "labelled one)")
    distill = cfg.get("distill") or {}
    if float(distill.get("survey_share") or 0) > 0 and float(distill.get("survey_blend") or 0) > 0:
        chosen = (f", chosen on {distill['survey_blend_from']}" if distill.get("survey_blend_from")
                  else "")
        uses.append(f"another classifier's P(Ia) on its light curves ({distill['survey_predictions']}, "
                    f"{distill['survey_blend']} of the soft targets{chosen})")
    if float((cfg.get("augment") or {}).get("reobserve_probability") or 0) > 0:
        uses.append("its schedules, flux errors and photo-z (re-observation)")
    return {"store": str(cfg.get("survey")), "uses": uses} if uses else None


def evaluation_provenance(checkpoints, store_path, spec=None, command: str | None = None) -> dict:
    """metrics.json's ``provenance`` of ``snia evaluate``: the environment, the data set, every
    checkpoint of the model (one, or an ensemble's members) and the image geometry it sees."""
    out = environment(command)
    out["store"] = describe_store(store_path)
    out["checkpoints"] = [describe_checkpoint(c) for c in checkpoints]
    if spec is not None:
        out["image_spec"] = spec.to_dict()
    return out
