"""Trained models ready to run: a ``Member`` is one checkpoint with its network, the image spec it
was trained on and its input scaling; an ensemble averages its members' probabilities (members
that share an image spec share one rasterization), calibrated when each member carries a
calibration. A model runs only on data of the bands it was trained on (``check_bands``;
``--allow-other-bands`` to override), and a checkpoint that cannot be read is a CheckpointError
naming the file (``snia.checkpoints``)."""

from __future__ import annotations

import logging
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


def image_layout(device) -> torch.memory_format:
    """Memory layout of images and convolution weights for inference: channels-last on a GPU,
    PyTorch's standard layout on a CPU, where its channels-last GroupNorm kernel takes ~10x the
    contiguous one's time (17.5 against 1.5 ms for a 512-object first layer; docs/measurements.md).
    P(Ia) differs between the two by float32 rounding only (< 2e-5)."""
    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


class Member:
    """One trained model ready for inference: the network, its image spec and input scaling."""

    def __init__(self, checkpoint, device="cpu"):
        self.path = Path(checkpoint)
        state = read_checkpoint(checkpoint)
        try:
            model = rebuild(state["model_config"])
            model.load_state_dict(state["model"])
            self.arch = state["model_config"].get("arch", DEFAULT_ARCH)
            self.trained_spec = spec_of(state)  # rows index band_names; never remapped
            self.spec = self.trained_spec  # the spec it runs with (spec_for the data's bands)
            self.band_names = band_names_of(state)
            self.mean = np.asarray(state["norm"]["mean"], dtype=np.float64)
            self.std = np.asarray(state["norm"]["std"], dtype=np.float64)
            self.classes = list(state.get("classes") or [])
            self.backend = state["train_config"].get("backend", "auto")
            self.calibration = state.get("calibration")  # None: an uncalibrated model
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{checkpoint}: not a usable snia checkpoint "
                                  f"({first_line(exc)})") from None
        self.device = torch.device(device)
        self.sequences = self.arch in SEQUENCE_ARCHS  # reads observations, not images
        self.layout = image_layout(self.device)
        self.model = model.eval().to(self.device, memory_format=None if self.sequences
                                     else self.layout)
        self.compiled = None  # its compiled forward pass where predict_store compiles (.compiled)

    @property
    def trained_bands(self) -> list[str]:
        """The bands this model was trained on (their names)."""
        return [self.band_names[b] for b in self.trained_spec.bands]

    def spec_for(self, registry) -> RasterSpec:
        """This model's image spec for data indexed by ``registry`` (a store's bands): each of
        its bands found by name (its image row) and every band at its own wavelength. The spec
        itself when the registries agree (the usual case: registries only grow at the end).
        Always from the trained spec, so a Member run on data of one registry, then another,
        maps each correctly."""
        names = [b.name for b in registry.bands]
        if tuple(names) == self.band_names:
            return self.trained_spec
        wavelengths = [float(b.wavelength) for b in registry.bands]
        rows = []
        for b in self.trained_spec.bands:
            name = self.band_names[b]
            if name not in names:  # not in the data's registry: a row no observation fills
                names.append(name)
                wavelengths.append(self.trained_spec.wavelengths[b])
            rows.append(names.index(name))
        return replace(self.trained_spec, bands=tuple(rows), wavelengths=tuple(wavelengths))


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
                    inputs[m.spec] = as_tensor(images, m.device).contiguous(memory_format=m.layout)
                x = (inputs[m.spec],)
            s = scalar_inputs(batch.meta, scale, m.mean, m.std, m.device)
            if m.compiled is not None:
                e, logits = m.compiled(*x, s)
            else:
                e = m.model.embed(*x, s)
                logits = m.model.head(e)
            out.append((e, logits.float()))
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
