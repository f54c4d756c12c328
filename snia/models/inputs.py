"""What a network reads besides its images: the per-object scalars (host photo-z, its error, the
log10 flux scale), scaled by the training set's statistics, and a recurrent model's observation
sequences; and arrays from any backend (NumPy, CuPy, Numba, torch) as tensors on a device.

One definition serves training (its statistics and every step) and inference, so the two cannot
read the same light curve differently. Arrays drawn on a GPU reach the model by DLPack or the CUDA
array interface, without a copy.
"""

from __future__ import annotations

import numpy as np
import torch

from snia.lightcurve import Batch
from snia.models.recurrent import peak_fluxes, sequence_features
from snia.raster import is_cupy, to_host


def as_tensor(a, device) -> torch.Tensor:
    """A tensor on ``device`` of a host array, a torch tensor, or a GPU array (CuPy or Numba):
    GPU arrays are handed over by DLPack or the CUDA array interface, without a copy."""
    if isinstance(a, torch.Tensor):
        return a.to(device, non_blocking=True)
    if is_cupy(a):
        return torch.from_dlpack(a)
    if hasattr(a, "__cuda_array_interface__"):  # a Numba device array
        return torch.as_tensor(a, device=device)
    return torch.as_tensor(np.asarray(a)).to(device, non_blocking=True)


def unscaled_scalars(meta: dict, scale, device) -> torch.Tensor:
    """``scalars_of`` as a float64 tensor, computed where the arrays are (host, or the GPU for a
    batch made there): the one definition training's statistics and every forward pass share."""
    z, ze, sc = (as_tensor(a, device).double()
                 for a in (meta["hostgal_photoz"], meta["hostgal_photoz_err"], scale))
    return torch.stack([torch.nan_to_num(z, nan=-1.0), torch.nan_to_num(ze, nan=-1.0),
                        torch.log10(torch.clamp(sc, min=1e-3))], dim=1)


def scalars_of(meta: dict, scale) -> np.ndarray:
    """Per-object scalar inputs on the host (float64): host photo-z, its error (NaN -> -1),
    log10 of the flux scale."""
    return unscaled_scalars(meta, scale, torch.device("cpu")).numpy()


def scalar_inputs(meta: dict, scale, mean, std, device) -> torch.Tensor:
    """``scalars_of`` scaled by the training set's mean and spread, as a float32 tensor on
    ``device``."""
    s = unscaled_scalars(meta, scale, device)
    mean = torch.as_tensor(np.asarray(mean, np.float64)).to(s.device, non_blocking=True)
    std = torch.as_tensor(np.asarray(std, np.float64)).to(s.device, non_blocking=True)
    return ((s - mean) / std).float()


def sequence_inputs(batch, n_bands: int, window=None):
    """A recurrent model's inputs for a batch, on the host: (sequences, lengths), only the
    observations within ``window`` of the peak when given, and the flux scales its scalars use
    (a batch made on a GPU is copied back for it)."""
    host = Batch(batch.object_id, to_host(batch.offsets),
                 {k: to_host(v) for k, v in batch.obs.items()}, batch.meta)
    n = int(host.offsets[-1])  # a batch made on a GPU may carry unused tails
    host.obs = {k: v[:n] for k, v in host.obs.items()}
    features, lengths = sequence_features(host, n_bands, window=window)
    return (features, lengths), peak_fluxes(host.obs["flux"], host.offsets)
