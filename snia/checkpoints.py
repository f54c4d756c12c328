"""Reading a checkpoint: ``torch.load(..., weights_only=True)`` of a file that training's run
folder (``snia.train.run_folder``) wrote, and what it says of the images and bands a model was
trained on.

A file that is not a snia checkpoint (empty, truncated, a torch file of another structure) is a
CheckpointError naming it, one line, whichever command reads it (evaluate, classify, compare,
resuming a training run); a missing file stays a FileNotFoundError.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from snia.bands import DEFAULT_BANDS
from snia.errors import CheckpointError, first_line
from snia.raster import RasterSpec

# what a checkpoint needs to be an ensemble member (training needs more to resume)
MEMBER_KEYS = ("model", "model_config", "spec", "norm", "train_config")


def read_checkpoint(path, keys=MEMBER_KEYS, map_location="cpu") -> dict:
    """A checkpoint's state (``torch.load(..., weights_only=True)``) holding ``keys``. A file that
    is not one (truncated, empty, another structure) is a CheckpointError naming it; a missing
    file stays a FileNotFoundError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: not a readable checkpoint (an empty file)")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols, not the point here
            warnings.simplefilter("ignore")
            state = torch.load(path, weights_only=True, map_location=map_location)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # whatever reading a damaged file raises (OSError for a bad zip)
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or not a torch file "
                              f"({first_line(exc)})") from None
    missing = [k for k in keys if k not in state] if isinstance(state, dict) else list(keys)
    if missing:
        raise CheckpointError(f"{path}: not a snia checkpoint (it has no {', '.join(missing)})")
    return state


def spec_of(state: dict) -> RasterSpec:
    """The RasterSpec a checkpoint was trained with."""
    return RasterSpec.from_dict(state["spec"], where="the checkpoint's spec")


def band_names_of(state: dict) -> tuple[str, ...]:
    """Names of the registry bands a checkpoint's ``spec.wavelengths`` lists, by band index
    (saved by training; for older checkpoints the default registry's, where its wavelengths
    agree)."""
    if state.get("band_names"):
        return tuple(state["band_names"])
    return tuple(DEFAULT_BANDS[k].name if k < len(DEFAULT_BANDS)
                 and abs(DEFAULT_BANDS[k].wavelength - w) < 1 else f"band {k}"
                 for k, w in enumerate(state["spec"]["wavelengths"]))
