"""Inference: trained models (one, or an ensemble) -> P(Ia) for every light curve of a store.

A ``Member`` is one checkpoint ready to run: its network, the image spec it was trained on and its
input scaling. Members of an ensemble each see their own images (members that share an image spec
share one rasterization) and their probabilities are averaged. Training uses the same code for the
teachers of a distilled model, evaluation and ``snia classify`` for their predictions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from snia.errors import ConfigError
from snia.ingest import run_ingest
from snia.models import CNNConfig, LightCurveCNN
from snia.predictions import write_predictions
from snia.raster import RasterSpec, rasterize, to_host
from snia.store import Store


def scalars_of(meta: dict, scale) -> np.ndarray:
    """Per-object scalar inputs: host photo-z, its error (NaN -> -1), log10 of the flux scale."""
    z = np.nan_to_num(np.asarray(meta["hostgal_photoz"], np.float64), nan=-1.0)
    ze = np.nan_to_num(np.asarray(meta["hostgal_photoz_err"], np.float64), nan=-1.0)
    return np.stack([z, ze, np.log10(np.maximum(np.asarray(scale, np.float64), 1e-3))], axis=1)


def p_ia_of(logits, classes: list[str]):
    """P(Ia) from a model's logits: the sigmoid of a binary model, the Ia softmax column of a
    multi-class one."""
    if not classes:
        return torch.sigmoid(logits).squeeze(1)
    return torch.softmax(logits, dim=1)[:, classes.index("Ia")]



def spec_of(state: dict):
    """The RasterSpec a checkpoint was trained with."""
    values = dict(state["spec"])
    values["bands"] = tuple(values["bands"])
    values["wavelengths"] = tuple(values["wavelengths"])
    return RasterSpec(**values)


class Member:
    """One trained model ready for inference: the network, its image spec and input scaling."""

    def __init__(self, checkpoint, device="cpu"):
        state = torch.load(checkpoint, weights_only=True, map_location="cpu")
        model = LightCurveCNN(CNNConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model"])
        # channels-last memory: ~1.5x faster convolutions for inference on CPUs (not for
        # training, where GroupNorm's backward pass is slower in it)
        self.device = torch.device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.spec = spec_of(state)
        self.mean = np.asarray(state["norm"]["mean"])
        self.std = np.asarray(state["norm"]["std"])
        self.classes = list(state.get("classes") or [])
        self.backend = state["train_config"].get("backend", "auto")


def load_members(checkpoints, device="cpu") -> list[Member]:
    """The models of an ensemble (one or more checkpoints), checked to predict the same classes."""
    members = [Member(c, device) for c in as_list(checkpoints)]
    classes = members[0].classes
    if any(m.classes != classes for m in members):
        raise ConfigError("ensemble members predict different classes: "
                         f"{[m.classes for m in members]}")
    return members


def run_members(members: list[Member], batch, drawn: dict | None = None):
    """Each member's (embedding, logits) on one batch of light curves, without gradients.

    Each member sees its own images; members that share an image spec share one rasterization.
    ``drawn`` (spec -> (images, scale) as NumPy arrays) passes images already rasterized for this
    batch, e.g. by a training step, so they are not drawn again."""
    drawn = dict(drawn or {})
    inputs = {}  # spec -> (image tensor on the device, scale)
    out = []
    with torch.no_grad():
        for m in members:
            if m.spec not in drawn:
                images = rasterize(batch, m.spec, m.backend)
                drawn[m.spec] = (to_host(images.images), to_host(images.scale))
            if m.spec not in inputs:
                images, scale = drawn[m.spec]
                inputs[m.spec] = (torch.as_tensor(images).to(m.device).contiguous(
                    memory_format=torch.channels_last), scale)
            x, scale = inputs[m.spec]
            s = torch.as_tensor((scalars_of(batch.meta, scale) - m.mean) / m.std,
                                dtype=torch.float32, device=m.device)
            e = m.model.embed(x, s)
            out.append((e, m.model.head(e).float()))
    return out


def mean_probabilities(outputs, classes: list[str]):
    """The members' mean P(Ia) and, for multi-class members, mean class probabilities (else
    None), from run_members' outputs."""
    p_ia = np.mean([p_ia_of(logits, classes).cpu().numpy() for _, logits in outputs], axis=0)
    if not classes:
        return p_ia, None
    return p_ia, np.mean([torch.softmax(logits, dim=1).cpu().numpy() for _, logits in outputs],
                         axis=0)


def ensemble_p_ia(members: list[Member], batch, drawn: dict | None = None) -> np.ndarray:
    """The members' mean P(Ia) for each light curve of a batch (``drawn``: see run_members)."""
    return mean_probabilities(run_members(members, batch, drawn), members[0].classes)[0]


def as_list(checkpoints) -> list:
    return [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)


def predict_store(checkpoints, store_path, batch_size: int = 512, embeddings: bool = False):
    """P(Ia) (and optionally penultimate embeddings) for every object of a store.

    Several checkpoints make an ensemble: their probabilities are averaged (each model sees its
    own images; members that share an image spec share one rasterization). The embeddings are
    the first member's."""
    members = load_members(checkpoints)
    classes = members[0].classes
    probs, embeds, ids, types, class_probs = [], [], [], [], []
    with Store(store_path) as store:
        for batch in store.iter_batches(batch_size):
            outputs = run_members(members, batch)
            p_ia, c_probs = mean_probabilities(outputs, classes)
            probs.append(p_ia)
            if classes:
                class_probs.append(c_probs)
            if embeddings:
                embeds.append(outputs[0][0].numpy())  # the first member's
            ids.append(batch.object_id)
            types.append(batch.meta["type"])
    out = {"object_id": np.concatenate(ids), "p_ia": np.concatenate(probs).astype(np.float32),
           "type": np.concatenate(types), "spec": members[0].spec}
    if embeddings:
        out["embedding"] = np.concatenate(embeds)
    if classes:
        out["classes"] = classes
        out["class_probs"] = np.concatenate(class_probs)
    return out


def classify(checkpoints, inputs, out_csv, fmt: str | None = None, metadata=(), survey=None) -> int:
    """P(Ia) for every object of a store, or of raw survey files (ingested to a temporary store
    first, with the default checks). Returns the number of objects classified."""
    import h5py

    inputs = [Path(p) for p in inputs]
    is_store = len(inputs) == 1 and inputs[0].is_file() and h5py.is_hdf5(inputs[0])
    with tempfile.TemporaryDirectory() as tmp:
        store = inputs[0]
        if not is_store:
            if fmt is None:
                raise ConfigError("raw input needs --format (plasticc, snana-fits or snana-text)")
            store = Path(tmp) / "input.h5"
            run_ingest(fmt, inputs, store, metadata, survey=survey, progress=False)
        pred = predict_store(checkpoints, store)
    write_predictions(out_csv, pred["object_id"], pred["p_ia"], pred["type"],
                      pred.get("classes", ()), pred.get("class_probs"))
    return len(pred["object_id"])
