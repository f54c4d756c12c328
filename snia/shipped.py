"""The model that ships with snia: the default workflow's model (the distilled CNN it evaluates
and reports), installed with the package so that ``snia classify`` answers without a model of the
user's own, and its provenance (training data, commit, metrics), which ``snia model info`` prints.

``package_model`` makes the two files from a workflow run: the checkpoint without what only
resuming a training run needs (optimizer, scheduler, RNG state), and provenance.json from the
model's evaluation (its metrics.json: the numbers, the data, the commit). The packaged checkpoint
gives the same P(Ia) as the original (tests/test_shipped.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from snia.checkpoints import read_checkpoint
from snia.errors import ConfigError
from snia.files import atomic_path, sha256_of, write_text_atomic
from snia.provenance import describe_store, now

SHIPPED = Path(__file__).parent / "models" / "shipped"
CHECKPOINT_NAME, PROVENANCE_NAME = "snia_plasticc.pt", "provenance.json"
# what only resuming a training run reads
TRAINING_ONLY = ("optimizer", "scheduler", "torch_rng")


def shipped_checkpoint(folder: Path | None = None) -> Path:
    """The packaged model's checkpoint; a ConfigError when this install carries none."""
    path = (folder or SHIPPED) / CHECKPOINT_NAME
    if not path.is_file():
        raise ConfigError(f"no model ships with this install ({path} is missing): give one with "
                          "--checkpoint, or package one with 'snia model package'")
    return path


def package_model(checkpoint, evaluation, train_store, out_dir: Path | None = None) -> dict:
    """Write the packaged checkpoint and its provenance.json to ``out_dir`` from a trained
    ``checkpoint``, the folder of its ``snia evaluate`` (metrics.json) and the store it was
    trained on (described: objects, class mix, input files and their checksums); returns the
    provenance."""
    import torch

    state = read_checkpoint(checkpoint)
    metrics_path = Path(evaluation) / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path}: no evaluation of the model to package "
                                "(run snia evaluate first)")
    metrics = json.loads(metrics_path.read_text())
    evaluated = [c.get("sha256") for c in metrics["provenance"].get("checkpoints", [])]
    if evaluated != [sha256_of(checkpoint)]:
        raise ConfigError(f"{metrics_path} evaluates {len(evaluated)} other model(s), not "
                          f"{checkpoint}: package a model with its own evaluation")
    out_dir = Path(out_dir or SHIPPED)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / CHECKPOINT_NAME
    with atomic_path(target) as tmp:
        torch.save({k: v for k, v in state.items() if k not in TRAINING_ONLY}, tmp)
    provenance = provenance_of(checkpoint, target, metrics)
    provenance["trained_on"] = describe_store(train_store)
    write_text_atomic(out_dir / PROVENANCE_NAME, json.dumps(provenance, indent=2) + "\n")
    return provenance


def provenance_of(original, packaged: Path, metrics: dict) -> dict:
    prov = metrics["provenance"]
    (model,) = prov["checkpoints"]
    halves = metrics.get("halves", {})
    return {
        "checkpoint": packaged.name, "sha256": sha256_of(packaged), "packaged_from": str(original),
        "packaged": now(),
        "git_commit": prov.get("git_commit"),
        "model": {k: model.get(k) for k in ("run", "seed", "task", "kind", "epoch",
                                            "distilled_from", "survey", "calibration")},
        "training": model.get("train_config"),
        "evaluated_on": prov.get("store"),
        "metrics": {"objects": metrics["n"], "ia": metrics["n_ia"], "auc": metrics["auc"],
                    "auc_development": halves.get("development", {}).get("auc"),
                    "auc_report": halves.get("report", {}).get("auc"),
                    "at_0.5": metrics.get("at_0.5"), "at_best_fom": metrics.get("at_best_fom"),
                    "brier": metrics.get("brier")},
    }


def model_info(folder: Path | None = None) -> str:
    """What the packaged model is, in a few lines (``snia model info``)."""
    path = shipped_checkpoint(folder)
    prov = json.loads((path.parent / PROVENANCE_NAME).read_text())
    m, model = prov["metrics"], prov["model"]
    store = prov.get("evaluated_on") or {}
    teachers = ", ".join(model.get("distilled_from") or []) or "none"
    survey = model.get("survey")
    lines = [f"model       {path} (sha256 {prov['sha256'][:12]})",
             f"what        {model['task']} {model['kind']}-image CNN, seed {model['seed']}, "
             f"distilled from {teachers}",
             f"trained on  {describe_training(prov.get('trained_on') or {}, prov.get('training') or {})}",
             f"survey      {survey['store'] + ': ' + '; '.join(survey['uses']) if survey else 'none read'}",
             f"commit      {prov.get('git_commit')}",
             f"evaluated   {store.get('path', '?')}: {m['objects']:,} objects ({m['ia']:,} Ia)",
             f"AUC         {m['auc']:.4f} (development half {m['auc_development']:.4f}, "
             f"report half {m['auc_report']:.4f})"]
    for key, text in (("at_0.5", "at P(Ia) >= 0.5"), ("at_best_fom", "at best FoM")):
        if m.get(key):
            lines.append(f"{text:<11} purity {m[key]['purity']:.3f}, completeness "
                         f"{m[key]['completeness']:.3f}")
    return "\n".join(lines)


def describe_training(store: dict, cfg: dict) -> str:
    mix = ", ".join(f"{k} {v:,}" for k, v in (store.get("class_mix") or {}).items())
    files = ", ".join(f"{f['file']} (sha256 {f['sha256'][:12]})" for f in store.get("inputs") or [])
    return (f"{store.get('name', '?')}: {store.get('objects', 0):,} objects ({mix}) from {files}; "
            f"{cfg.get('epochs')} epochs, batch {cfg.get('batch_size')}, lr {cfg.get('lr')}")
